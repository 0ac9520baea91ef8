"""Health checks with latency, kept by a background job, and the servers' connection budgets.

* Each kind's descriptor owns its checks (:mod:`connection_pools.sources.probes`): each PostgreSQL
  alias is checked with ``SELECT 1`` on a dedicated short-lived connection (never from the app's
  pool: a check must neither wait behind an exhausted pool nor take its slot), the same round
  trip reading the server's ``max_connections`` and reserved connections for the budget; each
  Redis pool with ``PING`` on a short-lived connection.
* All checks run concurrently with one deadline: a hung server makes :func:`probe` answer
  late by at most ``HEALTH_CHECK_TIMEOUT`` (plus a small grace).

The job (:func:`job`, every ``HEALTH_INTERVAL`` seconds, one process per interval for the
whole cluster) stores its :class:`~connection_pools.core.reports.HealthReport` in the
cluster store; ``/metrics``, ``poolstats`` and ``GET health`` read that result with its
age, and ``GET health?live=1`` probes now.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .. import conf
from ..cluster.store import StoreUnavailable, store
from ..conf.aliases import alias_specs
from ..core.figures import Checked, HealthCheck
from ..core.reports import HealthReport, PoolHealth, ServerBudget, ServerLimits, Status
from ..core.runtime import runtime
from ..core.snapshots import PoolSnapshot
from ..sources.kinds import kind_of, registered

# Each kind owns its checks (sources/probes.py); their old import path stays.
from ..sources.probes import check_database as check_database
from ..sources.probes import check_redis as check_redis

logger = logging.getLogger(__name__)

GRACE_SECONDS = 0.25

T = TypeVar("T")


def interval() -> float:
    """Seconds between two health checks of the cluster (``HEALTH_INTERVAL``)."""
    return max(float(conf.get("HEALTH_INTERVAL")), 1.0)


def timeout() -> float:
    return float(conf.get("HEALTH_CHECK_TIMEOUT"))


# --- running them together ---------------------------------------------------------------------
def run_concurrently(checks: Mapping[str, Callable[[], T]], seconds: float, late: Callable[[str], T]) -> dict[str, T]:
    """Run every check in its own daemon thread; one that has not answered by the deadline is
    ``late(name)`` (its thread finishes on its own, bounded by its own timeouts)."""
    results: dict[str, T] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def run(name: str, check: Callable[[], T]) -> None:
        outcome = check()
        with lock:
            results[name] = outcome
            if len(results) == len(checks):
                finished.set()

    if not checks:
        return {}
    for name, check in checks.items():
        threading.Thread(target=run, args=(name, check), name=f"health-{name}", daemon=True).start()
    finished.wait(seconds + GRACE_SECONDS)
    with lock:
        answered = dict(results)
    return {name: answered[name] if name in answered else late(name) for name in checks}


def checks() -> list[HealthCheck]:
    """Every registered kind's health checks for the current settings, by pool name."""
    found: dict[str, HealthCheck] = {}
    for kind in registered():
        if kind.health is not None:
            for check in kind.health():
                found.setdefault(check.name, check)
    return [found[name] for name in sorted(found)]


def probe(seconds: float | None = None) -> HealthReport:
    """Run every kind's checks now, concurrently within one deadline."""
    seconds = timeout() if seconds is None else seconds
    by_name = {check.name: check for check in checks()}
    runs: dict[str, Callable[[], Checked]] = {
        name: (lambda check=check: _safe(check, seconds)) for name, check in by_name.items()}  # type: ignore[misc]

    def late(name: str) -> Checked:
        check = by_name[name]
        return PoolHealth(name=name, kind=check.kind, healthy=False, role=check.role, alias=check.alias,
                          error=f"no answer within {seconds:g} s (HEALTH_CHECK_TIMEOUT)"), None

    results = run_concurrently(runs, seconds, late)
    limits = {server: found for name, (_, found) in results.items()
              if found is not None and (server := by_name[name].server) is not None}
    pools = tuple(check for check, _ in (results[name] for name in sorted(results)))
    return HealthReport(status=overall_status(pools, ()), checked_at=time.time(), pools=pools, limits=limits)


