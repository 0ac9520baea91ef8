"""Prometheus metrics of the pools, served at ``/metrics`` by django-prometheus.

A custom collector reads the service's *cluster* aggregate at scrape time, so
whichever gunicorn worker answers a scrape reports the same totals for all
workers (no per-worker numbers overwritten by the next scrape, no
multiprocess directory). Labels are ``pool``, ``kind`` and ``alias`` only.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from . import stats as stats_module

logger = logging.getLogger(__name__)

PREFIX = "connection_pool"
LABELS = ("pool", "kind", "alias")

#: Gauges: (metric suffix, help, key in a database pool, key in a Redis pool).
GAUGES: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("active_connections", "Connections checked out right now.", "active_connections", "in_use_connections"),
    ("available_connections", "Idle connections ready in the pool.", "available_connections", "available_connections"),
    ("waiting_requests", "Requests waiting for a connection right now.", "waiting", "waiting"),
    ("size", "Configured pool size (pool_size; max_connections for Redis).", "pool_size", "max_connections"),
    ("max_size", "Most connections the pool may open (pool_size + max_overflow).", "max_size", "max_connections"),
    ("overflow_connections", "Connections open beyond pool_size right now.", "overflow", None),
    ("peak_connections", "Most connections in use at once since the last reset.", "peak_connections", "peak_in_use"),
    ("replica_lag_seconds", "Replication lag of a read replica, in seconds.", "replica_lag_seconds", None),
)

#: Counters (exposed with ``_total``): (metric name without _total, help, database key, Redis key).
COUNTERS: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("checkouts", "Connections handed out.", "checkouts", "checkouts"),
    ("connections_created", "Connections opened.", "connections_created", "created_connections"),
    ("connections_closed", "Connections closed.", "connections_closed", None),
    ("connections_recycled", "Connections closed for age (pool_recycle).", "recycled", None),
    ("connection_errors", "Failed connection attempts and broken connections.", "connection_errors",
     "connection_errors"),
    ("timeouts", "Checkouts that gave up waiting (pool_timeout).", "timeouts", "timeouts"),
    ("fallbacks", "Reads sent to the primary because no replica could serve them.", "fallbacks", None),
)


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


def _pools(stats: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool, list[str]]]:
    """Each pool with ``is_redis`` and its label values."""
    for alias, pool in sorted(stats.get("database_pools", {}).items()):
        yield pool, False, [pool["pool"], str(pool.get("kind", "postgresql")), alias]
    for name, pool in sorted(stats.get("redis_pools", {}).items()):
        yield pool, True, [pool["pool"], "redis", name]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _valid_histogram(histogram: Any) -> bool:
    return isinstance(histogram, dict) and len(histogram.get("buckets") or []) == len(stats_module.BUCKET_BOUNDS)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class PoolCollector:
    """Reads the cluster aggregate (and health) from the service on every scrape."""

    def describe(self) -> list[Metric]:
        # Names only, without touching Redis or a database (registration must be cheap).
        families: list[Metric] = [GaugeMetricFamily(_name(s), h, labels=LABELS) for s, h, _, _ in GAUGES]
        families.append(GaugeMetricFamily(_name("healthy"), "1 when the pool's health check passes.", labels=LABELS))
        families += [CounterMetricFamily(_name(s), h, labels=LABELS) for s, h, _, _ in COUNTERS]
        families.append(HistogramMetricFamily(_name("wait_seconds"), "Seconds waited for a connection.", labels=LABELS))
        families.append(GaugeMetricFamily(_name("processes_reporting"), "Server processes publishing statistics."))
        families.append(GaugeMetricFamily(_name("stats_cluster"), "1 when the numbers are the cluster aggregate."))
        return families

    def collect(self) -> Iterator[Metric]:
        from .service import connection_pool_service

        try:
            stats = connection_pool_service.pool_stats()
        except Exception:  # a broken aggregate must not break the whole /metrics page
            logger.exception("connection_pools metrics: pool_stats() failed")
            yield GaugeMetricFamily(_name("stats_cluster"), "1 when the numbers are the cluster aggregate.", value=0)
            return
        try:
            health: dict[str, Any] | None = connection_pool_service.health()
        except Exception:
            logger.exception("connection_pools metrics: health() failed")
            health = None
        try:
            histograms = connection_pool_service.wait_histograms()
        except Exception:
            logger.exception("connection_pools metrics: wait_histograms() failed")
            histograms = {}
        pools = list(_pools(stats))

        yield from _families(GaugeMetricFamily, GAUGES, pools)

        healthy = GaugeMetricFamily(_name("healthy"), "1 when the pool's health check passes.", labels=LABELS)
        checks = (health or {}).get("pools", {})
        for pool, _, labels in pools:
            check = checks.get(pool["pool"])
            if check is not None:
                healthy.add_metric(labels, 1.0 if check.get("healthy") else 0.0)
        yield healthy

        yield from _families(CounterMetricFamily, COUNTERS, pools)

        wait = HistogramMetricFamily(_name("wait_seconds"), "Seconds waited for a connection.", labels=LABELS)
        for pool, _, labels in pools:
            histogram = histograms.get(pool["pool"])
            if not _valid_histogram(histogram):
                continue
            cumulative, buckets = 0, []
            for bound, count in zip(stats_module.BUCKET_BOUNDS, histogram["buckets"], strict=True):
                cumulative += count
                buckets.append((_le(bound), float(cumulative)))
            wait.add_metric(labels, buckets, float(histogram.get("sum", 0.0)))
        yield wait

        yield GaugeMetricFamily(
            _name("processes_reporting"), "Server processes publishing statistics.",
            value=float(stats.get("processes", {}).get("count", 0)),
        )
        yield GaugeMetricFamily(
            _name("stats_cluster"), "1 when the numbers are the cluster aggregate.",
            value=1.0 if stats.get("source") == "cluster" else 0.0,
        )


_registered_lock = threading.Lock()
_registered: PoolCollector | None = None


def register(registry: CollectorRegistry = REGISTRY) -> PoolCollector:
    """Register the collector once per process (idempotent: ``ready()`` may run more than once in tests)."""
    global _registered
    with _registered_lock:
        if _registered is None:
            collector = PoolCollector()
            registry.register(collector)
            _registered = collector
        return _registered


def _families(family_class: Any, specs: Any, pools: list[Any]) -> Iterator[Any]:
    """One metric family per ``(suffix, help, database key, Redis key)`` spec, a sample per pool."""
    for suffix, help_text, db_key, redis_key in specs:
        family = family_class(_name(suffix), help_text, labels=LABELS)
        for pool, is_redis, labels in pools:
            key = redis_key if is_redis else db_key
            value = _number(pool.get(key)) if key else None
            if value is not None:
                family.add_metric(labels, value)
        yield family
