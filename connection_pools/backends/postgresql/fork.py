"""Pools inherited across ``fork()`` (gunicorn ``--preload``, Celery prefork, ``multiprocessing``).

A pool opened before a fork is broken in the child: its worker threads did not survive,
and its connections' sockets are shared with the parent. Closing such a connection would
send PostgreSQL's Terminate message on a socket the parent still uses, so the child
points each inherited socket at ``/dev/null`` first and then forgets the pool.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ...core.counters import PoolCounters
from .pool import InstrumentedPool

logger = logging.getLogger("connection_pools.postgres")


def detach_connection(conn: Any) -> None:
    """Point an inherited connection's socket at /dev/null so closing it cannot reach the server."""
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed: nothing shared any more
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def make_inert(pool: InstrumentedPool) -> None:
    """Detach every connection of an inherited pool and mark it closed (any later use fails fast)."""
    pool.counters = PoolCounters()  # the parent's counts are not this process's
    for conn in pool.idle_connections() + pool.leases.connections():
        detach_connection(conn)
    pool.leases.clear()
    pool.make_inert()


def forget_inherited(alias: str, pool: InstrumentedPool, pools: dict[str, InstrumentedPool]) -> None:
    """Make an inherited pool inert and drop it from ``pools`` (its successor counts from zero)."""
    make_inert(pool)
    if pools.get(alias) is pool:
        del pools[alias]
    logger.info("pool %s: inherited from pid %s, replaced in pid %s", pool.name, pool.pid, os.getpid())
