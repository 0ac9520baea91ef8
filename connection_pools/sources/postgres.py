"""Source: the engine's PostgreSQL pool of one alias (kind ``postgresql``), and ``KIND``, how every
surface shows it (an entry in ``database_pools``: :mod:`.database_kind`).

The pool (:class:`~connection_pools.backends.postgresql.pool.InstrumentedPool`) owns its
counters and gauges; a replica's lag, rotation and fallbacks come from the replica set.
Before the pool exists in this process (nothing has used the alias yet) the snapshot
shows its configured sizes and zeros.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

from ..backends.postgresql.base import live_pool
from ..conf.aliases import alias_specs
from ..core.kinds import Capacity, PoolKind
from ..core.snapshots import Config, Gauges, PoolSnapshot, Scalar
from . import database_kind
from .replica import AliasSource

#: The guide's six settings (and our pre-ping window and release), as each pool's ``config`` shows them.
CONFIG_KEYS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "pool_use_lifo",
               "pool_pre_ping_window", "release")


class PostgresSource(AliasSource):
    """The pool of one alias of our engine."""

    kind = "postgresql"

    def config(self) -> Config:
        """The guide's settings, with the live sizes (after any resize)."""
        pool = live_pool(self.alias)
        config = pool.config if pool is not None else self.spec.pool_config
        if config is None:
            return {}
        # Every value of GuideSettings is a Scalar; mypy widens a TypedDict's values to object.
        settings: dict[str, Scalar] = dict(cast("Mapping[str, Scalar]", config.guide_settings()))
        if pool is not None:
            settings.update(pool_size=pool.min_size, max_overflow=pool.max_size - pool.min_size)
        return settings

    def snapshot(self) -> PoolSnapshot:
        pool = live_pool(self.alias)
        config = self.config()
        if pool is None:
            sizes = Gauges(capacity=int(config.get("pool_size") or 0),
                           max_capacity=int(config.get("pool_size") or 0) + int(config.get("max_overflow") or 0))
            snapshot = PoolSnapshot(name=self.name, kind=self.kind, role=self.role, alias=self.alias, config=config,
                                    gauges=sizes)
        else:
            reading = pool.counters.read()
            snapshot = PoolSnapshot(
                name=self.name, kind=self.kind, role=self.role, alias=self.alias, config=config,
                counters=reading.counters, gauges=pool.gauges(), peak_active=max(reading.peak_active, len(pool.leases)),
                wait=reading.wait, hold=reading.hold, query=reading.query, reset_at=reading.reset_at,
                backend_pids=pool.known_backends(), holds=pool.holds(),
            )
        return self.finish(snapshot)

    def reset(self) -> None:
        pool = live_pool(self.alias)
        if pool is not None:
            pool.counters.reset()
        self.reset_replica()


def discover() -> Iterator[PostgresSource]:
    """One source per alias pooled by our engine."""
    for spec in alias_specs().values():
        if spec.mode == "pool" and spec.is_ours:
            yield PostgresSource(spec)



def _setting(pool: PoolSnapshot, key: str) -> int:
    value = pool.config.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def pool_size(pool: PoolSnapshot) -> int:
    """``pool_size`` over every process: the live capacity, else the setting times the processes (a snapshot
    that did not say)."""
    return pool.gauges.capacity or _setting(pool, "pool_size") * pool.processes


def max_size(pool: PoolSnapshot) -> int:
    """``pool_size + max_overflow`` over every process, likewise."""
    return pool.gauges.max_capacity or (_setting(pool, "pool_size") + _setting(pool, "max_overflow")) * pool.processes


KIND = PoolKind(
    kind="postgresql", group="database_pools", schema_name="DatabasePool",
    fields=database_kind.database_fields(
        pool_size, max_size, lambda pool, now: {key: pool.config.get(key) for key in CONFIG_KEYS}),
    capacity=Capacity(size=pool_size, max=max_size), card=database_kind.CARD, poolstats=database_kind.LINES,
    health=database_kind.database_checks, check_keys=database_kind.CHECK_KEYS, essential_roles=frozenset({"primary"}),
    server_budget=True,
)
