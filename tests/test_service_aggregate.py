"""Merging process snapshots: sums for counts and gauges, max for peaks, merged histograms, resets."""

from __future__ import annotations

import time

from connection_pools import aggregate, stats
from tests.test_advisor import snapshot

NOW = time.time()


def process(pid: int, *pools: dict, epoch: int = 0) -> dict:
    return {"host": "h", "pid": pid, "taken_at": NOW - 1, "epoch": epoch, "pools": {p["name"]: p for p in pools}}


def test_counts_and_gauges_add_up_peaks_take_the_max_and_histograms_merge() -> None:
    a = snapshot(waits=[0.001] * 3, peak=4, gauges={"active": 2, "available": 8},
                 counters={stats.CONNECTION_ERRORS: 1})
    b = snapshot(waits=[0.2] * 5, peak=7, gauges={"active": 1, "available": 9})
    merged = aggregate.shape(aggregate.merge([process(1, a), process(2, b)], now=NOW), now=NOW)
    pool = merged["database_pools"]["default"]
    assert pool["checkouts"] == 8 and pool["connection_errors"] == 1
    assert pool["active_connections"] == 3 and pool["available_connections"] == 17
    assert pool["pool_size"] == 20 and pool["max_size"] == 60  # cluster capacity
    assert pool["config"]["pool_size"] == 10  # per-process setting
    assert pool["process_peak"] == 7 and pool["peak_connections"] == 7
    assert pool["wait_time"]["count"] == 8
    assert abs(pool["average_wait_time"] - (0.003 + 1.0) / 8) < 1e-9
    assert pool["wait_time"]["max"] == 0.2
    assert pool["processes"] == 2


def test_peak_is_never_below_the_active_sum() -> None:
    a = snapshot(peak=1, gauges={"active": 1})
    b = snapshot(peak=1, gauges={"active": 1})
    pool = aggregate.shape(aggregate.merge([process(1, a), process(2, b)], now=NOW), now=NOW)["database_pools"]
    assert pool["default"]["peak_connections"] == 2


def test_replica_gauges_take_the_worst_value() -> None:
    a = snapshot("db_replica1", gauges={"replica_lag_seconds": 0.5, "in_rotation": True})
    b = snapshot("db_replica1", gauges={"replica_lag_seconds": 3.0, "in_rotation": False})
    pool = aggregate.shape(aggregate.merge([process(1, a), process(2, b)], now=NOW), now=NOW)
    replica = pool["database_pools"]["replica1"]
    assert replica["replica_lag_seconds"] == 3.0 and replica["in_rotation"] is False


def test_a_snapshot_older_than_a_reset_shows_zeroed_counters() -> None:
    old = process(1, snapshot(waits=[0.01] * 5, peak=3, gauges={"active": 1}),
                  snapshot("redis_main", "redis", waits=[0.01] * 2), epoch=0)
    # Epoch 1 reset db_default only: the Redis pool keeps its numbers.
    shown = aggregate.apply_resets(old, 1, {1: "db_default"})
    assert shown["pools"]["db_default"]["counters"][stats.CHECKOUTS] == 0
    assert shown["pools"]["db_default"]["histograms"]["wait_seconds"]["count"] == 0
    assert shown["pools"]["db_default"]["peaks"]["active"] == 1  # what is in use now
    assert shown["pools"]["redis_main"]["counters"][stats.CHECKOUTS] == 2
    everything = aggregate.apply_resets(old, 2, {1: "db_default", 2: "*"})
    assert everything["pools"]["redis_main"]["counters"][stats.CHECKOUTS] == 0
    # A process that has honoured the epoch is shown as it is.
    assert aggregate.apply_resets({**old, "epoch": 2}, 2, {}) == {**old, "epoch": 2}
