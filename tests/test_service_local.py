"""The service in this process against the real servers: Redis down, health with latency,
deadlines and budgets, alerts, the tuner's real resizes, and the publisher's epoch."""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from connection_pools import alerts, health, publisher, stats, tuner
from connection_pools.service import connection_pool_service
from connection_pools.signals import pool_alert, pool_resized
from tests.support import services
from tests.support.admin_api import API, make_user, unique_prefix

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def isolated(settings):
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("local")}
    publisher.forget_failure()
    alerts.forget()
    yield
    publisher.forget_failure()
    try:
        publisher.clear()
    except publisher.RedisUnavailable:
        pass  # a test pointed Redis elsewhere: it published nothing under its prefix there


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
        publisher.forget_failure()
        response = client.get(API + "stats")
        assert response.status_code == 200
        body = response.json()
        assert body["source"] == "local" and body["redis_available"] is False
        assert body["processes"]["count"] == 1
        # This process's real numbers.
        local = stats.registry.get("db_default")
        default = body["database_pools"]["default"]
        assert default["checkouts"] == local.counter(stats.CHECKOUTS)
        assert default["connections_created"] == local.counter(stats.CONNECTIONS_CREATED)
        assert default["active_connections"] >= 1  # this test's own connection
        assert default["pool_size"] == default["config"]["pool_size"] >= 1
        checked = client.get(API + "health")
        assert checked.status_code == 200  # Redis down degrades, it does not make us unhealthy
        assert checked.json()["status"] == "degraded"
        assert checked.json()["pools"]["redis_main"]["healthy"] is False
        assert client.post(API + "reset-stats").json()["scope"] == "local"
    finally:
        services.start("redis")
        publisher.forget_failure()
    assert client.get(API + "stats").json()["source"] == "cluster"


# --- health -------------------------------------------------------------------------------------------
def test_health_checks_every_pool_with_latency_and_the_server_budget() -> None:
    use_default_pool()
    publisher.publish()  # this process reports, so the budget counts it
    result = connection_pool_service.health()
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
        result = connection_pool_service.health()
        assert result["pools"]["redis_main"]["healthy"] is False
        assert "imeout" in result["pools"]["redis_main"]["error"]
        assert result["pools"]["db_default"]["healthy"] is True
        assert result["status"] == "degraded"
    finally:
        listener.close()


def test_checks_that_never_answer_are_reported_at_the_deadline() -> None:
    release = threading.Event()
    try:
        results = health.run_concurrently({
            "stuck": lambda: release.wait(60) and {"healthy": True},
            "fine": lambda: {"healthy": True, "latency_ms": 1.0, "error": None},
        }, timeout=0.2)
    finally:
        release.set()
    assert results["fine"]["healthy"] is True
    assert results["stuck"]["healthy"] is False and "no answer within 0.2 s" in results["stuck"]["error"]


def test_unhealthy_primary_means_503() -> None:
    pools = {"db_default": {"kind": "postgresql", "role": "primary", "healthy": False},
             "redis_main": {"kind": "redis", "healthy": True}}
    assert health.overall_status(pools, [True]) == "unhealthy"
    assert health.overall_status({**pools, "db_default": {"kind": "postgresql", "healthy": True}}, [False]) == (
        "degraded")


# --- alerts ----------------------------------------------------------------------------------------------
HIGH = {"pool": "db_default", "rule": "exhaustion", "issue": "Pool exhausted", "suggestion": "more",
        "severity": "high", "current_value": 1, "suggested_value": 2, "setting": "max_overflow"}


def test_each_new_high_finding_alerts_once(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, recommendation: dict[str, Any], **kwargs: Any) -> None:
        received.append(recommendation)

    pool_alert.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="connection_pools.alerts"):
            alerts.notify([HIGH, {**HIGH, "rule": "high_wait", "severity": "medium"}])
            alerts.notify([HIGH])  # the next poll: same finding, no new alert
        assert received == [HIGH]
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
            publisher.forget_failure()
            alerts.notify([HIGH])
        assert received == [HIGH]
    finally:
        pool_alert.disconnect(receiver)


