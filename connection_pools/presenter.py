"""The guide's response shape, made in one place from the typed cluster view.

Everything below this module speaks one vocabulary (:mod:`connection_pools.core.snapshots`);
here, at the edge, a database pool becomes ``database_pools.<alias>`` with
``active_connections`` / ``peak_connections`` / ``connections_created``, and a Redis pool
becomes ``redis_pools.<name>`` with ``in_use_connections`` / ``created_connections`` /
``peak_in_use``, as the guide's example response has them. The API's serializers and
OpenAPI schema (:mod:`connection_pools.api.serializers`) describe exactly these dicts, and
a test validates real responses against that schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from .cluster.view import ClusterView, ProcessInfo
from .core.census import OWNER_KINDS, ServerCensus, Session
from .core.pooler import PgBouncerReport
from .core.reports import HealthReport, PoolHealth, Recommendation, ServerBudget
from .core.snapshots import HistogramSnapshot, PoolSnapshot

#: The guide's six PostgreSQL settings (and our pre-ping window and release), as each pool's ``config`` shows them.
DATABASE_CONFIG_KEYS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "pool_use_lifo",
                        "pool_pre_ping_window", "release")


def duration(histogram: HistogramSnapshot) -> dict[str, float]:
    """count, mean, max and p50/p95/p99 (seconds)."""
    return asdict(histogram.summary())


def response_key(pool: PoolSnapshot) -> str:
    """``<alias>`` for a database pool, ``<name>`` for a Redis pool (the guide's grouping keys)."""
    return pool.alias or pool.name.split("_", 1)[-1]


def database_pool(pool: PoolSnapshot, *, now: float) -> dict[str, Any]:
    """One ``database_pools.<alias>`` entry."""
    gauges, counters, config = pool.gauges, pool.counters, pool.config
    if pool.kind == "postgresql":
        per_process_size = _int(config.get("pool_size"))
        pool_size = gauges.min_size or per_process_size * pool.processes
        max_size = gauges.max_size or (per_process_size + _int(config.get("max_overflow"))) * pool.processes
        shown: dict[str, Any] = {key: config.get(key) for key in DATABASE_CONFIG_KEYS}
    else:  # persistent connections: one per thread, no fixed size
        pool_size = max_size = gauges.size
        shown = dict(config)
    return {
        "pool": pool.name,
        "kind": pool.kind,
        "role": pool.role or "primary",
        "active_connections": gauges.active,
        "peak_connections": pool.peak_connections,
        "process_peak": pool.peak_active,
        "connections_created": counters.connections_created,
        "connections_closed": counters.connections_closed,
        "average_wait_time": pool.wait.mean,
        "pool_size": pool_size,
        "overflow": gauges.overflow_in_use,
        "max_overflow": max(max_size - pool_size, 0),
        "max_size": max_size,
        "size": gauges.size,
        "available_connections": gauges.available,
        "waiting": gauges.waiting,
        "checkouts": counters.checkouts,
        "connection_errors": counters.connection_errors,
        "timeouts": counters.timeouts,
        "recycled": counters.recycled,
        "recycle_rate_per_minute": round(pool.recycle_rate_per_minute, 4),
        "pre_ping_failures": counters.pre_ping_failures,
        "long_holds": counters.long_holds,
        "fallbacks": counters.fallbacks,
        "wait_time": duration(pool.wait),
        "hold_time": duration(pool.hold),
        "query_time": duration(pool.query),
        "replica_lag_seconds": gauges.replica_lag_seconds,
        "in_rotation": gauges.in_rotation,
        "processes": pool.processes,
        "window_seconds": pool.window_seconds(now),
        "config": shown,
    }


def redis_pool(pool: PoolSnapshot, *, now: float) -> dict[str, Any]:
    """One ``redis_pools.<name>`` entry."""
    gauges, counters = pool.gauges, pool.counters
    return {
        "pool": pool.name,
        "kind": "redis",
        "in_use_connections": gauges.active,
        "available_connections": gauges.available,
        "created_connections": counters.connections_created,
        "closed_connections": counters.connections_closed,
        "max_connections": gauges.max_size,
        "peak_in_use": pool.peak_connections,
        "process_peak": pool.peak_active,
        "waiting": gauges.waiting,
        "checkouts": counters.checkouts,
        "connection_errors": counters.connection_errors,
        "socket_timeouts": counters.socket_timeouts,
        "timeouts": counters.timeouts,
        "wait_time": duration(pool.wait),
        "processes": pool.processes,
        "window_seconds": pool.window_seconds(now),
        "config": dict(pool.config),
    }


def pools(snapshots: Iterable[PoolSnapshot], *, now: float) -> dict[str, dict[str, Any]]:
    """``{"database_pools": {...}, "redis_pools": {...}}``."""
    database: dict[str, Any] = {}
    redis: dict[str, Any] = {}
    for pool in snapshots:
        if pool.is_database:
            database[response_key(pool)] = database_pool(pool, now=now)
        elif pool.kind == "redis":
            redis[response_key(pool)] = redis_pool(pool, now=now)
    return {"database_pools": database, "redis_pools": redis}


def recommendation(rec: Recommendation) -> dict[str, Any]:
    return rec.to_wire()


def process(info: ProcessInfo) -> dict[str, Any]:
    return {"host": info.host, "pid": info.pid, "age_seconds": info.age_seconds, "epoch": info.epoch}


def stats(view: ClusterView, recommendations: Iterable[Recommendation], *, now: float) -> dict[str, Any]:
    """The guide's stats response (``GET stats``, ``pool_stats()``)."""
    result: dict[str, Any] = pools(view.pools, now=now)
    result["recommendations"] = [recommendation(rec) for rec in recommendations]
    result["processes"] = {"count": view.process_count, "list": [process(p) for p in view.processes]}
    result["pgbouncer_pools"] = pgbouncer_pools(view.pgbouncers(), now=now)
    result["source"] = view.source
    result["redis_available"] = view.redis_available
    result["generated_at"] = now
    if view.per_process:
        result["per_process"] = {key: pools(snapshots, now=now) for key, snapshots in sorted(view.per_process.items())}
    return result


def pool_check(check: PoolHealth) -> dict[str, Any]:
    """One pool's health, as ``GET health`` shows it."""
    if check.kind == "redis":
        return {"kind": "redis", "healthy": check.healthy, "latency_ms": check.latency_ms, "error": check.error}
    if check.kind == "pgbouncer":
        return {"kind": "pgbouncer", "alias": check.alias, "healthy": check.healthy, "latency_ms": check.latency_ms,
                "error": check.error, "role": "pooler", "paused": list(check.paused)}
    return {"kind": check.kind, "alias": check.alias, "healthy": check.healthy, "latency_ms": check.latency_ms,
            "connect_ms": check.connect_ms, "error": check.error, "role": check.role or "primary",
            "replica_lag_seconds": check.replica_lag_seconds, "in_rotation": check.in_rotation}


def budget(entry: ServerBudget) -> dict[str, Any]:
    return entry.to_wire()


def health(report: HealthReport, budgets: Iterable[ServerBudget], status: str, *, now: float,
           primary_server: str | None) -> dict[str, Any]:
    """The ``GET health`` response: every pool, the primary's budget (and every server's), the status."""
    servers = [budget(b) for b in budgets]
    main = next((b for b in servers if b["server"] == primary_server), servers[0] if servers else None)
    summary: dict[str, Any] = {"max_connections": None, "reserved": None, "available": None, "configured_total": 0,
                               "processes": 0, "ok": None, "server": primary_server}
    if main is not None:
        summary = {key: main[key] for key in ("max_connections", "reserved", "available", "configured_total",
                                               "processes", "ok", "server")}
    summary["servers"] = servers
    return {
        "status": status,
        "checked_at": report.checked_at,
        "age_seconds": round(max(now - report.checked_at, 0.0), 3),
        "pools": {check.name: pool_check(check) for check in report.pools},
        "server_budget": summary,
    }


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0



# --- the server tier -------------------------------------------------------------------------------
def pgbouncer_key(database: str, user: str) -> str:
    """``<database>/<user>``: how ``pgbouncer_pools`` is keyed (PgBouncer's own pool identity)."""
    return f"{database}/{user}"


#: ``SHOW POOLS`` figures summed over PgBouncers (``maxwait`` takes the worst).
PGBOUNCER_SUMMED = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
#: ``SHOW STATS`` figures (per database) shown with each of its pools, summed over PgBouncers.
PGBOUNCER_STATS = ("total_xact_count", "total_query_count", "total_wait_time", "avg_xact_count",
                   "avg_query_count")


def pgbouncer_pools(reports: Iterable[PgBouncerReport], *, now: float) -> dict[str, dict[str, Any]]:
    """``pgbouncer_pools``: PgBouncer's pools keyed by ``database/user``, with PgBouncer's names, summed over
    every PgBouncer that has the pool (``pgbouncers`` lists them); ``avg_wait_time`` in seconds."""
    found: dict[str, dict[str, Any]] = {}
    for report in sorted(reports, key=lambda r: r.name):
        for pool in report.pools:
            stats = report.stats_for(pool.database)
            entry = found.setdefault(pgbouncer_key(pool.database, pool.user), {
                "database": pool.database, "user": pool.user, **dict.fromkeys(PGBOUNCER_SUMMED, 0), "maxwait": 0.0,
                "pool_mode": pool.pool_mode, "avg_wait_time": 0.0, **dict.fromkeys(PGBOUNCER_STATS, 0),
                "pgbouncers": [], "age_seconds": 0.0,
            })
            for name in PGBOUNCER_SUMMED:
                entry[name] += getattr(pool, name)
            entry["maxwait"] = max(entry["maxwait"], round(pool.maxwait, 6))
            if stats is not None:
                for name in PGBOUNCER_STATS:
                    entry[name] += getattr(stats, name)
                entry["avg_wait_time"] = max(entry["avg_wait_time"], stats.avg_wait_time)
            entry["pgbouncers"].append(report.name)
            entry["age_seconds"] = max(entry["age_seconds"], round(max(now - report.taken_at, 0.0), 3))
    return found


def pgbouncer(report: PgBouncerReport, *, now: float) -> dict[str, Any]:
    """One PgBouncer as ``GET server`` shows it."""
    config = report.config
    return {
        "name": report.name, "server": report.server, "reachable": report.reachable, "error": report.error,
        "version": report.version, "taken_at": report.taken_at, "age_seconds": round(max(now - report.taken_at, 0), 3),
        "paused": list(report.paused), "clients": report.clients, "client_states": dict(report.client_states),
        "servers": report.servers, "server_states": dict(report.server_states),
        "recent_logins": report.recent_logins,
        "config": {"max_client_conn": config.max_client_conn, "default_pool_size": config.default_pool_size,
                   "reserve_pool_size": config.reserve_pool_size, "max_db_connections": config.max_db_connections,
                   "pool_mode": config.pool_mode},
        "pools": pgbouncer_pools([report], now=now),
    }


def pgbouncer_check(report: PgBouncerReport, *, now: float) -> PoolHealth:
    """A PgBouncer's health from its last report: reachable and nothing paused."""
    error = report.error
    if error is None and report.paused:
        error = f"paused: {', '.join(report.paused)}"
    return PoolHealth(name=report.name, kind="pgbouncer", healthy=error is None, role="pooler", alias=report.server,
                      latency_ms=report.duration_ms if report.reachable else None, error=error, paused=report.paused)


def _session(entry: Session | None, *, query_text: bool) -> dict[str, Any] | None:
    if entry is None:
        return None
    shown = entry.to_wire()
    if not query_text:
        shown["query"] = None  # the reader's setting decides too: never shown when it is off here
    return shown


def census(report: ServerCensus, *, now: float, query_text: bool, stale_after: float) -> dict[str, Any]:
    """One server's census as ``GET server`` shows it (query text only when ``query_text``)."""
    age = round(max(now - report.taken_at, 0.0), 3)
    return {
        "name": report.name, "server": report.server, "alias": report.alias, "role": report.role or "primary",
        "aliases": list(report.aliases), "ok": report.ok, "error": report.error, "taken_at": report.taken_at,
        "age_seconds": age, "stale": age > stale_after, "duration_ms": report.duration_ms,
        "max_connections": report.max_connections, "superuser_reserved": report.superuser_reserved,
        "reserved": report.reserved, "available": report.available, "connections": report.connections,
        "headroom": report.headroom, "idle_in_transaction_timeout_ms": report.idle_in_transaction_timeout_ms,
        "states": report.states.to_wire(), "by_kind": {kind: report.by_kind.get(kind, 0) for kind in OWNER_KINDS},
        "owners": [owner.to_wire() for owner in report.owners], "owners_total": report.owners_total,
        "longest_query": _session(report.longest_query, query_text=query_text),
        "longest_idle_in_transaction": _session(report.longest_idle_in_transaction, query_text=query_text),
        "idle_in_transaction": [_session(s, query_text=query_text) for s in report.idle_in_transaction],
        "blocked": [{"session": _session(b.session, query_text=query_text), "blocked_by": list(b.blocked_by),
                     "blockers": list(b.blockers)} for b in report.blocked],
        "blocked_total": report.blocked_total, "leaks": [leak.to_wire() for leak in report.leaks],
        "leaks_total": report.leaks_total, "leaks_checked": report.leaks_checked,
        "query_text": query_text and report.query_text,
    }


def server(view: ClusterView, recommendations: Iterable[Recommendation], *, now: float, query_text: bool,
           stale_after: float, history: Mapping[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The ``GET server`` response: the census of every server, every PgBouncer, and their recommendations."""
    rules = {"idle_in_transaction", "server_headroom", "other_clients", "blocked_backends", "leaked_connections",
             "pgbouncer_waiting", "pgbouncer_client_limit", "login_storm", "budget_overrun"}
    return {
        "servers": {r.name: census(r, now=now, query_text=query_text, stale_after=stale_after)
                    for r in sorted(view.census(), key=lambda r: r.name)},
        "pgbouncers": {r.name: pgbouncer(r, now=now) for r in sorted(view.pgbouncers(), key=lambda r: r.name)},
        "recommendations": [recommendation(rec) for rec in recommendations if rec.rule in rules],
        "history": dict(history or {}),
        "source": view.source,
        "generated_at": now,
    }
