"""A bounded time series of each pool's key figures, kept in the cluster store for the charts.

Every ``HISTORY_INTERVAL`` seconds one process of the whole cluster (whichever claims the
current time slot) reads the cluster view and appends one point per pool. Points older
than ``HISTORY_SECONDS`` are trimmed at each sample, the series are also capped by count
and expire when nobody samples any more, so memory is bounded whatever happens. Every
process reads the same series.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Annotated

from .. import conf
from ..cluster.store import StoreUnavailable, store
from ..cluster.view import ClusterView
from ..core.census import ServerCensus
from ..core.responses import Doc, HistoryJSON, PointJSON
from ..sources.kinds import kind_of

logger = logging.getLogger(__name__)


class HistoryUnavailable(Exception):
    """Redis cannot be reached: there is no shared history to read or write."""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One pool's figures at one time (``errors`` and ``timeouts`` are cumulative counters; ``size`` and
    ``max_size``: the configured size and maximum, as the pool's kind counts them)."""

    active: int
    size: int
    max_size: int
    available: int
    waiting: int
    wait_p95: Annotated[float, Doc("Seconds.")]
    errors: int
    timeouts: int
    replica_lag_seconds: float | None


#: The figures kept per point (besides ``t``), in the order the API documents them.
POINT_FIELDS: tuple[str, ...] = tuple(HistoryPoint.__dataclass_fields__)


def interval() -> float:
    """Seconds between two points (``CONNECTION_POOLS["HISTORY_INTERVAL"]``)."""
    return max(float(conf.get("HISTORY_INTERVAL")), 0.5)


def retention() -> float:
    """Seconds of history kept (``CONNECTION_POOLS["HISTORY_SECONDS"]``)."""
    return max(float(conf.get("HISTORY_SECONDS")), interval())


def max_points() -> int:
    """The most points one pool's series may hold (retention / interval, with slack for clock jitter)."""
    return math.ceil(retention() / interval()) + 10


def points_of(view: ClusterView) -> dict[str, HistoryPoint]:
    """One point per pool of a cluster view; ``size`` and ``max_size`` are what its kind's descriptor says they
    are (:class:`~connection_pools.core.kinds.Capacity`: ``pool_size``, Redis' ``max_connections``...)."""
    points = {}
    for pool in view.pools:
        gauges, capacity = pool.gauges, kind_of(pool.kind).capacity
        points[pool.name] = HistoryPoint(
            active=gauges.active, size=capacity.size(pool), max_size=capacity.max(pool), available=gauges.available,
            waiting=gauges.waiting, wait_p95=pool.wait.quantile(0.95), errors=pool.counters.connection_errors,
            timeouts=pool.counters.timeouts, replica_lag_seconds=gauges.replica_lag_seconds,
        )
    return points


def record(points: dict[str, HistoryPoint], *, now: float | None = None) -> None:
    """Append one point per pool at ``now`` and trim every touched series."""
    now = time.time() if now is None else now
    encoded = {pool: json.dumps({"t": round(now, 3), **asdict(point)}, separators=(",", ":"))
               for pool, point in points.items()}
    try:
        store.append_history(encoded, now=now, keep_seconds=retention(), cap=max_points())
    except StoreUnavailable as exc:
        raise HistoryUnavailable(str(exc)) from exc


def clear() -> None:
    """Delete every stored point (tests, and a fresh start after a configuration change)."""
    try:
        store.clear_history()
    except StoreUnavailable as exc:
        raise HistoryUnavailable(str(exc)) from exc


def claim_slot(now: float) -> bool:
    """True for the first caller in the whole cluster in the time slot of ``now``."""
    return store.claim_slot("history", int(now // interval()), ttl=max(interval() * 3, 2))


def sample(*, now: float | None = None) -> bool:
    """Take this interval's sample unless another process already did; True when this call did."""
    from ..cluster.view import read

    now = time.time() if now is None else now
    try:
        if not claim_slot(now):
            return False
        view = read()
        if not view.redis_available or not view.process_count:
            return False  # nothing shared to sample (Redis gone, or no process publishing yet)
        record(points_of(view), now=now)
        return True
    except (StoreUnavailable, HistoryUnavailable) as exc:
        logger.debug("history sample skipped: Redis unavailable (%s)", exc)
        return False


def history(pool: str | None = None, minutes: float = 60) -> HistoryJSON:
    """The series of one pool (or every pool) over the last ``minutes``, points oldest first.

    ``{"interval": seconds, "retention_seconds": ..., "series": {"db_default": [{"t": ..., "active": ...}]}}``.
    Raises :class:`HistoryUnavailable` when Redis cannot be reached and ``ValueError`` for a
    non-positive or non-finite ``minutes``.
    """
    minutes = float(minutes)
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError("minutes must be a positive number")
    since = time.time() - min(minutes * 60.0, retention())
    try:
        rows = store.read_history([pool] if pool is not None else None, since)
    except StoreUnavailable as exc:
        raise HistoryUnavailable(f"Redis is unreachable ({exc})") from exc
    series: dict[str, list[PointJSON]] = {name: [json.loads(raw) for raw in points]
                                                 for name, points in rows.items()}
    return HistoryJSON(interval=interval(), retention_seconds=retention(), series=series)


# --- the servers' census over time -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServerPoint:
    """One server's connections at one census: by state, by owner, and the headroom."""

    connections: int
    active: int
    idle: int
    idle_in_transaction: int
    ours: int
    other: int
    probe: int
    max_connections: int | None
    headroom: int | None
    blocked: int
    leaks: int


#: The figures kept per server point (besides ``t``).
SERVER_POINT_FIELDS: tuple[str, ...] = tuple(ServerPoint.__dataclass_fields__)


def server_point(census: ServerCensus) -> ServerPoint:
    """The point of one census (idle in transaction counts the aborted ones too)."""
    states = census.states
    return ServerPoint(
        connections=census.connections, active=states.active, idle=states.idle,
        idle_in_transaction=states.idle_in_transaction + states.idle_in_transaction_aborted,
        ours=census.by_kind.get("ours", 0), other=census.by_kind.get("other", 0),
        probe=census.by_kind.get("probe", 0), max_connections=census.max_connections, headroom=census.headroom,
        blocked=census.blocked_total, leaks=census.leaks_total,
    )


def record_census(census: ServerCensus) -> None:
    """Append the point of one successful census to its server's series."""
    point = json.dumps({"t": round(census.taken_at, 3), **asdict(server_point(census))}, separators=(",", ":"))
    try:
        store.append_history({census.name: point}, now=census.taken_at, keep_seconds=retention(), cap=max_points(),
                             series="server")
    except StoreUnavailable as exc:
        raise HistoryUnavailable(str(exc)) from exc


def server_history(minutes: float) -> dict[str, list[PointJSON]]:
    """Every server's points over the last ``minutes``, oldest first (:class:`HistoryUnavailable` without Redis)."""
    since = time.time() - min(float(minutes) * 60.0, retention())
    try:
        rows = store.read_history(None, since, series="server")
    except StoreUnavailable as exc:
        raise HistoryUnavailable(f"Redis is unreachable ({exc})") from exc
    return {name: [json.loads(raw) for raw in points] for name, points in rows.items()}
