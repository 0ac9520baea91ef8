"""Recommendation rules: pure functions of the merged pools and the server budgets.

Each rule looks at one merged :class:`~connection_pools.core.snapshots.PoolSnapshot` (or
one :class:`~connection_pools.core.reports.ServerBudget`) and returns a
:class:`~connection_pools.core.reports.Recommendation` or ``None``. Per-process settings
come from the pool's ``config``; per-process usage from ``peak_active`` (the largest peak
of any one process). Every rule needs evidence (traffic, a long enough window, errors):
none fires on an idle, healthy system.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypedDict

from ..core.reports import Recommendation, ServerBudget, Severity
from ..core.snapshots import PoolSnapshot, Scalar

# Thresholds (kept here so tests and docs can name them).
MIN_CHECKOUTS = 20  # fewer checkouts than this are no evidence about waits
HIGH_WAIT_P95 = 0.05  # seconds
HIGH_WAIT_MEAN = 0.02  # seconds (the guide's example average)
SEVERE_WAIT_P95 = 0.5  # seconds: waits this long are high severity
ERROR_MIN = 3
ERROR_RATE = 0.01
SEVERE_ERROR_RATE = 0.10
RECYCLE_MIN_WINDOW = 300.0  # seconds of statistics before judging a recycle rate
RECYCLE_RATE_PER_PROCESS = 1.0  # recycled connections per minute per process
RECYCLE_TARGET = 1800.0  # seconds of pool_recycle we suggest at least
IDLE_MIN_WINDOW = 1800.0  # "long": half an hour of statistics
IDLE_MIN_CHECKOUTS = 100
REDIS_NEAR_LIMIT = 0.8  # share of max_connections in use at the peak
# Request-scoped holds that dwarf their statements (docs/postgresql-pools.md, "Per-transaction release"):
# a connection is in use for its hold time, and with release "transaction" only for about its statements'
# time, so the ratio of the sums is about how many times fewer connections the same traffic would need.
HOLD_QUERY_RATIO = 4.0  # hold time at least this many times the statement time: a quarter of the connections
HOLD_MIN_MEAN = 0.01  # seconds: shorter mean holds cost little connection time whatever the ratio


class Bounds(TypedDict):
    """The tuner's bounds, which suggestions respect (``CONNECTION_POOLS["TUNER"]``)."""

    MIN_POOL_SIZE: int
    MAX_POOL_SIZE: int
    MAX_OVERFLOW: int


DEFAULT_BOUNDS = Bounds(MIN_POOL_SIZE=1, MAX_POOL_SIZE=50, MAX_OVERFLOW=100)


def bounds() -> Bounds:
    """The tuner's bounds from ``CONNECTION_POOLS["TUNER"]``."""
    from .. import conf

    tuner = conf.get("TUNER")
    return Bounds(MIN_POOL_SIZE=int(tuner["MIN_POOL_SIZE"]), MAX_POOL_SIZE=int(tuner["MAX_POOL_SIZE"]),
                  MAX_OVERFLOW=int(tuner["MAX_OVERFLOW"]))

Rule = Callable[[PoolSnapshot, Bounds, float], "Recommendation | None"]


def _rec(pool: PoolSnapshot | str, rule: str, issue: str, suggestion: str, severity: Severity, setting: str,
         current: Scalar, suggested: Scalar) -> Recommendation:
    name = pool if isinstance(pool, str) else pool.name
    return Recommendation(pool=name, rule=rule, issue=issue, suggestion=suggestion, severity=severity,
                          setting=setting, current_value=current, suggested_value=suggested)


def _config_int(pool: PoolSnapshot, key: str) -> int | None:
    value = pool.config.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- database pool rules -------------------------------------------------------------------------
