"""Source: persistent connections of one alias (kind ``persistent``: ``CONN_MAX_AGE`` and no pool), and
``KIND``, how every surface shows it (an entry in ``database_pools``: :mod:`.database_kind`).

Django holds one connection per thread; :mod:`connection_pools.backends.persistent`
follows them through Django's signals and owns their counters. There is no configured size:
what is open stands for it (``pool_size`` and ``max_size`` are the connections open now).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..backends.persistent import tracker
from ..conf.aliases import alias_specs
from ..core.figures import ALL_POOL_METRICS
from ..core.kinds import Capacity, PoolKind, config_shown, reading
from ..core.snapshots import Config, PoolSnapshot
from . import database_kind
from .replica import AliasSource


class PersistentSource(AliasSource):
    """The persistent connections of one alias in this process."""

    kind = "persistent"

    def config(self) -> Config:
        return {"conn_max_age": self.spec.conn_max_age}

    def snapshot(self) -> PoolSnapshot:
        own = tracker(self.alias)
        reading = own.counters.read()
        gauges = own.gauges()
        snapshot = PoolSnapshot(
            name=self.name, kind=self.kind, role=self.role, alias=self.alias, config=self.config(),
            counters=reading.counters, gauges=gauges, peak_active=max(reading.peak_active, gauges.active),
            wait=reading.wait, hold=reading.hold, reset_at=reading.reset_at,
        )
        return self.finish(snapshot)

    def reset(self) -> None:
        tracker(self.alias).counters.reset()
        self.reset_replica()


def discover() -> Iterator[PersistentSource]:
    """One source per PostgreSQL alias with persistent connections (any engine)."""
    for spec in alias_specs().values():
        if spec.mode == "persistent" and spec.is_postgresql:
            yield PersistentSource(spec)


#: One connection per thread, no configured size: the connections open now stand for it.
OPEN = reading("open")

KIND = PoolKind(
    kind="persistent", group="database_pools", schema_name="DatabasePool",
    fields=database_kind.database_fields(OPEN, OPEN, config_shown),
    capacity=Capacity(size=OPEN, max=OPEN), metrics=ALL_POOL_METRICS - {"overflow_connections", "query_seconds"},
    card=database_kind.CARD, poolstats=database_kind.LINES, health=database_kind.persistent_checks,
    check_keys=database_kind.CHECK_KEYS, essential_roles=frozenset({"primary"}),
)
