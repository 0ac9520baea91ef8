"""Health checks with latency, and the servers' connection budgets.

* Each database alias is checked with ``SELECT 1`` on a dedicated short-lived
  connection (never from the app's pool: a health check must neither wait behind an
  exhausted pool nor take its slot); the same round trip reads the server's
  ``max_connections`` and reserved connections for the budget.
* Each Redis pool is checked with ``PING`` (:func:`connection_pools.pools.redis.ping`).
* All checks run concurrently with one deadline: a hung server makes :func:`run_checks`
  answer late by at most ``HEALTH_CHECK_TIMEOUT`` (plus a small grace).

The budget of a server is ``max_connections - superuser_reserved_connections -
reserved_connections`` against the sum of ``pool_size + max_overflow`` over every
reporting process and every alias connecting to that server.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from . import conf, stats

logger = logging.getLogger(__name__)

GRACE_SECONDS = 0.25
LIMITS_TTL = 300.0  # seconds a server's max_connections is trusted
LIMITS_FAILURE_TTL = 30.0  # seconds before asking a server that did not answer again

CHECK_SQL = """
SELECT 1,
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int
"""

_limits_lock = threading.Lock()
_limits: dict[str, tuple[float, dict[str, int] | None]] = {}


# --- which servers ---------------------------------------------------------------------------
def database_aliases() -> list[str]:
    """Every PostgreSQL alias in ``DATABASES``."""
    from django.conf import settings

    return [alias for alias, db in settings.DATABASES.items() if "postgresql" in str(db.get("ENGINE", ""))]


def server_of(alias: str) -> str:
    """``host:port`` of the server an alias connects to."""
    from django.conf import settings

    db = settings.DATABASES.get(alias, {})
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"


def _connect_params(alias: str, timeout: float) -> dict[str, Any]:
    from django.db import connections

    params = dict(connections[alias].get_connection_params())  # a copy: for a pooled alias it is the pool's own kwargs
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    params["connect_timeout"] = max(2, math.ceil(timeout))  # libpq's minimum is 2 s; the deadline is ours
    params["options"] = f"{params.get('options', '')} -c statement_timeout={max(int(timeout * 1000), 1)}".strip()
    params["application_name"] = "connection_pools.health"
    params["autocommit"] = True
    return params


# --- single checks -------------------------------------------------------------------------------
def check_database(alias: str, timeout: float) -> dict[str, Any]:
    """``SELECT 1`` on ``alias``: ``{"kind", "healthy", "latency_ms", "connect_ms", "error"}``; never raises.

    Also refreshes the cached limits of the alias's server.
    """
    result: dict[str, Any] = {"kind": "postgresql", "alias": alias, "healthy": False, "latency_ms": None,
                              "connect_ms": None, "error": None}
    started = time.monotonic()
    try:
        with psycopg.connect(**_connect_params(alias, timeout)) as conn:
            connected = time.monotonic()
            row = conn.execute(CHECK_SQL).fetchone()
            done = time.monotonic()
    except (psycopg.Error, OSError) as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc).strip() or 'connection failed'}"
        _remember_limits(server_of(alias), None)
        return result
    assert row is not None
    result.update(healthy=row[0] == 1, latency_ms=round((done - connected) * 1000, 3),
                  connect_ms=round((connected - started) * 1000, 3))
    _remember_limits(server_of(alias), {"max_connections": row[1], "superuser_reserved": row[2], "reserved": row[3]})
    return result


def replica_aliases() -> list[str]:
    """The replica aliases (from :mod:`connection_pools.replicas`), or none without it."""
    try:
        from .replicas import replica_aliases as aliases
    except ImportError:
        return []
    return list(aliases())


def check_replica(alias: str, timeout: float) -> dict[str, Any]:
    """``SELECT 1`` on a replica, then a fresh lag sample (which also updates its rotation state)."""
    result = check_database(alias, timeout)
    if result["healthy"]:
        try:
            from .replicas import sample

            sample(alias)
        except Exception:  # the lag is then the last one sampled; the check itself passed
            logger.exception("sampling the lag of %s failed", alias)
    return result


def check_redis(name: str, timeout: float) -> dict[str, Any]:
    """``PING`` the server of Redis pool ``name``; never raises."""
    result: dict[str, Any] = {"kind": "redis", "healthy": False, "latency_ms": None, "error": None}
    try:
        from .pools.redis import ping
    except ImportError as exc:  # the Redis pools are not installed: say so, do not crash
        result["error"] = f"Redis pools unavailable: {exc}"
        return result
    answer = ping(name, timeout)
    result.update(healthy=answer.ok, error=answer.error,
                  latency_ms=None if answer.latency_seconds is None else round(answer.latency_seconds * 1000, 3))
    return result


# --- running them together -------------------------------------------------------------------------
def run_concurrently(checks: dict[str, Callable[[], dict[str, Any]]], timeout: float) -> dict[str, dict[str, Any]]:
    """Run every check in its own daemon thread; whatever has not answered by the deadline is reported
    as failed (its thread finishes on its own, bounded by its own timeouts)."""
    results: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def run(name: str, check: Callable[[], dict[str, Any]]) -> None:
        try:
            outcome = check()
        except Exception as exc:  # a broken check is an unhealthy pool, not a crash
            outcome = {"healthy": False, "latency_ms": None, "error": f"{type(exc).__name__}: {exc}"}
        with lock:
            results[name] = outcome
            if len(results) == len(checks):
                finished.set()

    if not checks:
        return {}
    for name, check in checks.items():
        threading.Thread(target=run, args=(name, check), name=f"health-{name}", daemon=True).start()
    finished.wait(timeout + GRACE_SECONDS)
    with lock:
        answered = dict(results)
    for name in checks:
        if name not in answered:
            answered[name] = {"healthy": False, "latency_ms": None,
                              "error": f"no answer within {timeout:g} s (HEALTH_CHECK_TIMEOUT)"}
    return answered


def run_checks(timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Check every database alias and Redis pool: ``{"db_default": {...}, "redis_main": {...}}``."""
    timeout = float(conf.get("HEALTH_CHECK_TIMEOUT") if timeout is None else timeout)
    checks: dict[str, Callable[[], dict[str, Any]]] = {}
    replicas = set(replica_aliases())
    for alias in database_aliases():
        if alias in replicas:
            checks[stats.pool_name_for_alias(alias)] = lambda alias=alias: check_replica(alias, timeout)
        else:
            checks[stats.pool_name_for_alias(alias)] = lambda alias=alias: check_database(alias, timeout)
    for name in conf.get("REDIS"):
        checks[stats.pool_name_for_redis(name)] = lambda name=name: check_redis(name, timeout)
    return run_concurrently(checks, timeout)


