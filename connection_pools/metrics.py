"""Prometheus metrics of the pools, served at ``/metrics`` by :class:`MetricsView`
(``connection_pools.urls``; django-prometheus' own view serves them too).

A custom collector reads the *cluster* view at scrape time, so whichever worker answers a
scrape reports the same totals for all workers (no per-worker numbers overwritten by the
next scrape, no multiprocess directory). A scrape reads the cluster store once (the
rollup, with the health job's last result beside it) and never opens a database
connection. Labels are ``pool``, ``kind`` and ``alias`` only.

The families come from the descriptors: the standard pool families
(:data:`~connection_pools.core.figures.POOL_METRICS`, each reading one statistic) have a sample
for every pool whose kind lists them, and each report kind (census, PgBouncer) brings its own.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from .cluster.view import ClusterView
from .core.figures import POOL_LABELS, POOL_METRICS, MetricFamily, PoolMetric
from .core.kinds import PoolKind
from .core.snapshots import BUCKET_BOUNDS, PoolSnapshot
from .sources.kinds import kind_of, registered

logger = logging.getLogger(__name__)

PREFIX = "connection_pool"
LABELS = POOL_LABELS

#: The standard pool families as (name, help): gauges, and counters (exposed with ``_total``).
GAUGES = tuple((m.family.name, m.family.help) for m in POOL_METRICS if m.family.type == "gauge")
COUNTERS = tuple((m.family.name, m.family.help) for m in POOL_METRICS if m.family.type == "counter")

HEALTHY = MetricFamily("healthy", "gauge", "1 when the pool's health check passes.", POOL_LABELS)
PROCESSES = MetricFamily("processes_reporting", "gauge", "Server processes publishing statistics.", ())
CLUSTER = MetricFamily("stats_cluster", "gauge", "1 when the numbers are the cluster aggregate.", ())


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


Scalars = GaugeMetricFamily | CounterMetricFamily


def _family(spec: MetricFamily, **kwargs: Any) -> Scalars:
    """A gauge or counter family (a histogram: :func:`_histogram`)."""
    kind = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
    return kind(_name(spec.name), spec.help, labels=spec.labels or None, **kwargs)


def _histogram(spec: MetricFamily) -> HistogramMetricFamily:
    return HistogramMetricFamily(_name(spec.name), spec.help, labels=spec.labels)


def _described(spec: MetricFamily) -> Metric:
    return _histogram(spec) if spec.type == "histogram" else _family(spec)


def _labels(pool: PoolSnapshot) -> list[str]:
    return [pool.name, pool.kind, pool.alias]


def _number(value: float | int | bool | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _report_families() -> list[MetricFamily]:
    return [family for kind in registered() for family in kind.families]


class PoolCollector:
    """Reads the cluster view (and the last health result) on every scrape."""

    def describe(self) -> list[Metric]:
        # Names only, without touching Redis or a database (registration must be cheap).
        specs = [*(metric.family for metric in POOL_METRICS), HEALTHY, *_report_families()]
        return [*(_described(spec) for spec in specs), _family(PROCESSES), _family(CLUSTER)]

    def collect(self) -> Iterator[Metric]:
        from .insight.health import latest
        from .service import connection_pool_service

        try:
            view = connection_pool_service.view()
        except Exception:  # a broken view must not break the whole /metrics page
            logger.exception("connection_pools metrics: reading the cluster view failed")
            yield _family(CLUSTER, value=0)
            return
        yield from pool_families(view.pools)

        healthy = _family(HEALTHY)
        report = latest(view.health)  # the health job's last result: a scrape never probes
        for pool in view.pools:
            check = report.pool(pool.name) if report is not None else None
            if check is not None:
                healthy.add_metric(_labels(pool), 1.0 if check.healthy else 0.0)
        yield healthy

        yield from report_families(view)
        yield _family(PROCESSES, value=float(view.process_count))
        yield _family(CLUSTER, value=1.0 if view.source == "cluster" else 0.0)


def pool_families(pools: Sequence[PoolSnapshot]) -> Iterator[Metric]:
    """The standard families: a sample per pool whose kind's descriptor lists the family and has a value for it
    (its configured size as its kind counts it)."""
    kinds = [(pool, kind_of(pool.kind)) for pool in pools]
    for metric in POOL_METRICS:
        members = [(pool, kind) for pool, kind in kinds if metric.family.name in kind.metrics]
        if metric.family.type == "histogram":
            histograms = _histogram(metric.family)
            for pool, _ in members:
                histogram, cumulative, buckets = pool.histogram(metric.reads), 0, []
                for bound, count in zip(BUCKET_BOUNDS, histogram.buckets, strict=True):
                    cumulative += count
                    buckets.append((_le(bound), float(cumulative)))
                histograms.add_metric(_labels(pool), buckets, histogram.sum)
            yield histograms
            continue
        family = _family(metric.family)
        for pool, kind in members:
            value = _number(_reading(metric, pool, kind))
            if value is not None:
                family.add_metric(_labels(pool), value)
        yield family


def _reading(metric: PoolMetric, pool: PoolSnapshot, kind: PoolKind) -> float | int | bool | None:
    if metric.reads == "size":
        return kind.capacity.size(pool)
    if metric.reads == "max_size":
        return kind.capacity.max(pool)
    return pool.value(metric.reads)


def report_families(view: ClusterView) -> Iterator[Metric]:
    """The report kinds' own families (the census of each server, each PgBouncer) from their latest reports."""
    for kind in registered():
        if kind.samples is None:
            continue
        made = {spec.name: _family(spec) for spec in kind.families}
        for name, labels, value in kind.samples(view.reports):
            number = _number(value)
            if number is not None:
                made[name].add_metric(list(labels), number)
        yield from made.values()


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


#: prometheus_client's multiprocess mode (gunicorn workers writing their metrics to files) is on.
MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class MetricsView(View):
    """``GET /metrics``: every metric of the process's registry (ours, django-prometheus' when it is
    installed, the process collectors) in Prometheus' text format. In prometheus_client's multiprocess
    mode the workers' files are merged, and our collector is added: it reads the cluster itself."""

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        registry = REGISTRY
        if any(name in os.environ for name in MULTIPROCESS_VARIABLES):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(register())
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
