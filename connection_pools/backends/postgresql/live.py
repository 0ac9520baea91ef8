"""The PostgreSQL pools of this process: find, ping, resize, warm, close, and fork handling.

The pools themselves are built by the engine (:mod:`connection_pools.backends.postgresql`,
one :class:`~connection_pools.backends.postgresql.pool.InstrumentedPool` per alias and per
process); this module is the API the rest of the app (replicas, tuner, health, admin,
``warmpools``, gunicorn hooks) uses on them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ... import conf
from ...conf.aliases import pool_name_for_alias
from ...conf.pool_options import PoolConfig, is_pooled, resolve, role_for, target_of
from . import fork
from .base import DatabaseWrapper, live_pool
from .compat import pool_of
from .pool import DatabaseUnavailable, InstrumentedPool

__all__ = [
    "DatabaseUnavailable",
    "InstrumentedPool",
    "PoolConfig",
    "after_fork",
    "close_pools",
    "get_pool",
    "live_pool",
    "ping",
    "pooled_aliases",
    "resize_pool",
    "resolve",
    "role_for",
    "target_of",
    "warm_pools",
]

ENGINE = "connection_pools.backends.postgresql"

logger = logging.getLogger("connection_pools.postgres")


def _live_pools() -> dict[str, InstrumentedPool]:
    return DatabaseWrapper._connection_pools


def pooled_aliases() -> list[str]:
    """Aliases of ``DATABASES`` that use our engine with a pool."""
    from django.db import connections

    return [alias for alias, db in connections.settings.items() if db.get("ENGINE") == ENGINE and is_pooled(db)]


def get_pool(alias: str) -> InstrumentedPool | None:
    """The live pool of ``alias`` in this process (built on first use), or None if it is not pooled."""
    from django.db import connections

    if alias not in connections.settings:
        raise ValueError(f"unknown database alias {alias!r} (configured: {', '.join(connections.settings)})")
    pool = getattr(connections[alias], "pool", None)
    return pool if isinstance(pool, InstrumentedPool) else None


def ping(alias: str, *, timeout: float | None = None) -> float:
    """Check a connection out of ``alias``'s pool, run ``SELECT 1``, return it; the seconds it took.

    Raises ``PoolTimeout`` / :class:`DatabaseUnavailable` / psycopg errors, so health
    checks can report the reason. The checkout is recorded like any other.
    """
    pool = get_pool(alias)
    if pool is None:
        raise ValueError(f"database alias {alias!r} is not pooled")
    pool.open()
    started = time.monotonic()
    conn = pool.getconn(timeout=timeout)
    try:
        conn.execute("SELECT 1")
    finally:
        pool.putconn(conn)
    return time.monotonic() - started


def resize_pool(alias: str, *, pool_size: int, max_overflow: int, reason: str = "manual") -> dict[str, Any]:
    """Change ``pool_size``/``max_overflow`` of a live pool (psycopg's ``resize``).

    Growing opens connections in the background; shrinking closes surplus idle
    connections at once and busy ones as they are returned. Sends ``pool_resized`` and
    returns ``{"pool", "old", "new"}``.
    """
    from ...signals import pool_resized

    for key, value, minimum in (("pool_size", pool_size, 0), ("max_overflow", max_overflow, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{key} must be a whole number >= {minimum}, not {value!r}")
    if pool_size + max_overflow < 1:
        raise ValueError("pool_size + max_overflow must be at least 1")
    pool = get_pool(alias)
    if pool is None:
        raise ValueError(f"database alias {alias!r} has no pool to resize")
    old = {"pool_size": pool.min_size, "max_overflow": pool.max_size - pool.min_size}
    pool.resize(pool_size, pool_size + max_overflow)
    new = {"pool_size": pool_size, "max_overflow": max_overflow}
    logger.info("pool %s resized from %s to %s (%s)", pool.name, old, new, reason)
    pool_resized.send(sender=InstrumentedPool, pool=pool_name_for_alias(alias), old=old, new=new, reason=reason)
    return {"pool": pool_name_for_alias(alias), "old": old, "new": new}


def warm_pools(aliases: list[str] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
    """Open the pools and wait until each holds ``pool_size`` connections.

    Returns one report per alias: ``alias``, ``pool``, ``ready`` (bool), ``open``
    (connections open), ``wanted``, ``seconds`` and ``error`` (or None). A pool
    that is not ready in ``timeout`` (default: its ``pool_timeout``) stays open
    and keeps trying in the background.
    """
    reports = []
    for alias in aliases if aliases is not None else pooled_aliases():
        started = time.monotonic()
        report: dict[str, Any] = {"alias": alias, "pool": pool_name_for_alias(alias), "ready": False,
                                  "open": 0, "wanted": 0, "seconds": 0.0, "error": None}
        try:
            pool = get_pool(alias)
            if pool is None:
                raise ValueError(f"database alias {alias!r} is not pooled")
            pool.open()
            report["wanted"] = pool.min_size
            report["ready"] = pool.wait_ready(pool.timeout if timeout is None else timeout)
            report["open"] = pool.open_count()
            if not report["ready"]:
                report["error"] = "not ready in time (is the server up?)"
        except Exception as exc:
            report["error"] = str(exc)
        report["seconds"] = time.monotonic() - started
        reports.append(report)
    return reports


def after_fork() -> None:
    """In a forked child: drop every pool inherited from the parent, and warm if configured."""
    from django.apps import apps
    from django.db import connections

    if not apps.ready:
        return  # nothing was loaded before the fork (no --preload): no pool to replace
    pools = _live_pools()
    pid = os.getpid()
    inherited = {alias: pool for alias, pool in list(pools.items()) if pool.pid != pid}
    for wrapper in connections.all(initialized_only=True):
        conn = wrapper.connection
        if conn is not None and pool_of(conn) in inherited.values():
            fork.detach_connection(conn)
            wrapper.connection = None
    for alias, pool in inherited.items():
        fork.forget_inherited(alias, pool, pools)
    if conf.get("WARM_ON_STARTUP"):
        warm_pools()


def close_pools(timeout: float = 1.0) -> None:
    """Close this process's pools (at worker exit), so shutdown does not wait on psycopg's threads."""
    pools = _live_pools()
    for alias, pool in list(pools.items()):
        if pool.pid == os.getpid():
            pools.pop(alias, None)
            pool.close(timeout=timeout)


def long_hold_interval() -> float:
    """How often leaks are looked for: about half ``LONG_HOLD_SECONDS``."""
    return float(min(max(conf.get("LONG_HOLD_SECONDS") / 2, 0.5), 5.0))


def report_long_holds() -> int:
    """Background job: warn about connections held past the threshold and not yet returned."""
    pid = os.getpid()
    return sum(pool.report_long_holds() for pool in list(_live_pools().values()) if pool.pid == pid)
