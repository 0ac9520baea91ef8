"""Merging process snapshots: sums for counts and gauges, max for peaks, merged histograms, resets,
and the presenter's guide shape on top."""

from __future__ import annotations

import functools
import json
import operator
import random

from connection_pools import presenter
from connection_pools.cluster.store import Resets
from connection_pools.cluster.view import ClusterView, host_subtotals, merge
from connection_pools.core.snapshots import Counters, Gauges, HistogramSnapshot, PoolSnapshot, ProcessSnapshot
from tests.support.snapshots import NOW, pool_snapshot, process


def shaped(*processes: ProcessSnapshot, resets: Resets | None = None) -> dict:
    return presenter.stats(merge(processes, resets or Resets(0, {}), now=NOW), (), now=NOW)


def test_counts_and_gauges_add_up_peaks_take_the_max_and_histograms_merge() -> None:
    a = pool_snapshot(waits=[0.001] * 3, peak=4, gauges={"active": 2, "available": 8},
                      counters={"connection_errors": 1})
    b = pool_snapshot(waits=[0.2] * 5, peak=7, gauges={"active": 1, "available": 9})
    pool = shaped(process(1, a), process(2, b))["database_pools"]["default"]
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
    a = pool_snapshot(peak=1, gauges={"active": 1})
    b = pool_snapshot(peak=1, gauges={"active": 1})
    assert shaped(process(1, a), process(2, b))["database_pools"]["default"]["peak_connections"] == 2


def test_replica_gauges_take_the_worst_value() -> None:
    a = pool_snapshot("db_replica1", gauges={"replica_lag_seconds": 0.5, "in_rotation": True})
    b = pool_snapshot("db_replica1", gauges={"replica_lag_seconds": 3.0, "in_rotation": False})
    replica = shaped(process(1, a), process(2, b))["database_pools"]["replica1"]
    assert replica["replica_lag_seconds"] == 3.0 and replica["in_rotation"] is False


def test_a_snapshot_older_than_a_reset_shows_zeroed_counters() -> None:
    old = process(1, pool_snapshot(waits=[0.01] * 5, peak=3, gauges={"active": 1}),
                  pool_snapshot("redis_main", "redis", waits=[0.01] * 2), epoch=0)
    # Epoch 1 reset db_default only: the Redis pool keeps its numbers.
    shown = {p.name: p for p in old.reset_since(1, {1: "db_default"}, now=NOW).pools}
    assert shown["db_default"].counters.checkouts == 0 and shown["db_default"].wait.count == 0
    assert shown["db_default"].peak_active == 1  # what is in use now
    assert shown["redis_main"].counters.checkouts == 2
    everything = {p.name: p for p in old.reset_since(2, {1: "db_default", 2: "*"}, now=NOW).pools}
    assert everything["redis_main"].counters.checkouts == 0
    honoured = ProcessSnapshot(host="h", pid=1, taken_at=old.taken_at, epoch=2, pools=old.pools)
    assert honoured.reset_since(2, {}, now=NOW) is honoured  # a process that honoured it is shown as it is
    # And the merge applies the resets itself.
    assert shaped(old, resets=Resets(1, {1: "db_default"}))["database_pools"]["default"]["checkouts"] == 0


def test_the_vocabulary_is_one_until_the_presenter_renames_it() -> None:
    redis = pool_snapshot("redis_cache", "redis", waits=[0.001] * 2, peak=2, gauges={"active": 1, "available": 3},
                          counters={"connections_created": 4, "connections_closed": 1})
    database = pool_snapshot(waits=[0.001] * 2, peak=2, gauges={"active": 1, "available": 3},
                             counters={"connections_created": 4, "connections_closed": 1})
    # Both pools say "active", "connections_created", "peak_active" ...
    assert (redis.gauges.active, redis.counters.connections_created, redis.peak_active) == (
        database.gauges.active, database.counters.connections_created, database.peak_active)
    # ... and only the presenter gives them the guide's names.
    body = shaped(process(1, redis, database))
    assert body["redis_pools"]["cache"]["in_use_connections"] == body["database_pools"]["default"][
        "active_connections"] == 1
    assert body["redis_pools"]["cache"]["created_connections"] == 4
    assert body["redis_pools"]["cache"]["closed_connections"] == 1 and body["redis_pools"]["cache"]["peak_in_use"] == 2


