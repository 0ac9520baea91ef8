"""Server-tier reports across processes: kept here and in the cluster store, the freshest winning.

A report (:data:`~connection_pools.core.reports.Report`: a server census, a PgBouncer's pools)
is taken by one process of the cluster (the census job's lease holder) and written to the
store, which keeps a report only when it is fresher than the one it holds under the same key.
Readers get the stored reports in the same round trip as the rollup
(:func:`connection_pools.cluster.view.read`) and merge them with this process's own, the
freshest of each key winning; with Redis down they see this process's own only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping

from .. import conf
from ..core.reports import Report, freshest, report_from_wire
from ..core.runtime import runtime
from .store import StoreUnavailable, store

logger = logging.getLogger(__name__)

#: A report older than this is dropped by the store (seconds; every report refreshes them all).
MIN_TTL = 60.0


class _Local:
    """The reports this process took (what it shows when Redis cannot be reached)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reports: dict[str, Report] = {}


_local = _Local()


def ttl() -> float:
    return max(MIN_TTL, float(conf.get("SNAPSHOT_TTL")) * 2)


def remember(report: Report) -> bool:
    """Keep ``report`` here and in the cluster store; True when the store took it (False: Redis is
    unreachable, or it holds a fresher one)."""
    with _local.lock:
        current = _local.reports.get(report.key)
        if current is None or report.taken_at >= current.taken_at:
            _local.reports[report.key] = report
    try:
        return store.write_report(report.key, json.dumps(report.to_wire(), separators=(",", ":")),
                                  taken_at=report.taken_at, ttl=ttl())
    except StoreUnavailable as exc:
        logger.debug("report %s kept in this process only: %s", report.key, exc)
        return False


def decode(raw: Mapping[str, str]) -> tuple[Report, ...]:
    """The stored reports (key -> JSON); an unreadable one is skipped."""
    found = []
    for text in raw.values():
        try:
            report = report_from_wire(json.loads(text))
        except ValueError:
            report = None
        if report is not None:
            found.append(report)
    return tuple(found)


def combined(shared: Iterable[Report] = ()) -> tuple[Report, ...]:
    """The freshest report of each key among ``shared`` (the store's) and this process's own, by key."""
    with _local.lock:
        mine = list(_local.reports.values())
    merged = freshest([*shared, *mine])
    return tuple(merged[key] for key in sorted(merged))


def forget() -> None:
    """Drop this process's reports (tests, a fork: the child has not taken any)."""
    with _local.lock:
        _local.reports.clear()


runtime.register("cluster.reports", forget, after_fork=True)
