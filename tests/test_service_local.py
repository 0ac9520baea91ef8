"""The service in this process against the real servers: Redis down, health with latency,
deadlines and budgets, alerts, the tuner's real resizes, and the publisher's epoch."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from connection_pools.backends.postgresql.live import get_pool
from connection_pools.backends.redis import pools as redis_pools
from connection_pools.cluster import publish
from connection_pools.cluster.store import StoreUnavailable, store
from connection_pools.core.reports import PoolHealth, Recommendation, ServerBudget
from connection_pools.insight import alerts, health, tuner
from connection_pools.service import connection_pool_service
from connection_pools.signals import pool_alert, pool_resized
from connection_pools.sources.base import registry
from tests.support import services
from tests.support.admin_api import API, make_user, unique_prefix
from tests.support.snapshots import CountingSource

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def isolated(settings):
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("local")}
    store.forget_failure()
    alerts.forget()
    health.forget()
    yield
    store.forget_failure()
    try:
        store.clear()
    except StoreUnavailable:
        pass  # a test pointed Redis elsewhere: it published nothing under its prefix there
    publish.forget()


def use_default_pool() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


# --- Redis down ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_redis_down_stats_answer_with_this_process_numbers() -> None:
    _, token = make_user(staff=True)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    use_default_pool()
    services.stop("redis")
    try:
        store.forget_failure()
        response = client.get(API + "stats")
        assert response.status_code == 200
        body = response.json()
        assert body["source"] == "local" and body["redis_available"] is False
        assert body["processes"]["count"] == 1
        # This process's real numbers.
        local = get_pool("default").counters
        default = body["database_pools"]["default"]
        assert default["checkouts"] == local.count("checkouts")
        assert default["connections_created"] == local.count("connections_created")
        assert default["active_connections"] >= 1  # this test's own connection
        assert default["pool_size"] == default["config"]["pool_size"] >= 1
        checked = client.get(API + "health?live=1")
        assert checked.status_code == 200  # Redis down degrades, it does not make us unhealthy
        assert checked.json()["status"] == "degraded"
        assert checked.json()["pools"]["redis_main"]["healthy"] is False
        assert client.post(API + "reset-stats").json()["scope"] == "local"
    finally:
        services.start("redis")
        store.forget_failure()
    assert client.get(API + "stats").json()["source"] == "cluster"


# --- health -------------------------------------------------------------------------------------------
def test_health_checks_every_pool_with_latency_and_the_server_budget() -> None:
    use_default_pool()
    publish.publish()  # this process reports, so the budget counts it
    result = connection_pool_service.health(live=True)
    assert result["status"] == "healthy", result
    assert set(result["pools"]) == {"db_default", "db_replica1", "redis_main", "redis_cache"}
    for check in result["pools"].values():
        assert check["healthy"] is True and check["latency_ms"] > 0 and check["error"] is None
    assert result["pools"]["db_replica1"]["replica_lag_seconds"] is not None
    assert result["pools"]["db_replica1"]["in_rotation"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int, "
                       "current_setting('superuser_reserved_connections')::int")
        max_connections, reserved = cursor.fetchone()
    budget = result["server_budget"]
    assert (budget["max_connections"], budget["available"]) == (max_connections, max_connections - reserved)
    config = connection_pool_service.pool_stats()["database_pools"]["default"]["config"]
    assert budget["processes"] == 1
    assert budget["configured_total"] == config["pool_size"] + config["max_overflow"]
    assert budget["ok"] is True


@pytest.mark.usefixtures("quiet_background")
def test_reading_health_checks_but_stores_nothing_only_the_job_does() -> None:
    assert store.read_view()[1] is None  # no health result yet under this prefix
    assert connection_pool_service.health()["pools"]["db_default"]["healthy"] is True  # none: checked now
    assert connection_pool_service.health(live=True)["status"] in ("healthy", "degraded")
    assert store.read_view()[1] is None and health.latest(None) is None  # a read wrote nothing, anywhere
    health.job()
    assert store.read_view()[1] is not None  # the job stores its result for every process


def test_a_hung_redis_makes_health_answer_within_its_timeout(settings) -> None:
    # A server that accepts the TCP connection (backlog) and never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        redis_settings = {**settings.CONNECTION_POOLS["REDIS"]}
        redis_settings["main"] = {**redis_settings["main"], "url": f"redis://127.0.0.1:{port}/0"}
        settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "REDIS": redis_settings,
                                     "HEALTH_CHECK_TIMEOUT": 0.5}
        result = connection_pool_service.health(live=True)
        assert result["pools"]["redis_main"]["healthy"] is False
        assert "imeout" in result["pools"]["redis_main"]["error"]
        assert result["pools"]["db_default"]["healthy"] is True
        assert result["status"] == "degraded"
    finally:
        listener.close()


def test_checks_that_never_answer_are_reported_at_the_deadline() -> None:
    release = threading.Event()
    late = []
    try:
        results = health.run_concurrently({
            "stuck": lambda: release.wait(60) and "answered",
            "fine": lambda: "answered",
        }, 0.2, lambda name: late.append(name) or "late")
    finally:
        release.set()
    assert results == {"stuck": "late", "fine": "answered"} and late == ["stuck"]
    # Every check that never answers is reported at the deadline, named: see probe().


def test_unhealthy_primary_means_503() -> None:
    down = PoolHealth(name="db_default", kind="postgresql", role="primary", healthy=False)
    redis_up = PoolHealth(name="redis_main", kind="redis", healthy=True)
    over = ServerBudget(server="s", pool="db_default", aliases=("default",), processes=9, pairs=9,
                        configured_total=300, pool_size=10, max_overflow=20, max_connections=100, reserved=3,
                        available=97)
    assert health.overall_status([down, redis_up], []) == "unhealthy"
    up = PoolHealth(name="db_default", kind="postgresql", role="primary", healthy=True)
    assert health.overall_status([up, redis_up], [over]) == "degraded"
    assert health.overall_status([up, redis_up], []) == "healthy"


# --- alerts ----------------------------------------------------------------------------------------------
HIGH = Recommendation(pool="db_default", rule="exhaustion", issue="Pool exhausted", suggestion="more",
                      severity="high", current_value=1, suggested_value=2, setting="max_overflow")
MEDIUM = Recommendation(pool="db_default", rule="high_wait", issue="High wait", suggestion="more",
                        severity="medium")


def test_each_new_high_finding_alerts_once(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, recommendation: dict[str, Any], **kwargs: Any) -> None:
        received.append(recommendation)

    pool_alert.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="connection_pools.alerts"):
            alerts.notify([HIGH, MEDIUM])
            alerts.notify([HIGH])  # the next look: same finding, no new alert
        assert received == [HIGH.to_wire()]
        assert [r.levelno for r in caplog.records if "Pool exhausted" in r.getMessage()] == [logging.WARNING]
        alerts.forget()  # another process (no memory of it) sees the same finding: deduplicated in Redis
        alerts.notify([HIGH])
        assert len(received) == 1
        alerts.notify([])  # gone ...
        alerts.notify([HIGH])  # ... and back: a new finding
        assert len(received) == 2
    finally:
        pool_alert.disconnect(receiver)


def test_without_redis_each_process_still_alerts_once(settings) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: Redis "down"
    redis_settings = {**settings.CONNECTION_POOLS["REDIS"]}
    redis_settings["main"] = {**redis_settings["main"], "url": f"redis://127.0.0.1:{port}/0"}
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "REDIS": redis_settings}
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, recommendation: dict[str, Any], **kwargs: Any) -> None:
        received.append(recommendation)

    pool_alert.connect(receiver)
    try:
        for _ in range(3):
            store.forget_failure()
            alerts.notify([HIGH])
        assert received == [HIGH.to_wire()]
    finally:
        pool_alert.disconnect(receiver)


# --- the tuner: real resizes ---------------------------------------------------------------------------------
def test_apply_resizes_the_live_pool_signals_and_broadcasts() -> None:
    use_default_pool()
    pool = get_pool("default")
    old = {"pool_size": pool.min_size, "max_overflow": pool.max_size - pool.min_size}
    new = {"pool_size": old["pool_size"] + 2, "max_overflow": old["max_overflow"]}
    resized: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        resized.append(kwargs)

    pool_resized.connect(receiver)
    try:
        change = tuner.SizingChange("db_default", "default", 1, tuner.Sizing(**old), tuner.Sizing(**new), ("test",))
        performed = tuner.apply([change], reason="test")
        assert performed == (tuner.Performed("db_default", "default", "pool_size", old["pool_size"],
                                             new["pool_size"], "test"),)
        assert (pool.min_size, pool.max_size) == (new["pool_size"], new["pool_size"] + new["max_overflow"])
        assert resized and resized[-1]["new"] == new
        # Every other process adopts the recorded sizing in its job; here: it is recorded, and applies.
        assert tuner.adopt_job() == []  # already at the recorded size
        assert json.loads(store.sizing()["default"])["pool_size"] == new["pool_size"]
        tuner.adopt({"default": json.dumps(old)})
        assert pool.min_size == old["pool_size"]
    finally:
        pool_resized.disconnect(receiver)
        if pool.min_size != old["pool_size"]:
            pool.resize(old["pool_size"], old["pool_size"] + old["max_overflow"])


@pytest.mark.usefixtures("quiet_background")  # no rollup job of this process in the middle of the count
def test_the_auto_tuner_is_off_by_default_and_resizes_within_its_bounds_when_on(settings) -> None:
    use_default_pool()
    pool = get_pool("default")
    old = (pool.min_size, pool.max_size)
    assert tuner.auto_tune_job() == ()  # off by default
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "TUNER": {
        **settings.CONNECTION_POOLS["TUNER"], "ENABLED": True, "MAX_POOL_SIZE": old[0] + 2}}
    try:
        for _ in range(30):  # slow checkouts: the high-wait rule's case
            pool.counters.checkout(0.2)
            pool.counters.checkin(0.001)
        publish.publish()  # the tuner reads the cluster view, which this process's snapshot is in
        performed = tuner.auto_tune_job()
        assert [(p.pool, p.setting, p.old, p.new) for p in performed] == [
            ("db_default", "pool_size", old[0], old[0] + 2)]  # 1.5x wanted, capped at MAX_POOL_SIZE
        assert pool.min_size == old[0] + 2
        assert tuner.auto_tune_job() == ()  # one run per interval in the whole cluster
    finally:
        pool.resize(*old)
        pool.counters.reset()


def test_optimize_on_an_idle_system_suggests_nothing() -> None:
    # Tests that stopped Redis earlier in this process left real connection errors on the
    # Redis pools: start this "idle system" from zero.
    registry.reset()
    redis_pools.get_pool("cache").reset_counters()
    use_default_pool()
    publish.publish()  # this process's pools are in the view
    result = connection_pool_service.optimize(apply=True)
    assert result["performed"] == [] and result["suggested"] == [] and result["recommendations"] == []


# --- publishing and the reset epoch ------------------------------------------------------------------------------
def test_publishing_honours_a_reset_requested_by_another_process() -> None:
    probe = CountingSource("db_probe6")
    registry.add(probe)
    try:
        assert publish.publish().published is True
        probe.counters.checkout(0.001)
        probe.counters.checkin(0.001)
        assert publish.publish().published is True
        # Another process asks for a reset of this pool (we simulate it by writing the epoch directly).
        epoch = store.call(lambda c: c.incr(store.key("epoch")))
        store.call(lambda c: c.hset(store.key("resets"), str(epoch), "db_probe6"))
        shown = connection_pool_service.pool_stats()["database_pools"]["probe6"]
        assert shown["checkouts"] == 0  # shown reset at once, before this process honours it
        assert probe.counters.count("checkouts") == 1
        assert publish.publish().reset == ("db_probe6",)
        assert probe.counters.count("checkouts") == 0
        member = f"{socket.gethostname()}:{os.getpid()}"
        ttl = store.call(lambda c: c.pttl(store.key("proc", member)))
        assert 0 < ttl <= store.snapshot_ttl() * 1000
    finally:
        registry.remove("db_probe6")