def high_wait(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Checkouts wait long: raise ``pool_size`` (to 1.5x, or 1.25x the busiest process's peak)."""
    size = _config_int(pool, "pool_size")
    if pool.kind != "postgresql" or size is None or pool.counters.checkouts < MIN_CHECKOUTS:
        return None
    p95, mean = pool.wait.quantile(0.95), pool.wait.mean
    if p95 < HIGH_WAIT_P95 and mean < HIGH_WAIT_MEAN:
        return None
    wanted = max(size + 1, math.ceil(size * 1.5), math.ceil(pool.peak_active * 1.25))
    suggested = min(wanted, int(bounds["MAX_POOL_SIZE"]))
    if suggested <= size:
        return None  # already at the tuner's bound: the exhaustion/budget rules speak instead
    severity: Severity = "high" if p95 >= SEVERE_WAIT_P95 else "medium"
    return _rec(pool, "high_wait", "High wait times",
                f"Increase pool_size to {suggested} (p95 wait {p95 * 1000:.0f} ms, mean {mean * 1000:.0f} ms)",
                severity, "pool_size", size, suggested)


def exhaustion(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """A process used every connection (``pool_size + max_overflow``) and checkouts timed out."""
    size, overflow = _config_int(pool, "pool_size"), _config_int(pool, "max_overflow")
    if pool.kind != "postgresql" or size is None or overflow is None:
        return None
    if pool.peak_active < size + overflow or pool.counters.timeouts <= 0:
        return None
    suggested = min(max(math.ceil((size + overflow) * 1.5) - size, overflow + 1), int(bounds["MAX_OVERFLOW"]))
    advice = (f"Increase max_overflow to {suggested}" if suggested > overflow
              else "Reduce how long requests hold connections, or add capacity: max_overflow is at its bound")
    return _rec(pool, "exhaustion", "Pool exhausted: checkouts timed out at pool_size + max_overflow",
                f"{advice} ({pool.counters.timeouts} timeouts)", "high", "max_overflow", overflow,
                suggested if suggested > overflow else overflow)


def connection_errors(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Connections fail: a stability alert (database and Redis pools)."""
    errors = pool.counters.connection_errors
    attempts = errors + pool.counters.checkouts
    if errors < ERROR_MIN or errors / attempts < ERROR_RATE:
        return None
    rate = errors / attempts
    severity: Severity = "high" if rate >= SEVERE_ERROR_RATE else "medium"
    return _rec(pool, "connection_errors", "Connection errors",
                f"{errors} connection errors ({rate:.1%} of attempts): check the server's health, the network, "
                "and its connection limits", severity, "", errors, 0)


def pre_ping_off(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Connections were lost while ``pool_pre_ping`` is off: enable it."""
    if pool.kind != "postgresql" or pool.config.get("pool_pre_ping") is not False:
        return None
    if pool.counters.connection_errors <= 0:
        return None
    return _rec(pool, "pre_ping_off", "Lost connections with pre-ping off",
                "Enable pool_pre_ping so dead connections are replaced before a request gets them",
                "medium", "pool_pre_ping", False, True)


def recycle_rate(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Connections are recycled so often that reconnecting costs: raise ``pool_recycle``."""
    recycle = pool.config.get("pool_recycle")
    if pool.kind != "postgresql" or isinstance(recycle, bool) or not isinstance(recycle, int | float):
        return None
    if recycle >= RECYCLE_TARGET or pool.window_seconds(now) < RECYCLE_MIN_WINDOW:
        return None
    per_process = pool.recycle_rate_per_minute / max(pool.processes, 1)
    if per_process < RECYCLE_RATE_PER_PROCESS:
        return None
    suggested = max(RECYCLE_TARGET, float(recycle) * 4)
    return _rec(pool, "recycle_rate", "Connections recycled too often",
                f"Increase pool_recycle to {suggested:g} s ({per_process:.1f} recycled per minute per process)",
                "medium", "pool_recycle", recycle, suggested)


def over_provisioned(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Busy for a long time yet never used half of ``pool_size``: reduce it."""
    size = _config_int(pool, "pool_size")
    if pool.kind != "postgresql" or size is None:
        return None
    window = pool.window_seconds(now)
    if window < IDLE_MIN_WINDOW or pool.counters.checkouts < IDLE_MIN_CHECKOUTS:
        return None
    if pool.counters.timeouts or pool.gauges.waiting or pool.wait.quantile(0.95) >= HIGH_WAIT_P95:
        return None
    peak = pool.peak_active
    suggested = max(int(bounds["MIN_POOL_SIZE"]), math.ceil(peak * 1.5), 1)
    if peak * 2 > size or suggested >= size:
        return None
    return _rec(pool, "over_provisioned", "Idle connections: pool larger than needed",
                f"Reduce pool_size to {suggested} (no process used more than {peak} of {size} "
                f"in {window / 60:.0f} min)", "low", "pool_size", size, suggested)


def hold_dwarfs_query(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """Request-scoped connections held far longer than their statements run: suggest ``release = "transaction"``."""
    if pool.kind != "postgresql" or pool.config.get("release") != "request":
        return None
    hold, query = pool.hold, pool.query
    if min(hold.count, query.count) < MIN_CHECKOUTS or query.sum <= 0 or hold.mean < HOLD_MIN_MEAN:
        return None
    ratio = hold.sum / query.sum
    if ratio < HOLD_QUERY_RATIO:
        return None
    pressed = pool.counters.timeouts or pool.wait.quantile(0.95) >= HIGH_WAIT_P95
    return _rec(pool, "hold_dwarfs_query", "Connections held far longer than they are used",
                f"Set OPTIONS['pool']['release'] = 'transaction' (env DATABASE_POOL_RELEASE=transaction): a hold "
                f"lasts {hold.mean * 1000:.0f} ms on average, its statements {query.mean * 1000:.1f} ms "
                f"({ratio:.0f}x); released after each transaction, about 1/{ratio:.0f} of the connections would "
                "serve the same traffic", "medium" if pressed else "low", "release", "request", "transaction")


# --- Redis pool rules ----------------------------------------------------------------------------
def redis_near_limit(pool: PoolSnapshot, bounds: Bounds = DEFAULT_BOUNDS, now: float = 0.0) -> Recommendation | None:
    """A process's Redis pool peaked near ``max_connections``: raise it."""
    limit = _config_int(pool, "max_connections")
    if pool.kind != "redis" or not limit:
        return None
    peak = pool.peak_active
    if peak < REDIS_NEAR_LIMIT * limit:
        return None
    suggested = max(math.ceil(limit * 1.5), limit + 1)
    pressed = pool.counters.timeouts or pool.gauges.waiting
    return _rec(pool, "redis_near_limit", "Redis pool near its connection limit",
                f"Increase max_connections to {suggested} (a process used {peak} of {limit})",
                "high" if pressed else "medium", "max_connections", limit, suggested)


# --- the server budget ---------------------------------------------------------------------------
def budget_overrun(budget: ServerBudget) -> Recommendation | None:
    """The sum of ``pool_size + max_overflow`` over every process and alias exceeds what the server allows."""
    available, total = budget.available, budget.configured_total
    if available is None or total <= available:
        return None
    allowance = available // max(budget.pairs, 1)
    size, overflow = budget.pool_size, budget.max_overflow
    if allowance < size:
        advice = f"reduce pool_size to {max(allowance, 1)} and max_overflow to 0, or raise max_connections"
        suggested = 0
    else:
        suggested = max(allowance - size, 0)
        advice = f"reduce max_overflow to {suggested}, or raise max_connections on the server"
    return _rec(budget.pool or "db_default", "budget_overrun", "Server connection budget exceeded",
                f"{budget.processes} processes may open {total} connections to {budget.server} "
                f"but it accepts {available}: {advice}", "high", "max_overflow", overflow, suggested)


POOL_RULES: tuple[Rule, ...] = (
    exhaustion, high_wait, connection_errors, pre_ping_off, recycle_rate, over_provisioned, hold_dwarfs_query,
    redis_near_limit,
)


def advise(pools: Iterable[PoolSnapshot], budgets: Iterable[ServerBudget] = (), bounds: Bounds | None = None,
           *, now: float) -> tuple[Recommendation, ...]:
    """Every recommendation for the merged pools and the server budgets, most severe first."""
    limits = bounds if bounds is not None else DEFAULT_BOUNDS
    found: list[Recommendation] = []
    for pool in pools:
        for rule in POOL_RULES:
            rec = rule(pool, limits, now)
            if rec is not None:
                found.append(rec)
    for budget in budgets:
        rec = budget_overrun(budget)
        if rec is not None:
            found.append(rec)
    return tuple(sorted(found, key=Recommendation.sort_key))
