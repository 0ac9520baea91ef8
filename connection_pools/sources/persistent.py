"""Source: persistent connections of one alias (kind ``persistent``: ``CONN_MAX_AGE`` and no pool).

Django holds one connection per thread; :mod:`connection_pools.backends.persistent`
follows them through Django's signals and owns their counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..backends.persistent import tracker
from ..conf.aliases import alias_specs
from ..core.snapshots import Config, PoolSnapshot
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
