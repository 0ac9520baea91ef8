"""Recommendation rules: each fires on its case and stays quiet on an idle, healthy system.

The inputs are built the way production builds them: a real ``PoolStats`` snapshot,
merged and shaped by :mod:`connection_pools.aggregate`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from connection_pools import advisor, aggregate, stats, tuner
from connection_pools.conf import DATABASE_POOL_DEFAULTS

NOW = time.time()


def snapshot(name: str = "db_default", kind: str = "postgresql", *, config: dict[str, Any] | None = None,
             gauges: dict[str, Any] | None = None, counters: dict[str, int] | None = None,
             waits: list[float] = (), peak: int = 0, age: float = 10.0) -> dict[str, Any]:
    """One process's snapshot of one pool, from a real PoolStats."""
    pool = stats.PoolStats(name, kind, alias=name.split("_", 1)[1], role="primary")
    if kind == "redis":
        base_config = {"max_connections": 10}
        base_gauges = {"active": 0, "available": 2, "size": 2, "max_size": 10, "waiting": 0}
    else:
        base_config = dict(DATABASE_POOL_DEFAULTS)
        base_gauges = {"active": 0, "available": 10, "size": 10, "waiting": 0, "overflow_in_use": 0,
                       "min_size": 10, "max_size": 30}
    pool.config_source = lambda: {**base_config, **(config or {})}
    pool.gauge_source = lambda: {**base_gauges, **(gauges or {})}
    for wait in waits:
        pool.record_checkout(wait)
        pool.record_checkin(0.001)
    for key, value in (counters or {}).items():
        pool.incr(key, value)
    pool.set_active(peak)
    pool.set_active(0)
    pool.reset_at = NOW - age
    return pool.snapshot()


def shaped(*parts: dict[str, Any]) -> dict[str, Any]:
    """The shaped pool (database or Redis) merged from process snapshots."""
    merged = aggregate.merge_pool(list(parts), now=NOW)
    if merged["kind"] == "redis":
        return aggregate.shape_redis_pool(merged, now=NOW)
    return aggregate.shape_database_pool(merged, now=NOW)


def stats_of(*pools: dict[str, Any]) -> dict[str, Any]:
    db = {p["pool"].split("_", 1)[1]: p for p in pools if p["kind"] != "redis"}
    rd = {p["pool"].split("_", 1)[1]: p for p in pools if p["kind"] == "redis"}
    return {"database_pools": db, "redis_pools": rd}


def idle_system() -> dict[str, Any]:
    return stats_of(
        shaped(snapshot(age=7200), snapshot(age=7200)),
        shaped(snapshot("db_replica1", age=7200)),
        shaped(snapshot("redis_main", "redis", age=7200)),
        shaped(snapshot("redis_cache", "redis", config={"max_connections": 50}, age=7200)),
    )


def healthy_budget() -> dict[str, Any]:
    return {"server": "127.0.0.1:5432", "pool": "db_default", "aliases": ["default"], "processes": 2, "pairs": 2,
            "configured_total": 60, "pool_size": 10, "max_overflow": 20, "max_connections": 100, "reserved": 3,
            "available": 97, "ok": True}


# --- no rule on an idle, healthy system ----------------------------------------------------------------
def test_no_rule_fires_on_an_idle_healthy_system() -> None:
    assert advisor.advise(idle_system(), [healthy_budget()]) == []


def test_no_rule_fires_on_light_healthy_traffic() -> None:
    light = shaped(snapshot(waits=[0.0002] * 500, peak=3, age=600))
    assert advisor.advise(stats_of(light), [healthy_budget()]) == []


@pytest.mark.parametrize("rule", advisor.POOL_RULES)
def test_each_pool_rule_is_quiet_when_idle(rule: Any) -> None:
    for pool in (*idle_system()["database_pools"].values(), *idle_system()["redis_pools"].values()):
        assert rule(pool) is None


