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

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from .cluster.view import ClusterView, ProcessInfo
from .core.reports import HealthReport, PoolHealth, Recommendation, ServerBudget
from .core.snapshots import HistogramSnapshot, PoolSnapshot

#: The guide's six PostgreSQL settings (and our pre-ping window), as each pool's ``config`` shows them.
DATABASE_CONFIG_KEYS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "pool_use_lifo",
                        "pool_pre_ping_window")


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

