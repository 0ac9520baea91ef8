"""Recommendation rules: each fires on its case and stays quiet on an idle, healthy system.

The inputs are built the way production builds them: real pool counters, snapshots merged by
:mod:`connection_pools.cluster.view` (typed, one vocabulary).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest

from connection_pools.cluster.store import Resets
from connection_pools.cluster.view import merge
from connection_pools.core.reports import SEVERITY_ORDER, ServerBudget
from connection_pools.core.snapshots import PoolSnapshot
from connection_pools.insight import advisor, tuner
from tests.support.snapshots import NOW, pool_snapshot, process

snapshot = pool_snapshot


def shaped(*parts: PoolSnapshot) -> PoolSnapshot:
    """One pool merged from several processes' snapshots of it."""
    (pool,) = merge([process(pid, part) for pid, part in enumerate(parts, start=1)], Resets(0, {}), now=NOW).pools
    return pool


def stats_of(*pools: PoolSnapshot) -> tuple[PoolSnapshot, ...]:
    return pools


def idle_system() -> tuple[PoolSnapshot, ...]:
    return stats_of(
        shaped(snapshot(age=7200), snapshot(age=7200)),
        shaped(snapshot("db_replica1", age=7200)),
        shaped(snapshot("redis_main", "redis", age=7200)),
        shaped(snapshot("redis_cache", "redis", config={"max_connections": 50}, age=7200)),
    )


def healthy_budget(**changes: Any) -> ServerBudget:
    base = ServerBudget(server="127.0.0.1:5432", pool="db_default", aliases=("default",), processes=2, pairs=2,
                        configured_total=60, pool_size=10, max_overflow=20, max_connections=100, reserved=3,
                        available=97)
    return replace(base, **changes)


def advise(pools: tuple[PoolSnapshot, ...], budgets: list[ServerBudget] | tuple[()] = ()) -> list[dict[str, Any]]:
    return [asdict(r) for r in advisor.advise(pools, budgets, now=NOW)]


def rule(function: Any, pool: PoolSnapshot, bounds: Any = advisor.DEFAULT_BOUNDS) -> dict[str, Any] | None:
    rec = function(pool, bounds, NOW)
    return None if rec is None else asdict(rec)


# --- no rule on an idle, healthy system ----------------------------------------------------------------
def test_no_rule_fires_on_an_idle_healthy_system() -> None:
    assert advise(idle_system(), [healthy_budget()]) == []


def test_no_rule_fires_on_light_healthy_traffic() -> None:
    light = shaped(snapshot(waits=[0.0002] * 500, peak=3, age=600))
    assert advise(stats_of(light), [healthy_budget()]) == []


@pytest.mark.parametrize("pool_rule", advisor.POOL_RULES)
def test_each_pool_rule_is_quiet_when_idle(pool_rule: Any) -> None:
    for pool in idle_system():
        assert pool_rule(pool, advisor.DEFAULT_BOUNDS, NOW) is None


# --- each rule on its case ------------------------------------------------------------------------------
def test_high_wait_raises_pool_size_to_a_computed_value() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    rec = rule(advisor.high_wait, pool)
    assert rec is not None
    assert (rec["pool"], rec["setting"], rec["current_value"], rec["suggested_value"]) == (
        "db_default", "pool_size", 10, 15)
    assert rec["severity"] == "medium" and rec["issue"] == "High wait times"
    assert "Increase pool_size to 15" in rec["suggestion"]
    severe = rule(advisor.high_wait, shaped(snapshot(waits=[0.9] * 50, peak=10)))
    assert severe is not None and severe["severity"] == "high"


def test_high_wait_needs_enough_checkouts_to_judge() -> None:
    assert rule(advisor.high_wait, shaped(snapshot(waits=[0.08] * 5, peak=2))) is None


def test_high_wait_stays_within_the_tuner_bound() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    assert rule(advisor.high_wait, pool, {**advisor.DEFAULT_BOUNDS, "MAX_POOL_SIZE": 12})["suggested_value"] == 12
    assert rule(advisor.high_wait, pool, {**advisor.DEFAULT_BOUNDS, "MAX_POOL_SIZE": 10}) is None


def test_connection_errors_raise_a_stability_alert() -> None:
    pool = shaped(snapshot(waits=[0.001] * 20, counters={"connection_errors": 5}))
    rec = rule(advisor.connection_errors, pool)
    assert rec is not None and rec["severity"] == "high" and rec["issue"] == "Connection errors"
    assert rec["current_value"] == 5
    few = shaped(snapshot(waits=[0.001] * 1000, counters={"connection_errors": 3}))
    assert rule(advisor.connection_errors, few) is None  # 0.3 %: noise, not instability
    redis_pool = shaped(snapshot("redis_main", "redis", counters={"connection_errors": 4}))
    assert rule(advisor.connection_errors, redis_pool)["pool"] == "redis_main"


def test_long_idle_over_provisioning_suggests_reducing() -> None:
    pool = shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=3, age=3600))
    rec = rule(advisor.over_provisioned, pool)
    assert rec is not None and rec["severity"] == "low"
    assert (rec["setting"], rec["current_value"], rec["suggested_value"]) == ("pool_size", 20, 5)
    # Not after a short window, nor when busy.
    assert rule(advisor.over_provisioned, shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=3,
                                                    age=120))) is None
    assert rule(advisor.over_provisioned, shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=15,
                                                    age=3600))) is None