# --- the tuner: real resizes ---------------------------------------------------------------------------------
def test_apply_resizes_the_live_pool_signals_and_broadcasts() -> None:
    from connection_pools.pools.postgres import get_pool

    use_default_pool()
    pool = get_pool("default")
    old = {"pool_size": pool.min_size, "max_overflow": pool.max_size - pool.min_size}
    new = {"pool_size": old["pool_size"] + 2, "max_overflow": old["max_overflow"]}
    resized: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        resized.append(kwargs)

    pool_resized.connect(receiver)
    try:
        performed = tuner.apply([{"pool": "db_default", "alias": "default", "old": old, "new": new,
                                  "reasons": ["test"]}], reason="test")
        assert performed == [{"pool": "db_default", "alias": "default", "setting": "pool_size",
                              "old": old["pool_size"], "new": new["pool_size"], "reason": "test"}]
        assert (pool.min_size, pool.max_size) == (new["pool_size"], new["pool_size"] + new["max_overflow"])
        assert resized and resized[-1]["new"] == new
        # Another process adopts the sizing at its next publish; here: the broadcast exists and applies.
        published = publisher.publish()
        assert published["resized"] == []  # already at the broadcast size
        sizing = publisher.call(lambda c: c.hgetall(publisher.key("sizing")))
        assert json.loads(sizing["default"])["pool_size"] == new["pool_size"]
        tuner.honour_sizing({"default": json.dumps(old)})
        assert pool.min_size == old["pool_size"]
    finally:
        pool_resized.disconnect(receiver)
        if pool.min_size != old["pool_size"]:
            pool.resize(old["pool_size"], old["pool_size"] + old["max_overflow"])


def test_the_auto_tuner_is_off_by_default_and_resizes_within_its_bounds_when_on(settings) -> None:
    from connection_pools.pools.postgres import get_pool

    use_default_pool()
    pool = get_pool("default")
    old = (pool.min_size, pool.max_size)
    assert tuner.auto_tune() == []  # off by default
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "TUNER": {
        **settings.CONNECTION_POOLS["TUNER"], "ENABLED": True, "MAX_POOL_SIZE": old[0] + 2}}
    publisher.publish()
    db_stats = stats.registry.get("db_default")
    try:
        for _ in range(30):  # slow checkouts: the high-wait rule's case
            db_stats.record_checkout(0.2)
            db_stats.record_checkin(0.001)
        performed = tuner.auto_tune()
        assert [(p["pool"], p["setting"], p["old"], p["new"]) for p in performed] == [
            ("db_default", "pool_size", old[0], old[0] + 2)]  # 1.5x wanted, capped at MAX_POOL_SIZE
        assert pool.min_size == old[0] + 2
        assert tuner.auto_tune() == []  # one run per interval in the whole cluster
    finally:
        pool.resize(*old)
        stats.registry.reset("db_default")


def test_optimize_on_an_idle_system_suggests_nothing() -> None:
    # The app's own Redis traffic counts on redis_main, so tests that stopped Redis earlier in
    # this process left real connection errors there: start this "idle system" from zero.
    stats.registry.reset("redis_main")
    use_default_pool()
    result = connection_pool_service.optimize(apply=True)
    assert result["performed"] == [] and result["suggested"] == [] and result["recommendations"] == []


# --- publishing and the reset epoch ------------------------------------------------------------------------------
def test_publishing_honours_a_reset_requested_by_another_process() -> None:
    probe = stats.registry.get_or_create("db_probe6", "postgresql", alias="probe6")
    try:
        assert publisher.publish()["published"] is True
        probe.record_checkout(0.001)
        probe.record_checkin(0.001)
        # Another process asks for a reset of this pool (we simulate it by writing the epoch directly).
        epoch = publisher.call(lambda c: c.incr(publisher.key("epoch")))
        publisher.call(lambda c: c.hset(publisher.key("resets"), str(epoch), "db_probe6"))
        shown = connection_pool_service.pool_stats()["database_pools"]["probe6"]
        assert shown["checkouts"] == 0  # shown reset at once, before this process honours it
        assert probe.counter(stats.CHECKOUTS) == 1
        assert publisher.publish()["reset"] == ["db_probe6"]
        assert probe.counter(stats.CHECKOUTS) == 0
        ttl = publisher.call(lambda c: c.pttl(publisher.key("proc", publisher.process_id())))
        assert 0 < ttl <= publisher.ttl() * 1000
    finally:
        stats.registry.remove("db_probe6")
