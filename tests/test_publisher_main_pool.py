"""The app's own Redis traffic (publishing, history, resets...) goes through the instrumented
``main`` pool, so ``redis_main`` counts it, and fails fast on a dead or hung Redis."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings

from connection_pools import background, conf, history, publisher, stats
from connection_pools.pools import redis as redis_pools
from tests.support.admin_api import unique_prefix

FAST = 0.3


@pytest.fixture
def quiet() -> Iterator[None]:
    """Own key prefix; no background thread adding checkouts of its own while we count."""
    was_running = background.is_running()
    background.stop()
    publisher.forget_failure()
    with override_settings(CONNECTION_POOLS={**conf.get_config(), "KEY_PREFIX": unique_prefix("mainpool")}):
        try:
            yield
        finally:
            publisher.forget_failure()
            try:
                publisher.clear()
            except publisher.RedisUnavailable:
                pass
    publisher.forget_failure()
    if was_running:
        background.ensure_started()


@pytest.fixture
def make_pool() -> Iterator[Any]:
    """Throw-away pools on the real Redis, under their own stats names."""
    created: list[Any] = []

    def factory(**overrides: Any) -> Any:
        pool = redis_pools.build_pool(f"test{uuid.uuid4().hex[:8]}", {**conf.get("REDIS")["main"], **overrides})
        created.append(pool)
        return pool

    yield factory
    for pool in created:
        pool.disconnect()
        stats.registry.remove(pool.stats.name)


def counts(name: str = "redis_main") -> dict[str, int]:
    pool_stats = stats.registry.get(name)
    assert pool_stats is not None
    return {key: pool_stats.counter(key) for key in
            (stats.CHECKOUTS, stats.CONNECTIONS_CREATED, stats.CONNECTIONS_CLOSED, redis_pools.SOCKET_TIMEOUTS,
             stats.TIMEOUTS)}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def test_publishing_is_counted_on_the_main_pool_and_leaks_nothing(quiet: None) -> None:
    assert publisher.publish()["published"] is True  # the first publish also adopts the epoch
    pool = redis_pools.get_pool("main")
    assert publisher.redis_client().connection_pool is pool
    pool.disconnect()  # the next checkout must open a real connection
    before = counts()

    result = publisher.publish()
    assert result["published"] is True and result["reset"] == [] and result["resized"] == []
    after_publish = counts()
    assert delta(before, after_publish)[stats.CHECKOUTS] == 1  # one pipeline per interval
    assert delta(before, after_publish)[stats.CONNECTIONS_CREATED] == 1
    assert pool.connection_counts()[0] == 0  # in use: the checkout came back

    background.run_job_now("connection_pools.publish")  # the background job, run here
    after_job = counts()
    assert delta(after_publish, after_job)[stats.CHECKOUTS] == 1
    assert delta(after_publish, after_job)[stats.CONNECTIONS_CREATED] == 0  # reused, not a new connection
    assert pool.connection_counts()[0] == 0
    assert stats.registry.get("redis_main").snapshot()["gauges"][stats.ACTIVE] == 0


def test_reads_resets_and_history_decode_and_count(quiet: None) -> None:
    before = counts()
    publisher.publish()
    cluster = publisher.read_cluster()
    assert [s["pid"] for s in cluster["snapshots"]] == [stats.registry.snapshot()["pid"]]
    epoch = publisher.request_reset("db_nothing")
    assert publisher.read_cluster()["resets"][epoch] == "db_nothing"  # str, as before
    history.record({"db_default": {"active": 3}})
    assert [p["active"] for p in history.history()["series"]["db_default"]] == [3]
    history.clear()
    assert history.history()["series"] == {}
    assert delta(before, counts())[stats.CHECKOUTS] >= 7
    assert redis_pools.get_pool("main").connection_counts()[0] == 0


def test_text_decodes_nested_replies() -> None:
    assert publisher.text({b"k": [b"a", (b"b", 1.5)], b"s": {b"x"}, "n": None}) == {
        "k": ["a", ("b", 1.5)], "s": {"x"}, "n": None}


def test_a_hung_redis_costs_one_short_timeout_without_retry(quiet: None) -> None:
    listener = socket.socket()  # accepts (backlog), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    main = {**conf.get("REDIS")["main"], "url": f"redis://127.0.0.1:{listener.getsockname()[1]}/0"}
    try:
        with override_settings(CONNECTION_POOLS={**conf.get_config(), "REDIS": {**conf.get("REDIS"), "main": main}}):
            pool = redis_pools.get_pool("main")
            assert pool.config()["retry_on_timeout"] is True  # the app's setting: it would retry
            before = counts()
            with pytest.raises(publisher.RedisUnavailable):
                publisher.call(lambda client: client.get("anything"))
            # One socket timeout: the handshake's, not retried (the pool alone would retry once).
            assert delta(before, counts())[redis_pools.SOCKET_TIMEOUTS] == 1
            assert pool.connection_counts()[0] == 0
            # The failed handshake opened no connection for the statistics, so none closed.
            assert delta(before, counts())[stats.CONNECTIONS_CREATED] == 0
            assert delta(before, counts())[stats.CONNECTIONS_CLOSED] == 0
            with pytest.raises(publisher.RedisUnavailable, match="moments ago"):
                publisher.call(lambda client: client.get("anything"))  # skipped, not tried again
            assert delta(before, counts())[redis_pools.SOCKET_TIMEOUTS] == 1
    finally:
        listener.close()
        stats.registry.reset("redis_main")  # leave no staged errors for the advisor in later tests


@pytest.mark.parametrize("protocol", [2, 3])  # their parsers keep the socket timeout in different places
def test_a_fail_fast_checkout_gives_the_connection_back_with_the_pools_settings(make_pool: Any,
                                                                                protocol: int) -> None:
    url = conf.get("REDIS")["main"]["url"]
    pool = make_pool(url=f"{url}?protocol={protocol}", socket_timeout=2.0, socket_connect_timeout=2.0,
                     retry_on_timeout=True)
    assert pool.connection_kwargs["protocol"] == protocol
    with pool.fail_fast(FAST):
        connection = pool.get_connection()  # created in fail-fast mode
        try:
            assert connection.socket_timeout == FAST and connection.retry.get_retries() == 0
            assert connection._sock.gettimeout() == FAST
        finally:
            pool.release(connection)
    again = pool.get_connection()  # the same connection (LIFO), checked out normally
    try:
        assert again is connection
        assert again.socket_timeout == 2.0 and again.retry.get_retries() == 1
        # The pool's readiness poll resets the socket to the parser's copy: that copy was restored too.
        assert again._sock.gettimeout() == 2.0
    finally:
        pool.release(again)
    with pool.fail_fast(FAST):
        reused = pool.get_connection()  # a connected one, made fail-fast for this checkout
        try:
            assert reused is connection and reused._sock.gettimeout() == FAST
            assert redis.Redis(connection_pool=pool).ping()  # a second checkout on this thread
        finally:
            pool.release(reused)
    assert pool.stats.active == 0 and pool.stats.counter(stats.CONNECTIONS_CREATED) == 2


def test_a_fail_fast_checkout_waits_briefly_for_a_full_blocking_pool(make_pool: Any) -> None:
    pool = make_pool(max_connections=1, blocking=True, blocking_timeout=5.0)
    held = pool.get_connection()
    failed = threading.Event()
    try:
        with pool.fail_fast(FAST), pytest.raises(redis.ConnectionError, match="No connection available"):
            pool.get_connection()
        failed.set()
        assert pool.stats.counter(stats.TIMEOUTS) == 1
        waited = pool.stats.snapshot()["histograms"][stats.WAIT_SECONDS]["max"]
        assert waited < 2.5  # gave up long before the pool's own 5 s blocking_timeout
    finally:
        pool.release(held)
    assert failed.is_set() and pool.stats.active == 0


def test_a_settings_change_closes_the_replaced_pools_idle_connections_at_once(quiet: None) -> None:
    old = redis_pools.get_pool("main")
    assert redis_pools.get_redis("main").ping()
    assert old.connection_counts() == (0, 1)  # one idle connection
    before = counts()
    changed = {**conf.get("REDIS")["main"], "socket_timeout": 4.5}
    with override_settings(CONNECTION_POOLS={**conf.get_config(), "REDIS": {**conf.get("REDIS"), "main": changed}}):
        new = redis_pools.get_pool("main")
        assert new is not old
        # Closed by get_pool itself: we still hold the old pool, so no garbage collection did it.
        assert delta(before, counts())[stats.CONNECTIONS_CLOSED] == 1
        assert redis_pools.get_redis("main").connection_pool is new
