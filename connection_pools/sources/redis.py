"""Source: the Redis pools, ``redis_main`` and ``redis_cache`` (kind ``redis``), and ``KIND``, how every
surface shows them: ``redis_pools.<name>`` with the guide's names (``in_use_connections``,
``created_connections``, ``peak_in_use``...); its size is ``max_connections`` (a Redis pool keeps
no connection ready: it opens them on demand, up to that many).

The instrumented redis-py pool (:mod:`connection_pools.backends.redis.pools`) owns its
counters; gauges come from redis-py's public ``get_connection_count()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import conf
from ..backends.redis.pools import InstrumentedPool, get_pool
from ..conf.aliases import pool_name_for_redis
from ..core.figures import ALL_POOL_METRICS, Card, Figure, HealthCheck, TextBlock, TextLine
from ..core.kinds import Capacity, PoolKind, computed, config_shown, extent, reading, shows, summary
from ..core.snapshots import Config, PoolSnapshot
from .probes import redis_checks


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


def _checks() -> Iterator[HealthCheck]:
    return redis_checks(conf.get("REDIS"))


MAX_CONNECTIONS = reading("max_capacity")

KIND = PoolKind(
    kind="redis", group="redis_pools", schema_name="RedisPool",
    fields=(
        computed("pool", str, lambda pool, now: pool.name, "`redis_<name>`"),
        computed("kind", str, lambda pool, now: pool.kind),
        shows("in_use_connections", "active"),
        shows("available_connections", "available"),
        shows("created_connections", "connections_created"),
        shows("closed_connections", "connections_closed"),
        shows("max_connections", "max_capacity", "Sum over processes."),
        shows("peak_in_use", "peak_connections"),
        shows("process_peak", "peak_active", "Largest peak of any one process."),
        shows("waiting", "waiting"),
        shows("checkouts", "checkouts"),
        shows("connection_errors", "connection_errors"),
        shows("socket_timeouts", "socket_timeouts"),
        shows("timeouts", "timeouts"),
        summary("wait_time", "wait"),
        *extent(),
        computed("config", dict[str, int | float | bool | str | None], config_shown),
    ),
    capacity=Capacity(size=MAX_CONNECTIONS, max=MAX_CONNECTIONS),
    metrics=ALL_POOL_METRICS - {"overflow_connections", "connections_recycled", "fallbacks", "query_seconds"},
    card=Card(
        figures=(
            Figure("in_use_connections", "In use"), Figure("available_connections", "Available"),
            Figure("created_connections", "Created"), Figure("peak_in_use", "Peak"), Figure("checkouts", "Checkouts"),
            Figure("wait_p50", "Wait p50", "wait_time.p50", "ms"),
            Figure("wait_p95", "Wait p95", "wait_time.p95", "ms"),
            Figure("connection_errors", "Errors"), Figure("timeouts", "Timeouts"),
        ),
        active=("in_use_connections",), size=("max_connections",), max=("max_connections",), role="",
    ),
    poolstats=TextBlock(lines=(
        TextLine("{key}: {in_use_connections}/{max_connections}"),
        TextLine("  {pool}  {kind}  {health}"),
        TextLine("  in use {in_use_connections}  available {available_connections}  created {created_connections}"
                 "  peak {peak_in_use}  checkouts {checkouts}  errors {connection_errors}  timeouts {timeouts}"),
        TextLine("  wait p50 {wait_time[p50]:ms}  p95 {wait_time[p95]:ms}"),
    )),
    health=_checks,
)
