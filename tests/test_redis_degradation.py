"""Redis stopped: pages that use the cache answer 200 (misses), the outage is logged once per
interval, the Redis pools report unhealthy, and everything recovers by itself when Redis is back."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import caches
from django.test import Client

from connection_pools.backends.redis import pools as redis_pools
from connection_pools.backends.redis.cache import RedisCache
from tests.support import services

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture
def redis_stopped() -> Iterator[None]:
    """Stop the real Redis for the test; start it again whatever happens."""
    services.stop("redis")
    try:
        yield
    finally:
        services.start("redis")


@pytest.fixture
def outage_log() -> Iterator[None]:
    reporter = caches["default"].logger
    reporter.reset()
    yield
    reporter.reset()


def get_json(client: Client, path: str) -> tuple[int, dict]:
    response = client.get(path)
    return response.status_code, json.loads(response.content)


def test_cache_pages_degrade_to_misses_and_recover_without_restart(
    redis_stopped: None, outage_log: None, caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client()
    cache_counters = redis_pools.get_pool("cache").counters
    errors_before = cache_counters.count("connection_errors")
    with caplog.at_level(logging.WARNING, logger="connection_pools"):
        for _ in range(5):
            status, body = get_json(client, "/cached-count/")
            assert status == 200, body
            assert body["cache_hit"] is False
    # Each request made a get and a set that failed: 10 ignored errors, one log line.
    outage_lines = [r for r in caplog.records if r.name == "connection_pools.cache"]
    assert len(outage_lines) == 1, [r.getMessage() for r in caplog.records]
    assert "serving cache misses" in outage_lines[0].getMessage()
    assert cache_counters.count("connection_errors") - errors_before >= 10

    for name in ("main", "cache"):
        result = redis_pools.ping(name, timeout=1)
        assert not result.ok and result.error and result.latency_seconds is None
    # The statistics service's client: created without error, fails only when used.
    main = redis_pools.get_redis("main")
    with pytest.raises(redis_pools.redis.ConnectionError):
        main.ping()

    services.start("redis")
    wait_until(lambda: redis_pools.ping("cache").ok and redis_pools.ping("main").ok)
    # Same process, same pools: the cache works again.
    assert get_json(client, "/cached-count/") == (200, {"count": 0, "cache_hit": False})
    assert get_json(client, "/cached-count/") == (200, {"count": 0, "cache_hit": True})
    assert main.ping()


def test_interval_elapsed_logs_again_with_the_count_of_suppressed_failures(
    redis_stopped: None, caplog: pytest.LogCaptureFixture,
) -> None:
    backend = caches["default"]
    reporter = backend.logger
    reporter.reset()
    original = reporter.interval
    reporter.interval = 3600.0
    try:
        with caplog.at_level(logging.WARNING, logger="connection_pools.cache"):
            for _ in range(4):
                assert backend.get("test-redis:any") is None
            reporter._last_logged -= 7200.0  # the interval has passed
            assert backend.get("test-redis:any", "fallback") == "fallback"
    finally:
        reporter.interval = original
        reporter.reset()
    lines = [r.getMessage() for r in caplog.records if r.name == "connection_pools.cache"]
    assert len(lines) == 2, lines
    assert "still unavailable" in lines[1] and "4 more cache calls" in lines[1]


def test_a_hung_redis_cannot_hang_a_request() -> None:
    """A server that accepts and never answers: socket timeouts turn it into a miss."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # never answers
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    from connection_pools import env

    settings = env.redis_pools({"REDIS_CACHE_URL": url, "REDIS_SOCKET_TIMEOUT": "0.2",
                                "REDIS_SOCKET_CONNECT_TIMEOUT": "0.2"})
    params = env.caches(settings)["default"]
    backend = RedisCache(params["LOCATION"], params)
    try:
        assert backend.get("test-redis:hung", "miss") == "miss"
        assert backend.set("test-redis:hung", 1) is None
        pool = backend.client.get_client(write=True).connection_pool
        # Connected, then no answer to the handshake: a failed connection, not a command timeout.
        assert pool.counters.count("connection_errors") >= 1
        assert pool.counters.count("socket_timeouts") == 0
        assert pool.counters.active == 0
    finally:
        from django_redis.pool import ConnectionFactory

        ConnectionFactory._pools.pop(url, None)
        stop.set()
        thread.join(5)
        for sock in accepted:
            sock.close()
        listener.close()


@pytest.mark.slow
def test_gunicorn_workers_serve_cache_pages_through_a_redis_outage(gunicorn_server) -> None:
    def get(path: str) -> tuple[int, dict]:
        with urllib.request.urlopen(server.url + path, timeout=30) as response:
            return response.status, json.loads(response.read())

    with gunicorn_server(workers=2, threads=2) as server:
        assert get("/cached-count/")[0] == 200
        services.stop("redis")
        try:
            for _ in range(8):  # urllib raises on any 5xx
                status, body = get("/cached-count/")
                assert status == 200 and body["cache_hit"] is False
        finally:
            services.start("redis")

        def cache_hits_again() -> bool:
            return get("/cached-count/")[1]["cache_hit"] is True

        wait_until(cache_hits_again)  # the same workers, no restart
        log = server.log_path.read_text()
        assert "Traceback" not in log
        assert "serving cache misses" in log


@pytest.mark.slow
def test_gunicorn_worker_warms_its_redis_pools_at_start_up(gunicorn_server) -> None:
    import redis

    from connection_pools import conf

    base = conf.get("REDIS")["main"]["url"].rsplit("/", 1)[0]
    admin = redis.Redis.from_url(f"{base}/0", socket_timeout=5)

    def clients_on(db: int) -> int:
        return sum(1 for client in admin.client_list() if client.get("db") == str(db))

    env = {"CONNECTION_POOLS_WARM": "true", "REDIS_URL": f"{base}/14", "REDIS_CACHE_URL": f"{base}/15"}
    try:
        with gunicorn_server(workers=1, threads=2, env=env):
            # Nothing used the cache yet (the readiness probe is /one-query/): these are the warm ones.
            assert clients_on(15) == conf.REDIS_POOL_DEFAULTS["cache"]["warm_connections"]
            assert clients_on(14) >= conf.REDIS_POOL_DEFAULTS["main"]["warm_connections"]
    finally:
        admin.close()