# --- each rule on its case ------------------------------------------------------------------------------
def test_high_wait_raises_pool_size_to_a_computed_value() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    rec = advisor.high_wait(pool)
    assert rec is not None
    assert (rec["pool"], rec["setting"], rec["current_value"], rec["suggested_value"]) == (
        "db_default", "pool_size", 10, 15)
    assert rec["severity"] == "medium" and rec["issue"] == "High wait times"
    assert "Increase pool_size to 15" in rec["suggestion"]
    severe = advisor.high_wait(shaped(snapshot(waits=[0.9] * 50, peak=10)))
    assert severe is not None and severe["severity"] == "high"


def test_high_wait_needs_enough_checkouts_to_judge() -> None:
    assert advisor.high_wait(shaped(snapshot(waits=[0.08] * 5, peak=2))) is None


def test_high_wait_stays_within_the_tuner_bound() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    assert advisor.high_wait(pool, {**advisor.DEFAULT_BOUNDS, "MAX_POOL_SIZE": 12})["suggested_value"] == 12
    assert advisor.high_wait(pool, {**advisor.DEFAULT_BOUNDS, "MAX_POOL_SIZE": 10}) is None


def test_connection_errors_raise_a_stability_alert() -> None:
    pool = shaped(snapshot(waits=[0.001] * 20, counters={stats.CONNECTION_ERRORS: 5}))
    rec = advisor.connection_errors(pool)
    assert rec is not None and rec["severity"] == "high" and rec["issue"] == "Connection errors"
    assert rec["current_value"] == 5
    few = shaped(snapshot(waits=[0.001] * 1000, counters={stats.CONNECTION_ERRORS: 3}))
    assert advisor.connection_errors(few) is None  # 0.3 %: noise, not instability
    redis_pool = shaped(snapshot("redis_main", "redis", counters={stats.CONNECTION_ERRORS: 4}))
    assert advisor.connection_errors(redis_pool)["pool"] == "redis_main"


def test_long_idle_over_provisioning_suggests_reducing() -> None:
    pool = shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=3, age=3600))
    rec = advisor.over_provisioned(pool)
    assert rec is not None and rec["severity"] == "low"
    assert (rec["setting"], rec["current_value"], rec["suggested_value"]) == ("pool_size", 20, 5)
    # Not after a short window, nor when busy.
    assert advisor.over_provisioned(shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=3,
                                                    age=120))) is None
    assert advisor.over_provisioned(shaped(snapshot(config={"pool_size": 20}, waits=[0.0001] * 300, peak=15,
                                                    age=3600))) is None


def test_redis_near_its_limit_suggests_raising_max_connections() -> None:
    pool = shaped(snapshot("redis_cache", "redis", config={"max_connections": 10}, peak=9))
    rec = advisor.redis_near_limit(pool)
    assert rec is not None
    assert (rec["setting"], rec["current_value"], rec["suggested_value"], rec["severity"]) == (
        "max_connections", 10, 15, "medium")
    pressed = shaped(snapshot("redis_cache", "redis", config={"max_connections": 10}, peak=10,
                              counters={stats.TIMEOUTS: 2}))
    assert advisor.redis_near_limit(pressed)["severity"] == "high"
    assert advisor.redis_near_limit(shaped(snapshot("redis_cache", "redis", peak=7))) is None


def test_server_budget_overrun_across_processes_is_high() -> None:
    budget = {**healthy_budget(), "processes": 4, "pairs": 4, "configured_total": 120, "available": 97, "ok": False}
    rec = advisor.budget_overrun(budget)
    assert rec is not None and rec["severity"] == "high" and rec["setting"] == "max_overflow"
    assert rec["suggested_value"] == 97 // 4 - 10
    assert advisor.budget_overrun(healthy_budget()) is None
    assert advisor.budget_overrun({**healthy_budget(), "available": None, "ok": None}) is None


def test_lost_connections_with_pre_ping_off_suggest_enabling_it() -> None:
    pool = shaped(snapshot(config={"pool_pre_ping": False}, waits=[0.001] * 50,
                           counters={stats.CONNECTION_ERRORS: 1}))
    rec = advisor.pre_ping_off(pool)
    assert rec is not None and (rec["setting"], rec["current_value"], rec["suggested_value"]) == (
        "pool_pre_ping", False, True)
    with_ping = shaped(snapshot(waits=[0.001] * 50, counters={stats.CONNECTION_ERRORS: 1}))
    assert advisor.pre_ping_off(with_ping) is None


