"""History: points from the aggregate, bounded storage in the real Redis, one sampler per slot."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.conf import settings
from django.test import override_settings

from connection_pools.cluster.store import Resets, store
from connection_pools.cluster.view import ClusterView, merge
from connection_pools.insight import history
from tests.support.snapshots import NOW, pool_snapshot, process


def aggregate() -> ClusterView:
    """A cluster view of three pools, as the rollup would store it."""
    default = pool_snapshot(waits=[0.001] * 8 + [0.2], gauges={"active": 4, "available": 6, "waiting": 1},
                            counters={"connection_errors": 2, "timeouts": 1})
    replica = pool_snapshot("db_replica1", gauges={"replica_lag_seconds": 0.25})
    cache = pool_snapshot("redis_cache", "redis", gauges={"active": 3, "available": 7, "max_capacity": 50})
    return merge([process(1, default, replica, cache)], Resets(0, {}), now=NOW)


def point(active: int) -> history.HistoryPoint:
    return history.HistoryPoint(active=active, size=10, max_size=30, available=0, waiting=0, wait_p95=0.0, errors=0,
                                timeouts=0, replica_lag_seconds=None)


def redis_count(command: str, key: str) -> int:
    return int(store.call(lambda client: getattr(client, command)(key)))


@pytest.fixture
def isolated():
    """A private key prefix so tests never see each other's points; ``isolated(**more)`` adds settings."""
    prefix = f"test-history-{uuid.uuid4().hex[:8]}"
    overrides: list[override_settings] = []

    def configure(**extra: float) -> None:
        config = {**settings.CONNECTION_POOLS, "KEY_PREFIX": prefix, **extra}
        override = override_settings(CONNECTION_POOLS=config)
        override.enable()
        overrides.append(override)

    configure()
    yield configure
    history.clear()
    for override in reversed(overrides):
        override.disable()


def test_points_of_a_view_map_every_pool_kind():
    points = history.points_of(aggregate())
    assert set(points) == {"db_default", "db_replica1", "redis_cache"}
    p95 = aggregate().pool("db_default").wait.quantile(0.95)
    assert points["db_default"] == history.HistoryPoint(active=4, size=10, max_size=30, available=6, waiting=1,
                                                        wait_p95=p95, errors=2, timeouts=1, replica_lag_seconds=None)
    assert p95 > 0.05
    assert points["db_replica1"].replica_lag_seconds == 0.25
    assert points["redis_cache"].active == 3
    assert points["redis_cache"].size == 50


def test_record_then_read_back_oldest_first(isolated):
    now = time.time()
    for age in (3, 2, 1):
        history.record(history.points_of(aggregate()), now=now - age)
    data = history.history(minutes=1)
    assert data["interval"] == settings.CONNECTION_POOLS.get("HISTORY_INTERVAL", 5.0)
    assert set(data["series"]) == {"db_default", "db_replica1", "redis_cache"}
    times = [p["t"] for p in data["series"]["db_default"]]
    assert times == sorted(times) and len(times) == 3
    assert set(data["series"]["db_default"][0]) == {"t", *history.POINT_FIELDS}

    only = history.history("db_replica1", minutes=1)
    assert list(only["series"]) == ["db_replica1"]
    assert only["series"]["db_replica1"][-1]["replica_lag_seconds"] == 0.25


def test_minutes_selects_the_window(isolated):
    now = time.time()
    history.record({"db_default": point(1)}, now=now - 600)
    history.record({"db_default": point(2)}, now=now - 5)
    assert [p["active"] for p in history.history("db_default", minutes=1)["series"]["db_default"]] == [2]
    assert [p["active"] for p in history.history("db_default", minutes=20)["series"]["db_default"]] == [1, 2]


def test_storage_is_bounded_by_retention_and_count(isolated):
    isolated(HISTORY_INTERVAL=1.0, HISTORY_SECONDS=10.0)
    key = store.key("history", "pool", "db_default")
    now = time.time()
    for i in range(100):  # one point every 2 s over the last 200 s: only the last 10 s are kept
        history.record({"db_default": point(i)}, now=now - 200 + i * 2)
    series = history.history("db_default", minutes=60)["series"]["db_default"]
    assert 0 < len(series) <= 6
    assert all(p["t"] >= now - 10 for p in series)
    assert redis_count("zcard", key) <= 6  # trimmed in Redis too, not only when read
    assert 0 < redis_count("ttl", key) <= 10 + 60

    for i in range(50):  # a burst inside the window: capped by count, newest kept
        history.record({"db_default": point(1000 + i)}, now=now + i * 0.05)
    assert redis_count("zcard", key) == history.max_points() == 20
    assert history.history("db_default")["series"]["db_default"][-1]["active"] == 1049


def test_one_claim_per_slot_across_concurrent_callers(isolated):
    isolated(HISTORY_INTERVAL=2.0)
    now = (int(time.time() // 2.0) + 1000) * 2.0  # a slot nobody else uses
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def contend() -> None:
        barrier.wait()
        results.append(history.claim_slot(now))

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert history.claim_slot(now + 2.0) is True  # the next slot is free again


def test_bad_minutes_are_rejected():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            history.history(minutes=bad)


def test_redis_down_means_unavailable_not_a_crash():
    dead = {**settings.CONNECTION_POOLS["REDIS"]["main"], "url": "redis://127.0.0.1:9/0"}
    config = {**settings.CONNECTION_POOLS, "REDIS": {**settings.CONNECTION_POOLS["REDIS"], "main": dead}}
    with override_settings(CONNECTION_POOLS=config):
        with pytest.raises(history.HistoryUnavailable):
            history.history()
        assert history.sample() is False
    store.forget_failure()  # the store skips Redis briefly after a failure
