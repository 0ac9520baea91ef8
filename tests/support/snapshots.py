"""Typed pool snapshots for the pure-logic tests, built the way a pool builds them: from a real
:class:`~connection_pools.core.counters.PoolCounters`."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from connection_pools.conf import DATABASE_POOL_DEFAULTS
from connection_pools.core.counters import PoolCounters
from connection_pools.core.snapshots import Gauges, PoolSnapshot, ProcessSnapshot

NOW = time.time()


def pool_snapshot(name: str = "db_default", kind: str = "postgresql", *, config: dict[str, Any] | None = None,
                  gauges: dict[str, Any] | None = None, counters: dict[str, int] | None = None,
                  waits: list[float] | tuple[float, ...] = (), peak: int = 0, age: float = 10.0,
                  role: str | None = None) -> PoolSnapshot:
    """One process's snapshot of one pool."""
    recorder = PoolCounters()
    for wait in waits:
        recorder.checkout(wait)
        recorder.checkin(0.001)
    for key, value in (counters or {}).items():
        recorder.incr(key, value)  # type: ignore[arg-type]
    recorder.set_active(peak)
    recorder.set_active(0)
    recorder.reset_at = NOW - age
    reading = recorder.read()
    if kind == "redis":
        base_config: dict[str, Any] = {"max_connections": 10}
        base_gauges = {"available": 2, "open": 2, "max_capacity": 10}
    else:
        base_config = dict(DATABASE_POOL_DEFAULTS)
        base_gauges = {"available": 10, "open": 10, "capacity": 10, "max_capacity": 30}
    alias = name.split("_", 1)[1]
    return PoolSnapshot(
        name=name, kind=kind, role=role or ("replica" if alias.startswith("replica") else
                                            alias if kind == "redis" else "primary"),
        alias=alias, config={**base_config, **(config or {})}, counters=reading.counters,
        gauges=replace(Gauges(**base_gauges), **(gauges or {})), peak_active=reading.peak_active,
        wait=reading.wait, hold=reading.hold, reset_at=reading.reset_at,
    )


def process(pid: int, *pools: PoolSnapshot, epoch: int = 0, host: str = "h") -> ProcessSnapshot:
    """A process snapshot holding ``pools``."""
    return ProcessSnapshot(host=host, pid=pid, taken_at=NOW - 1, epoch=epoch, pools=pools)


class CountingSource:
    """A pool source of our own (a test pool): real counters, no server behind it."""

    def __init__(self, name: str, kind: str = "postgresql", *, config: dict[str, Any] | None = None) -> None:
        self.name = name
        self.kind = kind
        self.alias = name.split("_", 1)[1]
        self.role = "primary" if kind != "redis" else self.alias
        self.counters = PoolCounters()
        self._config = config or dict(DATABASE_POOL_DEFAULTS)

    def config(self) -> dict[str, Any]:
        return self._config

    def snapshot(self) -> PoolSnapshot:
        reading = self.counters.read()
        return PoolSnapshot(name=self.name, kind=self.kind, role=self.role, alias=self.alias, config=self._config,
                            counters=reading.counters, gauges=Gauges(active=reading.active),
                            peak_active=reading.peak_active, wait=reading.wait, hold=reading.hold,
                            reset_at=reading.reset_at)

    def reset(self) -> None:
        self.counters.reset()
