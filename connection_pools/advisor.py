"""Recommendation rules: pure functions of the aggregated statistics.

Each rule looks at one pool of the shaped aggregate (see :mod:`connection_pools.aggregate`)
or at the server connection budgets, and returns a recommendation or ``None``::

    {"pool": "db_default", "rule": "high_wait", "issue": "High wait times",
     "suggestion": "Increase pool_size to 15", "severity": "high"|"medium"|"low",
     "current_value": 10, "suggested_value": 15, "setting": "pool_size"}

Per-process settings come from the pool's ``config``; per-process usage from
``process_peak`` (the largest peak of any one process). Every rule needs evidence
(traffic, a long enough window, errors): none fires on an idle, healthy system.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

Recommendation = dict[str, Any]
Pool = dict[str, Any]

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

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
DEFAULT_BOUNDS = {"MIN_POOL_SIZE": 1, "MAX_POOL_SIZE": 50, "MAX_OVERFLOW": 100}


def _rec(pool: str, rule: str, issue: str, suggestion: str, severity: str, setting: str,
         current: Any, suggested: Any) -> Recommendation:
    return {"pool": pool, "rule": rule, "issue": issue, "suggestion": suggestion, "severity": severity,
            "current_value": current, "suggested_value": suggested, "setting": setting}


def _config_int(pool: Pool, key: str) -> int | None:
    value = (pool.get("config") or {}).get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- database pool rules -------------------------------------------------------------------------
def high_wait(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """Checkouts wait long: raise ``pool_size`` (to 1.5x, or 1.25x the busiest process's peak)."""
    size = _config_int(pool, "pool_size")
    wait = pool.get("wait_time") or {}
    if pool.get("kind") != "postgresql" or size is None or pool.get("checkouts", 0) < MIN_CHECKOUTS:
        return None
    p95, mean = float(wait.get("p95", 0.0)), float(pool.get("average_wait_time", 0.0))
    if p95 < HIGH_WAIT_P95 and mean < HIGH_WAIT_MEAN:
        return None
    wanted = max(size + 1, math.ceil(size * 1.5), math.ceil(pool.get("process_peak", 0) * 1.25))
    suggested = min(wanted, int(bounds["MAX_POOL_SIZE"]))
    if suggested <= size:
        return None  # already at the tuner's bound: the exhaustion/budget rules speak instead
    severity = "high" if p95 >= SEVERE_WAIT_P95 else "medium"
    return _rec(pool["pool"], "high_wait", "High wait times",
                f"Increase pool_size to {suggested} (p95 wait {p95 * 1000:.0f} ms, mean {mean * 1000:.0f} ms)",
                severity, "pool_size", size, suggested)


def exhaustion(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """A process used every connection (``pool_size + max_overflow``) and checkouts timed out."""
    size, overflow = _config_int(pool, "pool_size"), _config_int(pool, "max_overflow")
    if pool.get("kind") != "postgresql" or size is None or overflow is None:
        return None
    if pool.get("process_peak", 0) < size + overflow or pool.get("timeouts", 0) <= 0:
        return None
    suggested = min(max(math.ceil((size + overflow) * 1.5) - size, overflow + 1), int(bounds["MAX_OVERFLOW"]))
    advice = (f"Increase max_overflow to {suggested}" if suggested > overflow
              else "Reduce how long requests hold connections, or add capacity: max_overflow is at its bound")
    return _rec(pool["pool"], "exhaustion", "Pool exhausted: checkouts timed out at pool_size + max_overflow",
                f"{advice} ({pool.get('timeouts', 0)} timeouts)", "high", "max_overflow", overflow,
                suggested if suggested > overflow else overflow)


def connection_errors(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """Connections fail: a stability alert (database and Redis pools)."""
    errors = int(pool.get("connection_errors", 0))
    attempts = errors + int(pool.get("checkouts", 0))
    if errors < ERROR_MIN or errors / attempts < ERROR_RATE:
        return None
    rate = errors / attempts
    severity = "high" if rate >= SEVERE_ERROR_RATE else "medium"
    return _rec(pool["pool"], "connection_errors", "Connection errors",
                f"{errors} connection errors ({rate:.1%} of attempts): check the server's health, the network, "
                "and its connection limits", severity, "", errors, 0)


def pre_ping_off(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """Connections were lost while ``pool_pre_ping`` is off: enable it."""
    config = pool.get("config") or {}
    if pool.get("kind") != "postgresql" or config.get("pool_pre_ping") is not False:
        return None
    if int(pool.get("connection_errors", 0)) <= 0:
        return None
    return _rec(pool["pool"], "pre_ping_off", "Lost connections with pre-ping off",
                "Enable pool_pre_ping so dead connections are replaced before a request gets them",
                "medium", "pool_pre_ping", False, True)


def recycle_rate(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """Connections are recycled so often that reconnecting costs: raise ``pool_recycle``."""
    recycle = (pool.get("config") or {}).get("pool_recycle")
    if pool.get("kind") != "postgresql" or not isinstance(recycle, (int, float)) or recycle >= RECYCLE_TARGET:
        return None
    if float(pool.get("window_seconds", 0.0)) < RECYCLE_MIN_WINDOW:
        return None
    per_process = float(pool.get("recycle_rate_per_minute", 0.0)) / max(int(pool.get("processes", 1)), 1)
    if per_process < RECYCLE_RATE_PER_PROCESS:
        return None
    suggested = max(RECYCLE_TARGET, float(recycle) * 4)
    return _rec(pool["pool"], "recycle_rate", "Connections recycled too often",
                f"Increase pool_recycle to {suggested:g} s ({per_process:.1f} recycled per minute per process)",
                "medium", "pool_recycle", recycle, suggested)


def over_provisioned(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """Busy for a long time yet never used half of ``pool_size``: reduce it."""
    size = _config_int(pool, "pool_size")
    if pool.get("kind") != "postgresql" or size is None:
        return None
    if float(pool.get("window_seconds", 0.0)) < IDLE_MIN_WINDOW or pool.get("checkouts", 0) < IDLE_MIN_CHECKOUTS:
        return None
    p95 = float((pool.get("wait_time") or {}).get("p95", 0))
    if pool.get("timeouts", 0) or pool.get("waiting", 0) or p95 >= HIGH_WAIT_P95:
        return None
    peak = int(pool.get("process_peak", 0))
    suggested = max(int(bounds["MIN_POOL_SIZE"]), math.ceil(peak * 1.5), 1)
    if peak * 2 > size or suggested >= size:
        return None
    return _rec(pool["pool"], "over_provisioned", "Idle connections: pool larger than needed",
                f"Reduce pool_size to {suggested} (no process used more than {peak} of {size} "
                f"in {float(pool['window_seconds']) / 60:.0f} min)", "low", "pool_size", size, suggested)


# --- Redis pool rules ----------------------------------------------------------------------------
def redis_near_limit(pool: Pool, bounds: dict[str, int] = DEFAULT_BOUNDS) -> Recommendation | None:
    """A process's Redis pool peaked near ``max_connections``: raise it."""
    limit = _config_int(pool, "max_connections")
    if pool.get("kind") != "redis" or not limit:
        return None
    peak = int(pool.get("process_peak", 0))
    if peak < REDIS_NEAR_LIMIT * limit:
        return None
    suggested = max(math.ceil(limit * 1.5), limit + 1)
    pressed = pool.get("timeouts", 0) or pool.get("waiting", 0)
    return _rec(pool["pool"], "redis_near_limit", "Redis pool near its connection limit",
                f"Increase max_connections to {suggested} (a process used {peak} of {limit})",
                "high" if pressed else "medium", "max_connections", limit, suggested)


# --- the server budget ---------------------------------------------------------------------------
def budget_overrun(budget: dict[str, Any]) -> Recommendation | None:
    """The sum of ``pool_size + max_overflow`` over every process and alias exceeds what the server allows."""
    available, total = budget.get("available"), budget.get("configured_total")
    if not isinstance(available, int) or not isinstance(total, int) or total <= available:
        return None
    pairs = max(int(budget.get("pairs", 0) or 0), 1)
    allowance = available // pairs
    size, overflow = budget.get("pool_size"), budget.get("max_overflow")
    suggested = max(allowance - int(size), 0) if isinstance(size, int) else None
    if isinstance(size, int) and allowance < size:
        advice = f"reduce pool_size to {max(allowance, 1)} and max_overflow to 0, or raise max_connections"
        suggested = 0
    else:
        advice = f"reduce max_overflow to {suggested}, or raise max_connections on the server"
    return _rec(budget.get("pool", "db_default"), "budget_overrun", "Server connection budget exceeded",
                f"{budget.get('processes')} processes may open {total} connections to {budget.get('server')} "
                f"but it accepts {available}: {advice}", "high", "max_overflow", overflow, suggested)


POOL_RULES: tuple[Callable[..., Recommendation | None], ...] = (
    exhaustion, high_wait, connection_errors, pre_ping_off, recycle_rate, over_provisioned, redis_near_limit,
)


def advise(stats: dict[str, Any], budgets: Iterable[dict[str, Any]] = (),
           bounds: dict[str, int] | None = None) -> list[Recommendation]:
    """Every recommendation for a shaped aggregate and the server budgets, most severe first."""
    bounds = {**DEFAULT_BOUNDS, **(bounds or {})}
    found: list[Recommendation] = []
    pools = [*stats.get("database_pools", {}).values(), *stats.get("redis_pools", {}).values()]
    for pool in pools:
        for rule in POOL_RULES:
            rec = rule(pool, bounds)
            if rec is not None:
                found.append(rec)
    for budget in budgets:
        rec = budget_overrun(budget)
        if rec is not None:
            found.append(rec)
    return sorted(found, key=lambda r: (SEVERITY_ORDER.get(r["severity"], 9), r["pool"], r["rule"]))
