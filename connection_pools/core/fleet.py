"""Our server processes as the cluster store knows them: what the census compares the server with.

A :class:`Fleet` is built by the census job from every live process snapshot (each pool's
server backend pids and its long holds) and from the processes that reported recently but
no longer do. Pure data; the census source (:mod:`connection_pools.sources.census`) reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .snapshots import Hold, ProcessSnapshot


@dataclass(frozen=True, slots=True)
class FleetPool:
    """One pool of one process: the backends it holds and its long holds."""

    alias: str
    backend_pids: frozenset[int]
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True, slots=True)
class FleetProcess:
    """One live process: when its snapshot was taken and its pools by alias."""

    host: str
    pid: int
    taken_at: float
    pools: Mapping[str, FleetPool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every live process, and those that stopped reporting (``host:pid`` -> last report)."""

    live: tuple[FleetProcess, ...] = ()
    gone: Mapping[str, float] = field(default_factory=dict)
    #: False when the cluster store could not be read: nothing can be called a leak.
    known: bool = True

    def holds(self) -> dict[int, tuple[FleetProcess, Hold]]:
        """Every long hold of every process, by server backend pid."""
        return {hold.backend_pid: (process, hold) for process in self.live for pool in process.pools.values()
                for hold in pool.holds}


def fleet_of(snapshots: Iterable[ProcessSnapshot], seen: Mapping[str, float]) -> Fleet:
    """The fleet from the live process snapshots and the processes seen reporting (``host:pid`` -> time)."""
    live = tuple(
        FleetProcess(host=s.host, pid=s.pid, taken_at=s.taken_at,
                     pools={pool.alias: FleetPool(pool.alias, frozenset(pool.backend_pids), pool.holds)
                            for pool in s.pools if pool.kind == "postgresql"})
        for s in snapshots)
    keys = {f"{p.host}:{p.pid}" for p in live}
    return Fleet(live=live, gone={key: at for key, at in seen.items() if key not in keys})
