"""The cluster store: its own Redis client (not the app's ``redis_main``), typed verbs over the real
Redis, short timeouts without retry, and a breaker that leaves a dead or hung Redis alone."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from django.test import override_settings

from connection_pools import conf
from connection_pools.backends.redis import pools as redis_pools
from connection_pools.cluster import publish
from connection_pools.cluster.store import StoreUnavailable, store
from connection_pools.core import jobs
from connection_pools.insight import history
from connection_pools.sources.base import registry
from tests.support.admin_api import unique_prefix


@pytest.fixture
def quiet() -> Iterator[None]:
    """Own key prefix; no background thread touching Redis while we count."""
    was_running = jobs.is_running()
    jobs.stop()
    store.forget_failure()
    with override_settings(CONNECTION_POOLS={**conf.get_config(), "KEY_PREFIX": unique_prefix("store")}):
        try:
            yield
        finally:
            store.forget_failure()
            try:
                store.clear()
            except StoreUnavailable:
                pass
    publish.forget()
    store.forget_failure()
    if was_running:
        jobs.ensure_started()


def test_the_store_uses_its_own_small_client_and_leaves_redis_main_alone(quiet: None) -> None:
    main = redis_pools.get_pool("main")
    before = main.counters.read().counters
    for _ in range(5):
        assert publish.publish().published
    store.read_snapshots()
    store.read_view()
    assert main.counters.read().counters == before  # not one checkout of the app's pool
    client = store._redis()
    assert client.connection_pool is not main
    assert client.connection_pool.max_connections == conf.get("STORE")["MAX_CONNECTIONS"]


def test_publish_read_reset_and_history_round_trip_as_typed_values(quiet: None) -> None:
    assert publish.publish().published
    cluster = store.read_snapshots()
    (mine,) = [s for s in cluster.snapshots if s.pid == os.getpid()]
    assert {pool.name for pool in mine.pools} == set(registry.names())
    epoch = store.request_reset("db_nothing")
    assert store.resets().pools[epoch] == "db_nothing" and store.resets().epoch == epoch
    history.record({"db_default": history.HistoryPoint(3, 10, 30, 7, 0, 0.0, 0, 0, None)})
    assert [p["active"] for p in history.history()["series"]["db_default"]] == [3]
    history.clear()
    assert history.history()["series"] == {}


def test_a_lease_has_one_holder_who_renews_it(quiet: None) -> None:
    assert store.hold_lease("test", "a", ttl=5)
    assert not store.hold_lease("test", "b", ttl=5)
    assert store.hold_lease("test", "a", ttl=5)  # the holder renews
    store.release_lease("test", "b")  # not b's to release
    assert not store.hold_lease("test", "b", ttl=5)
    store.release_lease("test", "a")
    assert store.hold_lease("test", "b", ttl=5)


def test_a_hung_redis_costs_one_short_timeout_without_retry(quiet: None) -> None:
    listener = socket.socket()  # accepts, never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    try:
        config = {**conf.get_config(), "STORE": {**conf.get("STORE"), "URL": url, "RETRY_AFTER": 30.0}}
        with override_settings(CONNECTION_POOLS=config):
            with pytest.raises(StoreUnavailable, match="Timeout"):
                store.read_view()
            assert len(accepted) == 1  # one attempt, not retried
            with pytest.raises(StoreUnavailable, match="moments ago"):
                store.read_view()  # the breaker: Redis is not asked again yet
            assert len(accepted) == 1
            store.forget_failure()
            with pytest.raises(StoreUnavailable):
                store.read_view()
            assert len(accepted) == 2
    finally:
        stop.set()
        thread.join(2)
        for sock in accepted:
            sock.close()
        listener.close()
        store.close()


def test_redis_down_is_one_clear_error_for_every_verb(quiet: None) -> None:
    config = {**conf.get_config(), "STORE": {**conf.get("STORE"), "URL": "redis://127.0.0.1:9/0"}}
    with override_settings(CONNECTION_POOLS=config):
        for verb in (store.read_view, store.read_snapshots, store.resets, store.sizing,
                     lambda: store.request_reset(None), lambda: store.claim_slot("x", 1, 1.0)):
            store.forget_failure()
            with pytest.raises(StoreUnavailable):
                verb()
        assert publish.publish().published is False  # the publisher says so, never raises
    store.close()