def _safe(check: HealthCheck, seconds: float) -> Checked:
    try:
        return check.run(seconds)
    except Exception as exc:  # a broken check is an unhealthy pool, not a crash
        return PoolHealth(name=check.name, kind=check.kind, healthy=False, role=check.role, alias=check.alias,
                          error=f"{type(exc).__name__}: {exc}"), None


def overall_status(pools: Iterable[PoolHealth], budgets: Iterable[ServerBudget]) -> Status:
    """``unhealthy`` when a pool its kind calls essential fails (a primary database: its descriptor's
    ``essential_roles``); ``degraded`` when anything else fails, a replica is out of rotation or a budget
    is exceeded; ``healthy`` otherwise."""
    status: Status = "healthy"
    for check in pools:
        if not check.healthy:
            if (check.role or "primary") in kind_of(check.kind).essential_roles:
                return "unhealthy"
            status = "degraded"
        elif check.in_rotation is False:
            status = "degraded"
    if any(budget.ok is False for budget in budgets):
        status = "degraded"
    return status


# --- budgets -----------------------------------------------------------------------------------------
@dataclass
class _Tally:
    """What the pools on one server add up to (while :func:`budgets` counts)."""

    pool: str
    pool_size: int
    max_overflow: int
    aliases: list[str] = field(default_factory=list)
    processes: int = 0
    pairs: int = 0
    configured_total: int = 0


def budgets(pools: Iterable[PoolSnapshot], limits: Mapping[str, ServerLimits]) -> tuple[ServerBudget, ...]:
    """One budget per PostgreSQL server: what every process may open there against what it accepts.

    Pure: from the merged pools (each with its per-process ``pool_size``/``max_overflow`` and
    its ``processes``) and the servers' limits learned by the health checks.
    """
    specs = alias_specs()
    servers: dict[str, _Tally] = {}
    for pool in pools:
        spec = specs.get(pool.alias)
        size, overflow = pool.config.get("pool_size"), pool.config.get("max_overflow", 0)
        if not kind_of(pool.kind).server_budget or spec is None or isinstance(size, bool) or isinstance(overflow, bool):
            continue
        if not isinstance(size, int) or not isinstance(overflow, int):
            continue
        tally = servers.setdefault(spec.server, _Tally(pool.name, size, overflow))
        tally.aliases.append(pool.alias)
        tally.processes = max(tally.processes, pool.processes)
        tally.pairs += pool.processes
        tally.configured_total += pool.processes * (size + overflow)
    found = []
    for server, tally in sorted(servers.items()):
        known = limits.get(server)
        found.append(ServerBudget(
            server=server, pool=tally.pool, aliases=tuple(sorted(tally.aliases)), processes=tally.processes,
            pairs=tally.pairs, configured_total=tally.configured_total, pool_size=tally.pool_size,
            max_overflow=tally.max_overflow, max_connections=known.max_connections if known else None,
            reserved=known.superuser_reserved + known.reserved if known else None,
            available=known.available if known else None,
        ))
    return tuple(found)


# --- the job and its result ------------------------------------------------------------------------
class _Cache:
    """The last report this process took (used when Redis cannot be reached)."""

    def __init__(self) -> None:
        self.report: HealthReport | None = None


_cache = _Cache()


def job() -> HealthReport | None:
    """The background job: one process per interval checks, and stores the report for all."""
    now = time.time()
    try:
        if not store.claim_slot("health", int(now // interval()), ttl=interval()):
            return None
    except StoreUnavailable:
        pass  # alone: check for this process
    return remember(probe())


def remember(report: HealthReport) -> HealthReport:
    """Keep ``report`` here and in the cluster store (for every process's readers)."""
    _cache.report = report
    try:
        store.write_health(json.dumps(report.to_wire(), separators=(",", ":")), ttl=interval() * 3)
    except StoreUnavailable:
        pass
    return report


def latest(shared: HealthReport | None) -> HealthReport | None:
    """The freshest report known: the cluster's (``shared``, from the view) or this process's own."""
    mine = _cache.report
    if shared is None or (mine is not None and mine.checked_at > shared.checked_at):
        return mine
    return shared


def forget() -> None:
    """Drop the cached report (tests)."""
    _cache.report = None


runtime.register("insight.health", forget, after_fork=True)
