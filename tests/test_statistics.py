"""The statistics catalogue: one entry per statistic, the snapshots read and write by its names, and the
wire form an older process published still reads the same (a rolling deploy)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from connection_pools.core.snapshots import CATALOGUE, HISTOGRAMS, Counters, Gauges, PoolSnapshot
from connection_pools.core.statistics import STATISTIC
from tests.support.snapshots import pool_snapshot

#: A pool as 15b9ed1 published it (before the catalogue renamed size/min_size/max_size).
OLDER_WIRE = {
    "name": "db_default", "kind": "postgresql", "role": "primary", "alias": "default", "config": {"pool_size": 10},
    "counters": {"checkouts": 7, "recycled": 1},
    "gauges": {"active": 2, "available": 8, "size": 10, "min_size": 10, "max_size": 30, "overflow_in_use": 0,
               "replica_lag_seconds": None},
    "peak_active": 3, "wait": {"buckets": [0] * 20, "count": 0, "sum": 0.0, "max": 0.0},
    "hold": {"buckets": [0] * 20, "count": 0, "sum": 0.0, "max": 0.0}, "reset_at": 5.0, "processes": 1,
    "recycle_rate_per_minute": 0.0,
}


def test_every_counter_gauge_and_histogram_is_one_catalogue_entry() -> None:
    for cls in (Counters, Gauges):
        for f in fields(cls):
            assert STATISTIC in f.metadata, f"{cls.__name__}.{f.name} has no catalogue entry"
    assert set(HISTOGRAMS) == {"wait", "hold", "query"} <= set(CATALOGUE)
    for name, entry in CATALOGUE.items():
        assert entry.name == name and entry.help.endswith("."), name
        assert entry.type in ("counter", "gauge", "histogram", "setting")


def test_the_snapshot_reads_every_scalar_statistic_by_its_name() -> None:
    pool = pool_snapshot(gauges={"active": 2, "open": 9, "capacity": 10}, counters={"timeouts": 4}, peak=3)
    assert (pool.value("active"), pool.value("open"), pool.value("capacity")) == (2, 9, 10)
    assert pool.value("timeouts") == 4 and pool.value("peak_active") == 3 and pool.value("peak_connections") == 3
    for name, entry in CATALOGUE.items():
        if entry.type == "histogram":
            assert pool.histogram(name).count >= 0
        else:
            pool.value(name)  # every entry is readable
    with pytest.raises(KeyError):
        pool.value("size")  # the old, ambiguous name is no statistic any more


def test_an_older_process_s_snapshot_reads_with_the_new_names() -> None:
    pool = PoolSnapshot.from_wire(json.loads(json.dumps(OLDER_WIRE)))
    assert pool is not None
    assert (pool.gauges.open, pool.gauges.capacity, pool.gauges.max_capacity) == (10, 10, 30)
    assert pool.counters.checkouts == 7 and pool.gauges.active == 2


def test_the_wire_form_keeps_the_keys_an_older_reader_knows() -> None:
    pool = pool_snapshot(gauges={"open": 4, "capacity": 10, "max_capacity": 30})
    gauges = pool.to_wire()["gauges"]
    assert (gauges["size"], gauges["min_size"], gauges["max_size"]) == (4, 10, 30)
    assert not {"open", "capacity", "max_capacity"} & set(gauges)
    assert PoolSnapshot.from_wire(json.loads(json.dumps(pool.to_wire()))) == pool
