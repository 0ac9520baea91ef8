"""Prometheus metrics of the pools, served at ``/metrics`` by :class:`MetricsView`
(``connection_pools.urls``; django-prometheus' own view serves them too).

A custom collector reads the *cluster* view at scrape time, so whichever worker answers a
scrape reports the same totals for all workers (no per-worker numbers overwritten by the
next scrape, no multiprocess directory). A scrape reads the cluster store once (the
rollup, with the health job's last result beside it) and never opens a database
connection. Labels are ``pool``, ``kind`` and ``alias`` only.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse
from django.views import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from .cluster.view import ClusterView
from .core.snapshots import BUCKET_BOUNDS, PoolSnapshot

logger = logging.getLogger(__name__)

PREFIX = "connection_pool"
LABELS = ("pool", "kind", "alias")

Reading = Callable[[PoolSnapshot], "float | int | bool | None"]

#: Gauges: (metric suffix, help, reading). One vocabulary: the same reading for every kind of pool.
GAUGES: tuple[tuple[str, str, Reading], ...] = (
    ("active_connections", "Connections checked out right now.", lambda p: p.gauges.active),
    ("available_connections", "Idle connections ready in the pool.", lambda p: p.gauges.available),
    ("waiting_requests", "Requests waiting for a connection right now.", lambda p: p.gauges.waiting),
    ("size", "Configured pool size (pool_size; max_connections for Redis).",
     lambda p: p.gauges.max_size if p.kind == "redis" else p.gauges.size if p.kind == "persistent"
     else p.gauges.min_size),
    ("max_size", "Most connections the pool may open (pool_size + max_overflow).",
     lambda p: p.gauges.size if p.kind == "persistent" else p.gauges.max_size),
    ("overflow_connections", "Connections open beyond pool_size right now.",
     lambda p: p.gauges.overflow_in_use if p.kind == "postgresql" else None),
    ("peak_connections", "Most connections in use at once since the last reset.", lambda p: p.peak_connections),
    ("replica_lag_seconds", "Replication lag of a read replica, in seconds.", lambda p: p.gauges.replica_lag_seconds),
)

#: Counters (exposed with ``_total``): (metric name without _total, help, reading).
COUNTERS: tuple[tuple[str, str, Reading], ...] = (
    ("checkouts", "Connections handed out.", lambda p: p.counters.checkouts),
    ("connections_created", "Connections opened.", lambda p: p.counters.connections_created),
    ("connections_closed", "Connections closed.", lambda p: p.counters.connections_closed),
    ("connections_recycled", "Connections closed for age (pool_recycle).",
     lambda p: p.counters.recycled if p.is_database else None),
    ("connection_errors", "Failed connection attempts and broken connections.",
     lambda p: p.counters.connection_errors),
    ("timeouts", "Checkouts that gave up waiting (pool_timeout).", lambda p: p.counters.timeouts),
    ("fallbacks", "Reads sent elsewhere because this replica could not serve them.",
     lambda p: p.counters.fallbacks if p.is_database else None),
)


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


def _labels(pool: PoolSnapshot) -> list[str]:
    return [pool.name, pool.kind, pool.alias]


def _number(value: float | int | bool | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class PoolCollector:
    """Reads the cluster view (and the last health result) on every scrape."""

    def describe(self) -> list[Metric]:
        # Names only, without touching Redis or a database (registration must be cheap).
        families: list[Metric] = [GaugeMetricFamily(_name(s), h, labels=LABELS) for s, h, _ in GAUGES]
        families.append(GaugeMetricFamily(_name("healthy"), "1 when the pool's health check passes.", labels=LABELS))
        families += [CounterMetricFamily(_name(s), h, labels=LABELS) for s, h, _ in COUNTERS]
        families.append(HistogramMetricFamily(_name("wait_seconds"), "Seconds waited for a connection.", labels=LABELS))
        families += [family(name, help_text, labels=labels) for family, name, help_text, labels in SERVER_FAMILIES]
        families.append(GaugeMetricFamily(_name("processes_reporting"), "Server processes publishing statistics."))
        families.append(GaugeMetricFamily(_name("stats_cluster"), "1 when the numbers are the cluster aggregate."))
        return families

    def collect(self) -> Iterator[Metric]:
        from .insight.health import latest
        from .service import connection_pool_service

        try:
            view = connection_pool_service.view()
        except Exception:  # a broken view must not break the whole /metrics page
            logger.exception("connection_pools metrics: reading the cluster view failed")
            yield GaugeMetricFamily(_name("stats_cluster"), "1 when the numbers are the cluster aggregate.", value=0)
            return
        pools = [pool for pool in view.pools if pool.is_database or pool.kind == "redis"]
        yield from _families(GaugeMetricFamily, GAUGES, pools)

        healthy = GaugeMetricFamily(_name("healthy"), "1 when the pool's health check passes.", labels=LABELS)
        report = latest(view.health)  # the health job's last result: a scrape never probes
        for pool in pools:
            check = report.pool(pool.name) if report is not None else None
            if check is not None:
                healthy.add_metric(_labels(pool), 1.0 if check.healthy else 0.0)
        yield healthy

        yield from _families(CounterMetricFamily, COUNTERS, pools)

        wait = HistogramMetricFamily(_name("wait_seconds"), "Seconds waited for a connection.", labels=LABELS)
        for pool in pools:
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKET_BOUNDS, pool.wait.buckets, strict=True):
                cumulative += count
                buckets.append((_le(bound), float(cumulative)))
            wait.add_metric(_labels(pool), buckets, pool.wait.sum)
        yield wait

        yield from server_tier_families(view)
        yield GaugeMetricFamily(_name("processes_reporting"), "Server processes publishing statistics.",
                                value=float(view.process_count))
        yield GaugeMetricFamily(_name("stats_cluster"), "1 when the numbers are the cluster aggregate.",
                                value=1.0 if view.source == "cluster" else 0.0)


def _families(family: type[GaugeMetricFamily] | type[CounterMetricFamily],
              specs: tuple[tuple[str, str, Reading], ...], pools: list[PoolSnapshot]) -> Iterator[Metric]:
    """One family per spec, a sample per pool that has a value for it."""
    for suffix, help_text, reading in specs:
        metric = family(_name(suffix), help_text, labels=LABELS)
        for pool in pools:
            value = _number(reading(pool))
            if value is not None:
                metric.add_metric(_labels(pool), value)
        yield metric


# --- the server tier: the census of each server and each PgBouncer (their last reports) -----------------
SERVER_LABELS = ("server", "alias")
BOUNCER_LABELS = ("pgbouncer", "database", "user")
#: PgBouncer's SHOW POOLS figures, with its names: (metric suffix, help).
BOUNCER_POOL_GAUGES = (
    ("cl_active", "PgBouncer clients linked to a server connection (cl_active)."),
    ("cl_waiting", "PgBouncer clients waiting for a server connection (cl_waiting)."),
    ("sv_active", "PgBouncer server connections linked to a client (sv_active)."),
    ("sv_idle", "PgBouncer server connections idle and usable (sv_idle)."),
    ("sv_used", "PgBouncer server connections idle, to be tested before use (sv_used)."),
)
SERVER_FAMILIES: tuple[tuple[type[GaugeMetricFamily] | type[CounterMetricFamily], str, str, tuple[str, ...]], ...] = (
    (GaugeMetricFamily, _name("server_census_ok"), "1 when the last census of the server succeeded.", SERVER_LABELS),
    (GaugeMetricFamily, _name("server_connections"), "Client connections on the server, by state.",
     (*SERVER_LABELS, "state")),
    (GaugeMetricFamily, _name("server_owner_connections"),
     "Connections on the server by owner: ours, probe, other, replication, background.", (*SERVER_LABELS, "owner")),
    (GaugeMetricFamily, _name("server_max_connections"), "The server's max_connections.", SERVER_LABELS),
    (GaugeMetricFamily, _name("server_headroom_connections"),
     "Connections the server still accepts (max_connections - reserved - in use).", SERVER_LABELS),
    (GaugeMetricFamily, _name("server_blocked_backends"), "Backends waiting on a lock.", SERVER_LABELS),
    (GaugeMetricFamily, _name("server_leaked_connections"), "Connections of ours that no pool holds.",
     SERVER_LABELS),
    (GaugeMetricFamily, _name("server_longest_query_seconds"), "Age of the longest running query.",
     SERVER_LABELS),
    (GaugeMetricFamily, _name("server_longest_idle_in_transaction_seconds"),
     "Age of the longest idle-in-transaction session.", SERVER_LABELS),
    (GaugeMetricFamily, _name("pgbouncer_up"), "1 when PgBouncer's admin console answered the last read.",
     ("pgbouncer",)),
    (GaugeMetricFamily, _name("pgbouncer_paused_databases"), "PgBouncer database entries paused.", ("pgbouncer",)),
    (GaugeMetricFamily, _name("pgbouncer_max_client_conn"), "PgBouncer's max_client_conn.", ("pgbouncer",)),
    (GaugeMetricFamily, _name("pgbouncer_clients"), "PgBouncer client connections.", ("pgbouncer",)),
    *((GaugeMetricFamily, _name(f"pgbouncer_{suffix}"), help_text, BOUNCER_LABELS)
      for suffix, help_text in BOUNCER_POOL_GAUGES),
    (GaugeMetricFamily, _name("pgbouncer_maxwait_seconds"), "Seconds the oldest waiting PgBouncer client waited.",
     BOUNCER_LABELS),
    (GaugeMetricFamily, _name("pgbouncer_avg_wait_seconds"), "PgBouncer's average client wait (SHOW STATS).",
     ("pgbouncer", "database")),
    (CounterMetricFamily, _name("pgbouncer_transactions"), "Transactions PgBouncer pooled (SHOW STATS).",
     ("pgbouncer", "database")),
    (CounterMetricFamily, _name("pgbouncer_queries"), "Queries PgBouncer pooled (SHOW STATS).",
     ("pgbouncer", "database")),
)


def server_tier_families(view: ClusterView) -> Iterator[Metric]:
    """The server tier's families from the view's reports (the last census and PgBouncer reads)."""
    made = {name: family(name, help_text, labels=labels) for family, name, help_text, labels in SERVER_FAMILIES}

    def add(suffix: str, labels: list[str], value: float | int | None) -> None:
        if value is not None:
            made[_name(suffix)].add_metric(labels, float(value))

    for census in view.census():
        where = [census.server, census.alias]
        add("server_census_ok", where, 1 if census.ok else 0)
        if not census.ok:
            continue
        for state, count in census.states.to_wire().items():
            add("server_connections", [*where, state], count)
        for owner, count in census.by_kind.items():
            add("server_owner_connections", [*where, owner], count)
        add("server_max_connections", where, census.max_connections)
        add("server_headroom_connections", where, census.headroom)
        add("server_blocked_backends", where, census.blocked_total)
        add("server_leaked_connections", where, census.leaks_total)
        longest, idle = census.longest_query, census.longest_idle_in_transaction
        add("server_longest_query_seconds", where, longest.seconds if longest else 0)
        add("server_longest_idle_in_transaction_seconds", where, idle.seconds if idle else 0)
    for bouncer in view.pgbouncers():
        add("pgbouncer_up", [bouncer.name], 1 if bouncer.reachable else 0)
        if not bouncer.reachable:
            continue
        add("pgbouncer_paused_databases", [bouncer.name], len(bouncer.paused))
        add("pgbouncer_max_client_conn", [bouncer.name], bouncer.config.max_client_conn)
        add("pgbouncer_clients", [bouncer.name], bouncer.clients)
        for pool in bouncer.pools:
            labels = [bouncer.name, pool.database, pool.user]
            for suffix, _ in BOUNCER_POOL_GAUGES:
                add(f"pgbouncer_{suffix}", labels, getattr(pool, suffix))
            add("pgbouncer_maxwait_seconds", labels, pool.maxwait)
        for stats in bouncer.stats:
            labels = [bouncer.name, stats.database]
            add("pgbouncer_avg_wait_seconds", labels, stats.avg_wait_time)
            add("pgbouncer_transactions", labels, stats.total_xact_count)
            add("pgbouncer_queries", labels, stats.total_query_count)
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
