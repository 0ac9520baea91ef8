"""History: points from the aggregate, bounded storage in the real Redis, one sampler per slot."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.conf import settings
from django.test import override_settings

from connection_pools import history, publisher

AGGREGATE = {
    "database_pools": {
        "default": {
            "pool": "db_default", "kind": "postgresql", "role": "primary", "active_connections": 4,
            "pool_size": 10, "max_size": 30, "available_connections": 6, "waiting": 1,
            "wait_time": {"count": 9, "mean": 0.01, "max": 0.2, "p50": 0.001, "p95": 0.15, "p99": 0.2},
            "connection_errors": 2, "timeouts": 1, "replica_lag_seconds": None,
        },
        "replica1": {
            "pool": "db_replica1", "kind": "postgresql", "role": "replica", "active_connections": 0,
            "pool_size": 10, "max_size": 30, "available_connections": 10, "waiting": 0,
            "wait_time": {"count": 0, "mean": 0.0, "max": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0},
            "connection_errors": 0, "timeouts": 0, "replica_lag_seconds": 0.25,
        },
    },
    "redis_pools": {
        "cache": {
            "pool": "redis_cache", "kind": "redis", "in_use_connections": 3, "available_connections": 7,
            "max_connections": 50, "connection_errors": 0, "timeouts": 0,
            "wait_time": {"count": 1, "mean": 0.0, "max": 0.0, "p50": 0.0, "p95": 0.002, "p99": 0.0},
        },
    },
}


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


def test_points_from_stats_maps_every_pool_kind():
    points = history.points_from_stats(AGGREGATE)
    assert set(points) == {"db_default", "db_replica1", "redis_cache"}
    assert points["db_default"] == {
        "active": 4, "size": 10, "max_size": 30, "available": 6, "waiting": 1, "wait_p95": 0.15,
        "errors": 2, "timeouts": 1, "replica_lag_seconds": None,
    }
    assert points["db_replica1"]["replica_lag_seconds"] == 0.25
    assert points["redis_cache"]["active"] == 3
    assert points["redis_cache"]["size"] == 50


def test_record_then_read_back_oldest_first(isolated):
    now = time.time()
    for age in (3, 2, 1):
        history.record(history.points_from_stats(AGGREGATE), now=now - age)
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
    history.record({"db_default": {"active": 1}}, now=now - 600)
    history.record({"db_default": {"active": 2}}, now=now - 5)
    assert [p["active"] for p in history.history("db_default", minutes=1)["series"]["db_default"]] == [2]
    assert [p["active"] for p in history.history("db_default", minutes=20)["series"]["db_default"]] == [1, 2]


def test_storage_is_bounded_by_retention_and_count(isolated):
    isolated(HISTORY_INTERVAL=1.0, HISTORY_SECONDS=10.0)
    client = publisher.redis_client()
    key = history._key("pool", "db_default")
    now = time.time()
    for i in range(100):  # one point every 2 s over the last 200 s: only the last 10 s are kept
        history.record({"db_default": {"active": i}}, now=now - 200 + i * 2)
    series = history.history("db_default", minutes=60)["series"]["db_default"]
    assert 0 < len(series) <= 6
    assert all(p["t"] >= now - 10 for p in series)
    assert client.zcard(key) <= 6  # trimmed in Redis too, not only when read
    assert 0 < client.ttl(key) <= 10 + 60

    for i in range(50):  # a burst inside the window: capped by count, newest kept
        history.record({"db_default": {"active": 1000 + i}}, now=now + i * 0.05)
    assert client.zcard(key) == history.max_points() == 20
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
    publisher.forget_failure()  # the client skips Redis briefly after a failure
