"""The cluster view every surface reads: the pools merged over every live server process.

:func:`read` returns a :class:`ClusterView`. Normally it is the **rollup** that one elected
process stores every publish interval (:mod:`.rollup`): one Redis read whatever the number
of processes. When no rollup is fresh (none yet, its process died, a reset since), it
merges the processes' snapshots itself; when Redis cannot be reached, it shows this
process's own numbers with ``source == "local"`` -- it never fails.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from .. import conf
from ..core.census import ServerCensus
from ..core.pooler import PgBouncerReport
from ..core.reports import HealthReport, Report
from ..core.snapshots import PoolSnapshot, ProcessSnapshot, merge_pools
from . import reports as server_reports
from .store import Resets, StoreUnavailable, store

logger = logging.getLogger(__name__)

Source = Literal["cluster", "local"]

#: Processes listed in a view (the count is always exact; ``?per_process=1`` has them all).
PROCESS_LIST_MAX = 64


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """Who reported, how old its snapshot is, and the reset epoch it has honoured."""

    host: str
    pid: int
    age_seconds: float
    epoch: int


@dataclass(frozen=True, slots=True)
class HostSubtotal:
    """One host's processes, merged."""

    host: str
    processes: int
    pools: tuple[PoolSnapshot, ...]


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Every pool merged over the live processes, and who they are."""

    pools: tuple[PoolSnapshot, ...]
    process_count: int
    processes: tuple[ProcessInfo, ...] = ()
    source: Source = "cluster"
    redis_available: bool = True
    generated_at: float = 0.0
    #: The reset epoch applied.
    epoch: int = 0
    #: True when read from a rollup (not merged by this reader).
    from_rollup: bool = False
    health: HealthReport | None = None
    hosts: tuple[HostSubtotal, ...] = field(default=())
    #: ``host:pid`` -> that process's pools (``?per_process=1`` only).
    per_process: Mapping[str, tuple[PoolSnapshot, ...]] = field(default_factory=dict)
    #: The server-tier reports (census, PgBouncer), the freshest of each key, by key.
    reports: tuple[Report, ...] = ()

    def pool(self, name: str) -> PoolSnapshot | None:
        return next((pool for pool in self.pools if pool.name == name), None)

    def census(self) -> tuple[ServerCensus, ...]:
        """The latest census of each server."""
        return tuple(report for report in self.reports if isinstance(report, ServerCensus))

    def pgbouncers(self) -> tuple[PgBouncerReport, ...]:
        """The latest report of each PgBouncer."""
        return tuple(report for report in self.reports if isinstance(report, PgBouncerReport))

    def age(self, now: float | None = None) -> float:
        return max((time.time() if now is None else now) - self.generated_at, 0.0)

    def to_json(self) -> str:
        """The rollup's stored form (without health and hosts, which are stored beside it)."""
        return json.dumps({
            "v": 1, "generated_at": self.generated_at, "epoch": self.epoch, "process_count": self.process_count,
            "processes": [[p.host, p.pid, p.age_seconds, p.epoch] for p in self.processes],
            "pools": [pool.to_wire() for pool in self.pools],
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ClusterView | None:
        try:
            data = json.loads(text)
            pools = tuple(p for p in (PoolSnapshot.from_wire(item) for item in data["pools"]) if p is not None)
            processes = tuple(ProcessInfo(str(h), int(pid), float(age), int(epoch))
                              for h, pid, age, epoch in data["processes"])
            return cls(pools=pools, process_count=int(data["process_count"]), processes=processes,
                       generated_at=float(data["generated_at"]), epoch=int(data["epoch"]), from_rollup=True)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable rollup in Redis")
            return None


def process_infos(snapshots: Iterable[ProcessSnapshot], *, now: float, limit: int | None) -> tuple[ProcessInfo, ...]:
    infos = sorted((ProcessInfo(s.host, s.pid, round(max(now - s.taken_at, 0.0), 3), s.epoch) for s in snapshots),
                   key=lambda p: (p.host, p.pid))
    return tuple(infos if limit is None else infos[:limit])


def merge(snapshots: Sequence[ProcessSnapshot], resets: Resets, *, now: float, source: Source = "cluster",
          limit: int | None = PROCESS_LIST_MAX) -> ClusterView:
    """Merge process snapshots (with the resets they have not honoured applied) into one view."""
    applied = [s.reset_since(resets.epoch, resets.pools, now=now) for s in snapshots]
    return ClusterView(
        pools=merge_pools((s.pools for s in applied), now=now), process_count=len(applied),
        processes=process_infos(applied, now=now, limit=limit), source=source, redis_available=source == "cluster",
        generated_at=now, epoch=resets.epoch,
    )


def host_subtotals(snapshots: Sequence[ProcessSnapshot], resets: Resets, *, now: float) -> tuple[HostSubtotal, ...]:
    """Per-host merges (the rollup stores them beside the view)."""
    by_host: dict[str, list[ProcessSnapshot]] = {}
    for snapshot in snapshots:
        by_host.setdefault(snapshot.host, []).append(snapshot.reset_since(resets.epoch, resets.pools, now=now))
    return tuple(HostSubtotal(host, len(group), merge_pools((s.pools for s in group), now=now))
                 for host, group in sorted(by_host.items()))


def hosts_to_json(hosts: Iterable[HostSubtotal]) -> str:
    return json.dumps([{"host": h.host, "processes": h.processes, "pools": [p.to_wire() for p in h.pools]}
                       for h in hosts], separators=(",", ":"))


def hosts_from_json(text: str) -> tuple[HostSubtotal, ...]:
    try:
        return tuple(HostSubtotal(str(item["host"]), int(item["processes"]),
                                  tuple(p for p in (PoolSnapshot.from_wire(w) for w in item["pools"]) if p is not None))
                     for item in json.loads(text))
    except (ValueError, KeyError, TypeError):
        return ()


def rollup_max_age() -> float:
    """A rollup older than this is not trusted (its process may have died)."""
    return max(float(conf.get("PUBLISH_INTERVAL")) * 3, 1.0)


def local_view(*, now: float | None = None) -> ClusterView:
    """This process's own numbers (Redis unreachable)."""
    from ..sources.base import registry

    now = time.time() if now is None else now
    view = merge([registry.snapshot()], Resets(0, {}), now=now, source="local")
    return replace(view, redis_available=False, reports=server_reports.combined())


def read(*, per_process: bool = False, hosts: bool = False) -> ClusterView:
    """The cluster view: the rollup when fresh, else a direct merge, else this process alone."""
    now = time.time()
    try:
        rollup_text, health_text, epoch, stored_reports = store.read_view()
        health = _health(health_text)
        view = ClusterView.from_json(rollup_text) if rollup_text and not per_process else None
        if view is None or view.age(now) > rollup_max_age() or view.epoch < epoch:
            cluster = store.read_snapshots()
            view = merge(cluster.snapshots, cluster.resets, now=now, limit=None if per_process else PROCESS_LIST_MAX)
            if per_process:
                applied = [s.reset_since(cluster.resets.epoch, cluster.resets.pools, now=now)
                           for s in cluster.snapshots]
                view = replace(view, per_process={s.key: s.pools for s in applied})
        view = replace(view, health=health, reports=server_reports.combined(server_reports.decode(stored_reports)))
        if hosts:
            hosts_text = store.read_hosts()
            view = replace(view, hosts=hosts_from_json(hosts_text) if hosts_text else ())
        return view
    except StoreUnavailable as exc:
        logger.debug("cluster view from this process only: %s", exc)
        return local_view(now=now)


def _health(text: str | None) -> HealthReport | None:
    if not text:
        return None
    try:
        return HealthReport.from_wire(json.loads(text))
    except ValueError:
        return None