def test_redis_near_its_limit_suggests_raising_max_connections() -> None:
    pool = shaped(snapshot("redis_cache", "redis", config={"max_connections": 10}, peak=9))
    rec = rule(advisor.redis_near_limit, pool)
    assert rec is not None
    assert (rec["setting"], rec["current_value"], rec["suggested_value"], rec["severity"]) == (
        "max_connections", 10, 15, "medium")
    pressed = shaped(snapshot("redis_cache", "redis", config={"max_connections": 10}, peak=10,
                              counters={"timeouts": 2}))
    assert rule(advisor.redis_near_limit, pressed)["severity"] == "high"
    assert rule(advisor.redis_near_limit, shaped(snapshot("redis_cache", "redis", peak=7))) is None


def test_server_budget_overrun_across_processes_is_high() -> None:
    budget = healthy_budget(processes=4, pairs=4, configured_total=120, available=97)
    assert budget.ok is False
    rec = advisor.budget_overrun(budget)
    assert rec is not None and rec.severity == "high" and rec.setting == "max_overflow"
    assert rec.suggested_value == 97 // 4 - 10
    assert advisor.budget_overrun(healthy_budget()) is None
    assert advisor.budget_overrun(healthy_budget(available=None)) is None


def test_lost_connections_with_pre_ping_off_suggest_enabling_it() -> None:
    pool = shaped(snapshot(config={"pool_pre_ping": False}, waits=[0.001] * 50,
                           counters={"connection_errors": 1}))
    rec = rule(advisor.pre_ping_off, pool)
    assert rec is not None and (rec["setting"], rec["current_value"], rec["suggested_value"]) == (
        "pool_pre_ping", False, True)
    with_ping = shaped(snapshot(waits=[0.001] * 50, counters={"connection_errors": 1}))
    assert rule(advisor.pre_ping_off, with_ping) is None


def test_a_too_high_recycle_rate_suggests_raising_pool_recycle() -> None:
    pool = shaped(snapshot(config={"pool_recycle": 30.0}, waits=[0.001] * 50,
                           counters={"recycled": 200}, age=600))
    rec = rule(advisor.recycle_rate, pool)
    assert rec is not None and rec["setting"] == "pool_recycle"
    assert rec["current_value"] == 30.0 and rec["suggested_value"] == advisor.RECYCLE_TARGET
    slow = shaped(snapshot(config={"pool_recycle": 30.0}, counters={"recycled": 3}, age=600))
    assert rule(advisor.recycle_rate, slow) is None


def test_peak_at_the_limit_with_timeouts_is_high() -> None:
    pool = shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, waits=[0.001] * 30, peak=4,
                           counters={"timeouts": 3}))
    rec = rule(advisor.exhaustion, pool)
    assert rec is not None and rec["severity"] == "high"
    assert (rec["setting"], rec["current_value"], rec["suggested_value"]) == ("max_overflow", 2, 4)
    no_timeouts = shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, peak=4))
    assert rule(advisor.exhaustion, no_timeouts) is None


def test_advise_orders_by_severity_and_names_every_field() -> None:
    system = stats_of(
        shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, waits=[0.08] * 30, peak=4,
                        counters={"timeouts": 3})),
        shaped(snapshot("redis_cache", "redis", peak=9)),
    )
    recs = advise(system)
    assert [r["severity"] for r in recs] == sorted((r["severity"] for r in recs), key=SEVERITY_ORDER.get)
    assert {"exhaustion", "high_wait", "redis_near_limit"} <= {r["rule"] for r in recs}
    for rec in recs:
        assert set(rec) >= {"pool", "issue", "suggestion", "severity", "current_value", "suggested_value", "setting"}


# --- the tuner's plan (pure) --------------------------------------------------------------------------------
LIMITS = {"MIN_POOL_SIZE": 1, "MAX_POOL_SIZE": 50, "MAX_OVERFLOW": 100}


def test_plan_follows_sizing_recommendations_within_bounds() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    system = stats_of(pool)
    recs = advisor.advise(system, now=NOW)
    changes = tuner.plan(system, recs, [], LIMITS)
    assert [(c.alias, c.old, c.new) for c in changes] == [
        ("default", tuner.Sizing(10, 20), tuner.Sizing(15, 20))]
    capped = tuner.plan(system, recs, [], {**LIMITS, "MAX_POOL_SIZE": 12})
    assert capped[0].new.pool_size == 12


def test_plan_never_exceeds_the_server_budget() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10), snapshot(waits=[0.08] * 50, peak=10))
    system = stats_of(pool)
    # Two processes x (10 + 20) = 60 of 64 available: growth must stop at 32 per process.
    budget = healthy_budget(configured_total=60, available=64)
    changes = tuner.plan(system, advisor.advise(system, [budget], now=NOW), [budget], LIMITS)
    assert changes[0].new == tuner.Sizing(15, 17)
    assert 2 * (changes[0].new.pool_size + changes[0].new.max_overflow) <= 64


def test_plan_ignores_advice_that_is_not_sizing() -> None:
    pool = shaped(snapshot(config={"pool_pre_ping": False}, waits=[0.001] * 50,
                           counters={"connection_errors": 9}))
    system = stats_of(pool)
    assert advise(system)
    assert tuner.plan(system, advisor.advise(system, now=NOW), [], LIMITS) == ()
