"""Source: the Redis pools, ``redis_main`` and ``redis_cache`` (kind ``redis``).

The instrumented redis-py pool (:mod:`connection_pools.backends.redis.pools`) owns its
counters; gauges come from redis-py's public ``get_connection_count()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import conf
from ..backends.redis.pools import InstrumentedPool, get_pool
from ..conf.aliases import pool_name_for_redis
from ..core.snapshots import Config, PoolSnapshot


class RedisSource:
    """One named Redis pool of this process."""

    kind = "redis"

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.name = pool_name_for_redis(pool)
        self.role = pool
        self.alias = pool

    def config(self) -> Config:
        return get_pool(self.pool).config()

    def snapshot(self) -> PoolSnapshot:
        return snapshot_of(get_pool(self.pool))

    def reset(self) -> None:
        get_pool(self.pool).reset_counters()


def snapshot_of(pool: InstrumentedPool) -> PoolSnapshot:
    """The typed snapshot of one instrumented Redis pool."""
    reading = pool.counters.read()
    gauges = pool.gauges()
    return PoolSnapshot(
        name=pool_name_for_redis(pool.pool_name), kind="redis", role=pool.pool_name, alias=pool.pool_name,
        config=pool.config(), counters=reading.counters, gauges=gauges,
        peak_active=max(reading.peak_active, gauges.active), wait=reading.wait, hold=reading.hold,
        reset_at=reading.reset_at,
    )


def discover() -> Iterator[RedisSource]:
    """One source per configured Redis pool (``CONNECTION_POOLS["REDIS"]``)."""
    for name in conf.get("REDIS"):
        yield RedisSource(name)