def replica_states() -> dict[str, dict[str, Any]]:
    """This process's view of each replica (lag, rotation), or {} without the replica module."""
    try:
        from .replicas import replica_status
    except ImportError:
        return {}
    try:
        return replica_status()
    except Exception:  # a broken replica view must not break health
        logger.exception("replica_status() failed")
        return {}


# --- budgets ------------------------------------------------------------------------------------------
def _remember_limits(server: str, limits: dict[str, int] | None) -> None:
    with _limits_lock:
        _limits[server] = (time.monotonic(), limits)


def server_limits(alias: str, *, timeout: float | None = None, refresh: bool = True) -> dict[str, int] | None:
    """``{"max_connections", "superuser_reserved", "reserved"}`` of the alias's server, cached.

    Asks the server (a health check of ``alias``) when the cache is stale and ``refresh``.
    """
    server = server_of(alias)
    with _limits_lock:
        cached = _limits.get(server)
    if cached is not None:
        age = time.monotonic() - cached[0]
        if age < (LIMITS_TTL if cached[1] is not None else LIMITS_FAILURE_TTL) or not refresh:
            return cached[1]
    elif not refresh:
        return None
    check_database(alias, float(conf.get("HEALTH_CHECK_TIMEOUT") if timeout is None else timeout))
    with _limits_lock:
        cached = _limits.get(server)
    return cached[1] if cached else None


def forget_limits() -> None:
    """Drop cached server limits (tests)."""
    with _limits_lock:
        _limits.clear()


def budgets(snapshots: Iterable[dict[str, Any]],
            limits_for: Callable[[str], dict[str, int] | None]) -> list[dict[str, Any]]:
    """One budget per PostgreSQL server from the processes' snapshots (pure but for ``limits_for(alias)``).

    ``{"server", "pool", "aliases", "max_connections", "reserved", "available", "configured_total",
    "processes", "pairs", "pool_size", "max_overflow", "ok"}``; ``ok`` is None when the
    server's limits are unknown.
    """
    servers: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        process = f"{snapshot.get('host')}:{snapshot.get('pid')}"
        for pool in snapshot.get("pools", {}).values():
            config = pool.get("config") or {}
            alias = pool.get("alias")
            if pool.get("kind") != "postgresql" or not alias or "pool_size" not in config:
                continue
            entry = servers.setdefault(server_of(alias), {
                "server": server_of(alias), "pool": pool["name"], "aliases": [], "processes": set(), "pairs": 0,
                "configured_total": 0, "pool_size": int(config["pool_size"]),
                "max_overflow": int(config.get("max_overflow", 0)),
            })
            if alias not in entry["aliases"]:
                entry["aliases"].append(alias)
            entry["processes"].add(process)
            entry["pairs"] += 1
            entry["configured_total"] += int(config["pool_size"]) + int(config.get("max_overflow", 0))
    result = []
    for entry in servers.values():
        limits = limits_for(entry["aliases"][0])
        entry["processes"] = len(entry["processes"])
        entry["aliases"] = sorted(entry["aliases"])
        if limits is None:
            entry.update(max_connections=None, reserved=None, available=None, ok=None)
        else:
            reserved = int(limits["superuser_reserved"]) + int(limits["reserved"])
            available = int(limits["max_connections"]) - reserved
            entry.update(max_connections=int(limits["max_connections"]), reserved=reserved, available=available,
                         ok=entry["configured_total"] <= available)
        result.append(entry)
    return sorted(result, key=lambda b: b["server"])


def overall_status(pools: dict[str, dict[str, Any]], budget_ok: Iterable[bool | None]) -> str:
    """``unhealthy`` when a primary database fails; ``degraded`` when anything else fails, a replica
    is out of rotation or a budget is exceeded; ``healthy`` otherwise."""
    status = "healthy"
    for check in pools.values():
        if not check.get("healthy"):
            if check.get("kind") == "postgresql" and check.get("role", "primary") == "primary":
                return "unhealthy"
            status = "degraded"
        elif check.get("in_rotation") is False:
            status = "degraded"
    if any(ok is False for ok in budget_ok):
        status = "degraded"
    return status