def test_wire_forms_round_trip_and_tolerate_garbage() -> None:
    snapshot = process(7, pool_snapshot(waits=[0.01, 0.2], peak=2, gauges={"replica_lag_seconds": 1.5}),
                       pool_snapshot("db_replica2", gauges={"replica_lag_seconds": 0.0, "lag_bytes": 0,
                                                            "in_rotation": False}),
                       pool_snapshot("redis_main", "redis"))
    assert ProcessSnapshot.from_wire(json.loads(json.dumps(snapshot.to_wire()))) == snapshot
    view = merge([snapshot], Resets(3, {}), now=NOW)
    assert ClusterView.from_json(view.to_json()) == ClusterView(
        pools=view.pools, process_count=1, processes=view.processes, generated_at=NOW, epoch=3, from_rollup=True)
    assert ProcessSnapshot.from_wire({"host": 1}) is None and ProcessSnapshot.from_wire("x") is None
    assert PoolSnapshot.from_wire({"name": "db_x", "counters": {"checkouts": "many"}}).counters.checkouts == 0
    assert ClusterView.from_json("{not json") is None


def test_decoding_takes_exact_numbers_and_refuses_what_json_should_not_hold() -> None:
    wire = {"name": "db_x", "counters": {"checkouts": 3, "timeouts": 2.0, "recycled": True, "fallbacks": 10**400,
                                         "long_holds": float("nan")},
            "gauges": {"active": 1, "replica_lag_seconds": float("inf"), "mean_age_seconds": 10**400},
            "wait": {"buckets": [1] * 19 + [10**400], "count": 2, "sum": 1e308 * 10, "max": 0.5},
            "reset_at": 5, "config": {1: "one", "ok": None, "nested": {"a": 1}}}
    pool = PoolSnapshot.from_wire(wire)
    assert pool is not None
    counters = pool.counters
    # An exact int stays exact whatever its size; a float counts truncated; a bool, NaN and inf count 0.
    assert (counters.checkouts, counters.timeouts, counters.recycled, counters.fallbacks, counters.long_holds) == (
        3, 2, 0, 10**400, 0)
    assert pool.gauges.replica_lag_seconds is None and pool.gauges.mean_age_seconds == 0.0  # beyond a float: 0
    assert pool.wait.buckets[-1] == 10**400 and pool.wait.sum == 0.0 and pool.wait.max == 0.5
    assert pool.reset_at == 5.0 and isinstance(pool.reset_at, float)
    assert dict(pool.config) == {"1": "one", "ok": None}


def test_one_pass_totals_equal_adding_pairwise() -> None:
    rnd = random.Random(13)
    for _ in range(300):
        parts = [pool_snapshot(waits=[rnd.random() / 10 for _ in range(rnd.randrange(4))], peak=rnd.randrange(5),
                               counters={"recycled": rnd.randrange(3), "timeouts": rnd.randrange(3)},
                               gauges={"active": rnd.randrange(4),
                                       "replica_lag_seconds": rnd.choice([None, rnd.random()]),
                                       "lag_bytes": rnd.choice([None, rnd.randrange(100)]),
                                       "in_rotation": rnd.choice([None, True, False]),
                                       "oldest_age_seconds": rnd.random()})
                 for _ in range(rnd.randrange(1, 6))]
        assert Gauges.total([p.gauges for p in parts]) == functools.reduce(operator.add, [p.gauges for p in parts])
        assert Counters.total([p.counters for p in parts]) == functools.reduce(operator.add,
                                                                               [p.counters for p in parts])
        assert HistogramSnapshot.total([p.wait for p in parts]) == functools.reduce(operator.add,
                                                                                    [p.wait for p in parts])


def test_host_subtotals_add_up_to_the_cluster() -> None:
    snapshots = [process(pid, pool_snapshot(waits=[0.001] * pid), host=host)
                 for host, pid in (("a", 1), ("a", 2), ("b", 3))]
    hosts = host_subtotals(snapshots, Resets(0, {}), now=NOW)
    assert [(h.host, h.processes, h.pools[0].counters.checkouts) for h in hosts] == [("a", 2, 3), ("b", 1, 3)]
    cluster = merge(snapshots, Resets(0, {}), now=NOW)
    assert cluster.pools[0].counters.checkouts == sum(h.pools[0].counters.checkouts for h in hosts) == 6