def test_a_too_high_recycle_rate_suggests_raising_pool_recycle() -> None:
    pool = shaped(snapshot(config={"pool_recycle": 30.0}, waits=[0.001] * 50,
                           counters={stats.RECYCLED: 200}, age=600))
    rec = advisor.recycle_rate(pool)
    assert rec is not None and rec["setting"] == "pool_recycle"
    assert rec["current_value"] == 30.0 and rec["suggested_value"] == advisor.RECYCLE_TARGET
    slow = shaped(snapshot(config={"pool_recycle": 30.0}, counters={stats.RECYCLED: 3}, age=600))
    assert advisor.recycle_rate(slow) is None


def test_peak_at_the_limit_with_timeouts_is_high() -> None:
    pool = shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, waits=[0.001] * 30, peak=4,
                           counters={stats.TIMEOUTS: 3}))
    rec = advisor.exhaustion(pool)
    assert rec is not None and rec["severity"] == "high"
    assert (rec["setting"], rec["current_value"], rec["suggested_value"]) == ("max_overflow", 2, 4)
    no_timeouts = shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, peak=4))
    assert advisor.exhaustion(no_timeouts) is None


def test_advise_orders_by_severity_and_names_every_field() -> None:
    system = stats_of(
        shaped(snapshot(config={"pool_size": 2, "max_overflow": 2}, waits=[0.08] * 30, peak=4,
                        counters={stats.TIMEOUTS: 3})),
        shaped(snapshot("redis_cache", "redis", peak=9)),
    )
    recs = advisor.advise(system)
    assert [r["severity"] for r in recs] == sorted((r["severity"] for r in recs), key=advisor.SEVERITY_ORDER.get)
    assert {"exhaustion", "high_wait", "redis_near_limit"} <= {r["rule"] for r in recs}
    for rec in recs:
        assert set(rec) >= {"pool", "issue", "suggestion", "severity", "current_value", "suggested_value", "setting"}


# --- the tuner's plan (pure) --------------------------------------------------------------------------------
LIMITS = {"MIN_POOL_SIZE": 1, "MAX_POOL_SIZE": 50, "MAX_OVERFLOW": 100}


def test_plan_follows_sizing_recommendations_within_bounds() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10))
    system = stats_of(pool)
    recs = advisor.advise(system)
    changes = tuner.plan(system, recs, [], LIMITS)
    assert [(c["alias"], c["old"], c["new"]) for c in changes] == [
        ("default", {"pool_size": 10, "max_overflow": 20}, {"pool_size": 15, "max_overflow": 20})]
    capped = tuner.plan(system, recs, [], {**LIMITS, "MAX_POOL_SIZE": 12})
    assert capped[0]["new"]["pool_size"] == 12


def test_plan_never_exceeds_the_server_budget() -> None:
    pool = shaped(snapshot(waits=[0.08] * 50, peak=10), snapshot(waits=[0.08] * 50, peak=10))
    system = stats_of(pool)
    # Two processes x (10 + 20) = 60 of 64 available: growth must stop at 32 per process.
    budget = {**healthy_budget(), "configured_total": 60, "available": 64}
    changes = tuner.plan(system, advisor.advise(system, [budget]), [budget], LIMITS)
    assert changes[0]["new"] == {"pool_size": 15, "max_overflow": 17}
    assert 2 * sum(changes[0]["new"].values()) <= budget["available"]


def test_plan_ignores_advice_that_is_not_sizing() -> None:
    pool = shaped(snapshot(config={"pool_pre_ping": False}, waits=[0.001] * 50,
                           counters={stats.CONNECTION_ERRORS: 9}))
    system = stats_of(pool)
    assert advisor.advise(system)
    assert tuner.plan(system, advisor.advise(system), [], LIMITS) == []
