"""The server-tier job: the census of every PostgreSQL server and every PgBouncer, in one process.

Every few seconds one process of the cluster -- the holder of the ``server-tier`` lease in the
cluster store, renewed at each run, taken over by another process within a few intervals when
its holder dies -- samples every report source that is due (:meth:`ReportSource.sample`,
concurrently, within their timeouts) and stores the reports for every reader
(:func:`connection_pools.cluster.reports.remember`). The holder keeps one dedicated connection
per server between samples; the other processes keep none. With Redis down each process
samples for itself on short-lived connections (its readers can only see its own reports then).

Before a census, the job reads the live process snapshots and the processes seen reporting
(:class:`~connection_pools.core.fleet.Fleet`), so the census can tell leaked connections
apart. Nothing here runs in a request or a scrape.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from ..cluster import reports
from ..cluster.store import SEEN_SECONDS, StoreUnavailable, store
from ..core.census import ServerCensus
from ..core.fleet import Fleet, fleet_of
from ..core.pooler import PgBouncerReport
from ..core.reports import Report
from ..core.runtime import runtime
from ..sources.base import ReportSource, SampleContext, registry
from . import history
from .health import run_concurrently

logger = logging.getLogger(__name__)

LEASE = "server-tier"


class _State:
    """When each source is due next in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_due: dict[str, float] = {}


_state = _State()


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def interval() -> float:
    """How often the job runs: the shortest interval of the report sources (5 s when there are none)."""
    return min((source.interval() for source in registry.report_sources()), default=5.0)


def fleet() -> Fleet:
    """Our processes as the cluster store knows them (``known=False`` when it cannot be read)."""
    try:
        cluster = store.read_snapshots()
        seen = store.seen(time.time() - SEEN_SECONDS)
    except StoreUnavailable:
        return Fleet(known=False)
    return fleet_of(cluster.snapshots, seen)


def _lease() -> bool | None:
    """True: this process samples for the cluster; False: another one does; None: Redis is unreachable."""
    try:
        return store.hold_lease(LEASE, owner(), ttl=max(interval() * 3, 2.0))
    except StoreUnavailable:
        return None


def due(sources: list[ReportSource], now: float) -> list[ReportSource]:
    with _state.lock:
        return [source for source in sources if _state.next_due.get(source.name, 0.0) <= now]


def pooler_backends() -> dict[str, dict[int, str]]:
    """Every PgBouncer's server connections from its last report: ``addr:port`` -> {backend pid: name}."""
    found: dict[str, dict[int, str]] = {}
    for report in reports.combined():
        if isinstance(report, PgBouncerReport):
            for server, pids in report.server_pids.items():
                found.setdefault(server, {}).update(dict.fromkeys(pids, report.name))
    return found


def context(*, keep_connection: bool = False) -> SampleContext:
    """What a census uses: the fleet and the PgBouncers' server connections, as the cluster knows them now."""
    return SampleContext(fleet=fleet(), keep_connection=keep_connection, pooler_backends=pooler_backends())


def sample(sources: list[ReportSource], *, keep_connection: bool) -> list[Report]:
    """Sample ``sources`` now, concurrently; a source that does not answer in its timeout is an error report."""
    census_due = any(source.kind == "server" for source in sources)
    context_now = context(keep_connection=keep_connection) if census_due else SampleContext(
        keep_connection=keep_connection)
    by_name = {source.name: source for source in sources}
    checks: dict[str, Callable[[], Report]] = {name: (lambda s=source: _safe(s, context_now))  # type: ignore[misc]
                                               for name, source in by_name.items()}
    timeout = max((_timeout(source) for source in sources), default=2.0)
    results = run_concurrently(checks, timeout, lambda name: _late(by_name[name], timeout))
    return [results[name] for name in sorted(results)]


def job() -> list[Report]:
    """The background job: sample the due sources when this process holds the lease (or is alone)."""
    sources = registry.report_sources()
    if not sources:
        return []
    holder = _lease()
    if holder is False:
        for source in sources:
            source.close()  # another process samples: keep no connection here
        return []
    now = time.monotonic()
    ready = due(sources, now)
    if not ready:
        return []
    with _state.lock:
        for source in ready:
            _state.next_due[source.name] = now + source.interval() - 0.05
    taken = sample(ready, keep_connection=holder is True)
    for report in taken:
        reports.remember(report)
        if isinstance(report, ServerCensus) and report.ok and holder is True:
            try:
                history.record_census(report)
            except history.HistoryUnavailable:
                pass
    return taken


def _timeout(source: ReportSource) -> float:
    value = source.config().get("timeout")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 2.0


def _safe(source: ReportSource, context: SampleContext) -> Report:
    try:
        return source.sample(context)
    except Exception as exc:  # a broken sample is a report with its error, never a dead job
        logger.exception("sampling %s failed", source.name)
        return _failed(source, f"{type(exc).__name__}: {exc}")


def _late(source: ReportSource, timeout: float) -> Report:
    return _failed(source, f"no answer within {timeout:g} s")


def _failed(source: ReportSource, error: str) -> Report:
    if source.kind == "server":
        return ServerCensus(name=source.name, server=str(source.config().get("server", source.alias)),
                            alias=source.alias, role=source.role, taken_at=time.time(), error=error)
    return PgBouncerReport(name=source.name, server=source.alias, taken_at=time.time(), error=error,
                           error_kind="timeout")


def release() -> None:
    """Close this process's dedicated connections and give the lease up (at shutdown)."""
    for source in registry.report_sources():
        source.close()
    try:
        store.release_lease(LEASE, owner())
    except StoreUnavailable:
        pass


def forget() -> None:
    """Sample everything at the next run (tests, after a fork)."""
    with _state.lock:
        _state.next_due.clear()


runtime.register("insight.server_tier", forget, after_fork=True)
