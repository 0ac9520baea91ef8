"""The health checks the pool kinds own: ``SELECT 1`` on a database alias's server, ``PING`` on a Redis pool's.

Each check uses one short-lived connection of its own, never one from the app's pools (a check must
neither wait behind an exhausted pool nor take its slot), is bounded by its timeout and never raises:
a failure is an unhealthy result with its error (and a check that raises all the same is one too:
the health job catches it). The health job (:mod:`connection_pools.insight.health`)
runs every kind's checks concurrently within one deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

import psycopg

from ..conf.aliases import AliasSpec, pool_name_for_redis, probe_params
from ..core.figures import Checked, HealthCheck
from ..core.reports import PoolHealth, ServerLimits

logger = logging.getLogger(__name__)

CHECK_SQL = """
SELECT 1,
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int
"""


def check_database(spec: AliasSpec, seconds: float) -> Checked:
    """``SELECT 1`` on ``spec``'s server, and its connection limits; never raises."""
    started = time.monotonic()
    base = PoolHealth(name=spec.pool_name, kind="postgresql", healthy=False, role=spec.role, alias=spec.alias)
    try:
        with psycopg.connect(**probe_params(spec.alias, timeout=seconds,
                                            application_name="connection_pools.health")) as conn:
            connected = time.monotonic()
            row = conn.execute(CHECK_SQL).fetchone()
            done = time.monotonic()
    except (psycopg.Error, OSError) as exc:
        return replace(base, error=f"{type(exc).__name__}: {str(exc).strip() or 'connection failed'}"), None
    assert row is not None
    check = replace(base, healthy=row[0] == 1, latency_ms=round((done - connected) * 1000, 3),
                    connect_ms=round((connected - started) * 1000, 3))
    if spec.role == "replica":
        check = _with_replica_state(check, spec.alias)
    return check, ServerLimits(int(row[1]), int(row[2]), int(row[3]))


def _with_replica_state(check: PoolHealth, alias: str) -> PoolHealth:
    from ..routing import replicas

    try:
        replicas.sample(alias)  # a fresh lag sample; it also updates the replica's rotation
        reading = replicas.reading(alias)
    except Exception:  # the lag is then the last one sampled; the check itself passed
        logger.exception("sampling the lag of %s failed", alias)
        return check
    return replace(check, replica_lag_seconds=reading.lag_seconds, in_rotation=reading.in_rotation)


def database_check(spec: AliasSpec) -> HealthCheck:
    """The check of one PostgreSQL alias (every mode: pooled, persistent or direct connections)."""
    return HealthCheck(name=spec.pool_name, kind="postgresql", run=lambda seconds: check_database(spec, seconds),
                       role=spec.role, alias=spec.alias, server=spec.server)


def check_redis(name: str, seconds: float) -> PoolHealth:
    """``PING`` the server of Redis pool ``name``; never raises."""
    from ..backends.redis.pools import ping

    answer = ping(name, seconds)
    return PoolHealth(name=pool_name_for_redis(name), kind="redis", healthy=answer.ok, alias=name,
                      error=answer.error,
                      latency_ms=None if answer.latency_seconds is None else round(answer.latency_seconds * 1000, 3))


def redis_checks(names: Iterable[str]) -> Iterator[HealthCheck]:
    """The check of each named Redis pool."""
    for name in names:
        yield HealthCheck(name=pool_name_for_redis(name), kind="redis",
                          run=lambda seconds, name=name: (check_redis(name, seconds), None),  # type: ignore[misc]
                          alias=name)
