"""Redis pools against the real Redis: settings reach the live pool, counts are exact,
the blocking pool queues a burst, errors are counted, pools are fork-safe."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from connection_pools import conf, env
from connection_pools.backends.redis import pools as redis_pools
from connection_pools.sources.redis import snapshot_of
from tests.support.server import free_port

PoolFactory = Callable[..., Any]


@pytest.fixture
def make_pool() -> Iterator[PoolFactory]:
    """Throw-away pools on the real Redis (each counts for itself)."""
    created: list[Any] = []

    def factory(url: str | None = None, **overrides: Any) -> Any:
        settings = {**conf.get("REDIS")["main"], **overrides}
        if url is not None:
            settings["url"] = url
        pool = redis_pools.build_pool(f"test{uuid.uuid4().hex[:8]}", settings)
        created.append(pool)
        return pool

    yield factory
    for pool in created:
        pool.disconnect()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def server_clients(name: str) -> int:
    """Connections the Redis server has from clients named ``name``."""
    admin = redis.Redis.from_url(conf.get("REDIS")["main"]["url"], socket_timeout=5)
    try:
        return sum(1 for client in admin.client_list() if client.get("name") == name)
    finally:
        admin.close()


# --- settings reach the live pools ------------------------------------------------------
def _assert_live_settings(pool: Any, settings: dict[str, Any]) -> None:
    expected_class = (redis_pools.InstrumentedBlockingConnectionPool if settings["blocking"]
                      else redis_pools.InstrumentedConnectionPool)
    assert type(pool) is expected_class
    assert pool.max_connections == settings["max_connections"]
    if settings["blocking"]:
        assert pool.timeout == settings["blocking_timeout"]
    kwargs = pool.connection_kwargs
    for key in ("socket_keepalive", "retry_on_timeout", "health_check_interval", "socket_timeout",
                "socket_connect_timeout"):
        assert kwargs[key] == settings[key], key
    # And from the pool into a real connection.
    connection = pool.get_connection()
    try:
        assert connection.socket_keepalive is True
        assert connection.retry_on_timeout is True
        assert connection.health_check_interval == settings["health_check_interval"]
        assert connection.socket_timeout == settings["socket_timeout"]
        assert connection.socket_connect_timeout == settings["socket_connect_timeout"]
        assert connection.retry.get_retries() >= 1  # retry_on_timeout really retries
    finally:
        pool.release(connection)


def test_guide_defaults_reach_the_live_main_and_cache_pools() -> None:
    defaults = conf.REDIS_POOL_DEFAULTS  # the guide's: main 10, a larger cache pool 50
    assert (defaults["main"]["max_connections"], defaults["cache"]["max_connections"]) == (10, 50)
    for pool_defaults in defaults.values():
        assert pool_defaults["socket_keepalive"] is True and pool_defaults["retry_on_timeout"] is True
        assert pool_defaults["health_check_interval"] == 30
    redis_settings = conf.get("REDIS")  # what the environment made of them
    main = redis_pools.get_pool("main")
    _assert_live_settings(main, redis_settings["main"])
    cache_pool = caches["default"].client.get_client(write=True).connection_pool
    _assert_live_settings(cache_pool, redis_settings["cache"])
    # One cache pool per process: get_pool("cache") is the pool behind Django's cache.
    assert redis_pools.get_pool("cache") is cache_pool
    assert cache_pool.pool_name == "cache" and main.pool_name == "main"
    assert snapshot_of(redis_pools.get_pool("cache")).config["max_connections"] == redis_settings["cache"][
        "max_connections"]
    assert snapshot_of(redis_pools.get_pool("main")).config["max_connections"] == redis_settings["main"][
        "max_connections"]


def test_env_vars_reach_the_live_pools(make_pool: PoolFactory) -> None:
    base = conf.get("REDIS")["cache"]["url"].rsplit("/", 1)[0]
    environ = {
        "REDIS_URL": f"{base}/0",
        "REDIS_CACHE_URL": f"{base}/7",  # its own URL: django-redis caches pools by URL
        "REDIS_POOL_SIZE": "3",
        "REDIS_MAX_CONNECTIONS": "17",
        "REDIS_POOL_BLOCKING": "false",
        "REDIS_SOCKET_TIMEOUT": "1.5",
        "REDIS_SOCKET_CONNECT_TIMEOUT": "0.75",
        "REDIS_HEALTH_CHECK_INTERVAL": "12",
    }
    settings = env.redis_pools(environ)
    assert settings["main"]["max_connections"] == 3
    main = make_pool(**settings["main"])
    _assert_live_settings(main, settings["main"])

    from django_redis.pool import ConnectionFactory

    from connection_pools.backends.redis.cache import RedisCache

    cache_params = env.caches(settings)["default"]
    backend = RedisCache(cache_params["LOCATION"], cache_params)
    try:
        pool = backend.client.get_client(write=True).connection_pool
        _assert_live_settings(pool, settings["cache"])
        assert pool.max_connections == 17
        assert backend.set("test-redis:env", 1) and backend.get("test-redis:env") == 1
        backend.delete("test-redis:env")
    finally:
        pool.disconnect()
        ConnectionFactory._pools.pop(cache_params["LOCATION"], None)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("REDIS_POOL_BLOCKING", "maybe", "REDIS_POOL_BLOCKING"),
        ("REDIS_POOL_TIMEOUT", "0", "REDIS_POOL_TIMEOUT"),
        ("REDIS_SOCKET_TIMEOUT", "soon", "REDIS_SOCKET_TIMEOUT"),
        ("REDIS_HEALTH_CHECK_INTERVAL", "-1", "REDIS_HEALTH_CHECK_INTERVAL"),
        ("REDIS_POOL_SIZE", "0", "REDIS_POOL_SIZE"),
    ],
)
def test_bad_redis_env_vars_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=fragment):
        env.redis_pools({name: value})


def test_config_never_shows_the_password(make_pool: PoolFactory) -> None:
    url = conf.get("REDIS")["main"]["url"].replace("redis://", "redis://user:s3cret-pw@")
    config = snapshot_of(make_pool(url=url)).config
    assert "s3cret-pw" not in json.dumps(config)
    assert config["url"].startswith("redis://127.0.0.1:")


# --- exact counts -------------------------------------------------------------------------
@pytest.mark.parametrize("blocking", [True, False])
def test_n_concurrent_clients_give_in_use_n_and_created_n(make_pool: PoolFactory, blocking: bool) -> None:
    client_name = f"cp{uuid.uuid4().hex[:10]}"
    url = conf.get("REDIS")["main"]["url"] + f"?client_name={client_name}"
    pool = make_pool(url=url, blocking=blocking, max_connections=10)
    n = 6
    holding = threading.Barrier(n + 1)
    done = threading.Event()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            connection = pool.get_connection()
            connection.send_command("PING")
            assert connection.read_response() == b"PONG"
            holding.wait(timeout=10)
            done.wait(timeout=10)
            pool.release(connection)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            holding.abort()

    threads = [threading.Thread(target=client) for _ in range(n)]
    for thread in threads:
        thread.start()
    holding.wait(timeout=10)
    snapshot = snapshot_of(pool)
    assert snapshot.gauges.active == n
    assert snapshot.gauges.available == 0
    assert snapshot.counters.connections_created == n
    assert snapshot.counters.checkouts == n
    assert snapshot.peak_active == n
    assert server_clients(client_name) == n  # the server agrees: n real connections
    done.set()
    for thread in threads:
        thread.join(10)
    assert not errors
    snapshot = snapshot_of(pool)
    gauges = snapshot.gauges
    assert (gauges.active, gauges.available, gauges.open, gauges.max_capacity, gauges.waiting) == (0, n, n, 10, 0)
    assert snapshot.hold.count == n
    assert snapshot.counters.timeouts == 0 and snapshot.counters.connection_errors == 0

    # Reuse: more commands, no new connections.
    client = redis.Redis(connection_pool=pool)
    for _ in range(20):
        client.ping()
    snapshot = snapshot_of(pool)
    assert snapshot.counters.checkouts == n + 20
    assert snapshot.counters.connections_created == n


def test_gauges_come_from_redis_py_public_api_and_match_our_bookkeeping(make_pool: PoolFactory) -> None:
    # Fails loudly if redis-py drops or changes get_connection_count(): the gauges would go wrong.
    assert redis_pools.HAS_CONNECTION_COUNT, f"redis-py {redis.__version__} lacks get_connection_count()"
    for blocking in (True, False):
        pool = make_pool(blocking=blocking, max_connections=5)
        held = [pool.get_connection() for _ in range(3)]
        pool.release(held.pop())
        counts = {attrs[redis_pools.CONNECTION_STATE_ATTRIBUTE]: count
                  for count, attrs in pool.get_connection_count()}
        assert counts == {"used": 2, "idle": 1}
        assert pool.connection_counts() == (2, 1)
        assert pool.counters.active == 2  # our own checkout/checkin bookkeeping agrees
        for connection in held:
            pool.release(connection)
        assert pool.connection_counts() == (0, 3)


# --- exhaustion: the blocking pool waits, only a real timeout is an error ---------------------
def test_burst_beyond_max_connections_waits_with_the_blocking_pool(make_pool: PoolFactory) -> None:
    pool = make_pool(blocking=True, max_connections=2, blocking_timeout=30.0)
    held = [pool.get_connection(), pool.get_connection()]
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.get_connection()))
    waiter.start()
    wait_until(lambda: pool.gauges().waiting == 1)
    assert not got  # queued, not failed
    pool.release(held.pop())
    waiter.join(10)
    assert len(got) == 1
    snapshot = snapshot_of(pool)
    assert snapshot.counters.timeouts == 0
    assert snapshot.counters.checkouts == 3
    assert snapshot.counters.connections_created == 2  # the waiter reused a connection
    wait = snapshot.wait
    assert wait.count == 3 and wait.max > 0
    for connection in held + got:
        pool.release(connection)

    # Many threads issuing real commands through a 2-connection pool: all succeed.
    client = redis.Redis(connection_pool=pool)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for round_ in range(10):
                client.set(f"test-redis:burst:{index}", round_)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    client.delete(*[f"test-redis:burst:{i}" for i in range(8)])
    assert not failures
    snapshot = snapshot_of(pool)
    assert snapshot.counters.timeouts == 0
    assert snapshot.peak_active == 2
    assert snapshot.counters.connections_created == 2


def test_blocking_pool_timeout_is_counted_as_an_error(make_pool: PoolFactory) -> None:
    pool = make_pool(blocking=True, max_connections=1, blocking_timeout=0.2)
    held = pool.get_connection()
    with pytest.raises(redis.ConnectionError, match="No connection available"):
        pool.get_connection()
    snapshot = snapshot_of(pool)
    assert snapshot.counters.timeouts == 1
    assert snapshot.counters.checkouts == 1
    assert snapshot.wait.count == 2  # the failed wait is recorded too
    pool.release(held)


def test_non_blocking_pool_fails_at_once_when_full_and_counts_it(make_pool: PoolFactory) -> None:
    pool = make_pool(blocking=False, max_connections=1)
    held = pool.get_connection()
    with pytest.raises(redis.exceptions.MaxConnectionsError):
        pool.get_connection()
    assert pool.counters.count("timeouts") == 1
    pool.release(held)


# --- errors -------------------------------------------------------------------------
def test_connection_errors_and_socket_timeouts_are_counted(make_pool: PoolFactory) -> None:
    from tests.support.server import free_port

    dead = make_pool(url=f"redis://127.0.0.1:{free_port()}/0", retry_on_timeout=False)
    with pytest.raises(redis.ConnectionError):
        redis.Redis(connection_pool=dead).ping()
    assert dead.counters.count("connection_errors") == 1
    assert dead.counters.count("checkouts") == 0 and dead.counters.active == 0
    # A connect inside a command (redis-py's reconnect path) surfaces through two hooks: counted once.
    connection = dead.make_connection()
    with pytest.raises(redis.ConnectionError):
        connection.send_command("PING")
    assert dead.counters.count("connection_errors") == 2

    slow = make_pool(socket_timeout=0.2, retry_on_timeout=False)
    client = redis.Redis(connection_pool=slow)
    with pytest.raises(redis.TimeoutError):
        client.blpop([f"test-redis:empty:{uuid.uuid4().hex}"], timeout=2)  # answers after 2 s > 0.2 s
    assert slow.counters.count("socket_timeouts") == 1
    assert slow.counters.active == 0  # the checkout came back
    assert client.ping()  # and the pool recovers by itself
    assert slow.counters.count("connections_closed") == 1
    assert slow.counters.count("connections_created") == 2


# --- health, warming, fork ------------------------------------------------------------
def test_ping_reports_latency_and_never_leaks_connections(make_pool: PoolFactory,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    result = redis_pools.ping("main", timeout=2)
    assert result.ok and result.latency_seconds is not None and result.error is None
    assert redis_pools.ping("cache").ok
    bad = redis_pools.ping("nope")
    assert not bad.ok and "Unknown Redis pool" in bad.error
    # Repeated health checks leave no connection behind (counted on the server by client name).
    client_name = f"cp{uuid.uuid4().hex[:10]}"
    pool = make_pool(url=conf.get("REDIS")["main"]["url"] + f"?client_name={client_name}")
    monkeypatch.setattr(redis_pools, "get_pool", lambda name: pool)
    for _ in range(25):
        assert redis_pools.ping("main", timeout=2).ok
    wait_until(lambda: server_clients(client_name) == 0)
    assert pool.counters.count("connections_created") == 0  # not the pool's connections


def test_get_redis_is_cheap_shared_and_never_raises_at_creation() -> None:
    assert redis_pools.get_redis("main") is redis_pools.get_redis("main")
    assert redis_pools.get_redis("main").connection_pool is redis_pools.get_pool("main")
    assert redis_pools.get_redis("cache").connection_pool is redis_pools.get_pool("cache")
    with pytest.raises(ValueError, match="Unknown Redis pool"):
        redis_pools.get_redis("nope")


def test_warming_opens_connections_without_counting_checkouts(make_pool: PoolFactory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pool = make_pool(max_connections=5)
    monkeypatch.setattr(redis_pools, "get_pool", lambda name: pool)
    monkeypatch.setattr(redis_pools, "pool_settings", lambda name: {"warm_connections": 3})
    assert redis_pools.warm_redis(["main"]) == {"main": 3}
    snapshot = snapshot_of(pool)
    assert snapshot.gauges.available == 3 and snapshot.gauges.active == 0
    assert snapshot.counters.connections_created == 3
    assert snapshot.counters.checkouts == 0


def test_warming_a_pool_whose_server_is_down_logs_one_line_and_returns(make_pool: PoolFactory,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    pool = make_pool(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)  # nothing listens
    monkeypatch.setattr(redis_pools, "get_pool", lambda name: pool)
    monkeypatch.setattr(redis_pools, "pool_settings", lambda name: {"warm_connections": 2})
    with caplog.at_level("WARNING", logger="connection_pools"):
        assert redis_pools.warm_redis(["main"]) == {"main": 0}
    assert any("Warming Redis pool redis_main" in r.getMessage() and "opened 0 of 2" in r.getMessage()
               for r in caplog.records)


def test_after_fork_the_child_starts_from_zero_and_works(make_pool: PoolFactory) -> None:
    pool = make_pool(max_connections=5)
    client = redis.Redis(connection_pool=pool)
    held = pool.get_connection()  # in use at fork time
    client.ping()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        try:
            before = snapshot_of(pool)
            client.ping()
            after = snapshot_of(pool)
            result = {"before_gauges": asdict(before.gauges), "after": asdict(after.counters),
                      "active": asdict(after.gauges)}
        except BaseException as exc:
            result = {"error": repr(exc)}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        result = json.loads(pipe.read())
    assert status == 0 and "error" not in result, result
    assert result["before_gauges"]["active"] == 0  # the parent's connections are not the child's
    assert result["after"]["checkouts"] == 1
    assert result["after"]["connections_created"] == 1  # its own, new connection
    assert result["active"]["active"] == 0 and result["active"]["available"] == 1
    # The parent is untouched.
    assert pool.counters.active == 1 and pool.counters.count("checkouts") == 2
    pool.release(held)
