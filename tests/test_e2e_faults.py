"""End-to-end fault tests: a real gunicorn (tests/support/server.py) under a load of
concurrent requests (tests/support/traffic.py) while the real servers fail.

Each test injects one fault with ``tests.support.services`` (stop/start a server)
or ``pg_terminate_backend``, on this checkout's own services only, and checks what
the guide promises: pre-ping hides dead connections, an unreachable primary gives
fast 503s with ``Retry-After`` and recovers without restarting the app, reads
survive a replica outage, pages survive a Redis outage, an exhausted pool queues
then answers 503 (never 500), and no write is lost or half-applied.

Bounded: loopback only, every request has a timeout, every wait has a deadline, and
every stopped server is started again in a ``finally``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework.authtoken.models import Token

from connection_pools.backends.postgresql.attribution import OWNED_SQL, owned_params
from project.workload.models import Item
from tests.support import server as server_support
from tests.support import services
from tests.support.replication import wait_for_replicas
from tests.support.server import GunicornServer
from tests.support.traffic import Call, Outcome, Traffic, request

pytestmark = [pytest.mark.slow, pytest.mark.django_db(databases=["default", "replica1"], transaction=True)]

API = "/api/v1/admin/connection-pools/"
POOL_TIMEOUT = 2.0  # seconds; small so outages answer quickly
RECOVERY_SECONDS = 5.0  # after the first success, every worker serves again within this


@pytest.fixture
def admin_token() -> str:
    """A staff superuser's DRF token (in the test database, which the server uses)."""
    user = get_user_model().objects.create_user("e2e-admin", password=None, is_staff=True, is_superuser=True)
    key = Token.objects.create(user=user).key
    wait_for_replicas()  # the server reads the token through the replica router
    return key


@pytest.fixture
def prefix() -> str:
    """A unique item-name prefix for this test's writes."""
    return f"e2e-{uuid.uuid4().hex[:8]}"


def api(server: GunicornServer, name: str, token: str, method: str = "GET") -> tuple[int | None, dict]:
    """Call an admin endpoint: ``(status, JSON body or {})``."""
    status, _, body, error = request(method, f"{server.url}{API}{name}",
                                     headers={"Authorization": f"Token {token}"}, timeout=30)
    assert error is None, f"{API}{name}: {error}"
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


def wait_until(predicate, *, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll ``predicate()`` until it returns something truthy; return it, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout}s (last: {last!r})")


def tagged_env(name: str, **extra: str) -> dict[str, str]:
    """Server env: the test database's URLs with ``application_name=name``, so a test
    can find exactly that server's backends in ``pg_stat_activity``; plus ``extra``."""
    urls = server_support.database_urls_for_tests()
    tag = f"?application_name={name}"
    return {"DATABASE_URL": urls["DATABASE_URL"] + tag,
            "DATABASE_REPLICA_URLS": ",".join(u + tag for u in urls["DATABASE_REPLICA_URLS"].split(",")),
            **extra}


def terminate_backends(urls: list[str], application_name: str, *, timeout: float = 15.0) -> int:
    """``pg_terminate_backend`` every backend of one app (all its pooled connections) on each
    server of ``urls`` -- on all of them before waiting, one wave, as a failover or a network cut
    would (killing one server's, waiting, then the next's would cut a request replayed after the
    first kill a second time, within the same wave) -- and wait until they are gone: termination
    is asynchronous, and the promise under test is about connections that are dead, not dying."""
    admins = [psycopg.connect(url, autocommit=True, connect_timeout=5) for url in urls]
    try:
        targets = []
        for conn in admins:
            pids = [row[0] for row in conn.execute(
                f"SELECT pid FROM pg_stat_activity WHERE {OWNED_SQL} AND backend_type = 'client backend'",
                owned_params(application_name)).fetchall()]
            targets.append((conn, pids))
        for conn, pids in targets:
            conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        deadline = time.monotonic() + timeout
        for conn, pids in targets:
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone()[0]:
                assert time.monotonic() < deadline, f"backends {pids} still alive after {timeout}s"
                time.sleep(0.02)
    finally:
        for conn in admins:
            conn.close()
    return sum(len(pids) for _conn, pids in targets)


def assert_writes_exact(traffic: Traffic, prefix: str) -> None:
    """No write lost or half-applied: every 201 is a row, and no row exists without its 201."""
    posts = [o for o in traffic.select() if o.method == "POST"]
    created = {o.name for o in posts if o.status == 201}
    rows = set(Item.objects.using("default").filter(name__startswith=prefix).values_list("name", flat=True))
    assert created, f"no write succeeded: {traffic.summary()}"
    assert created <= rows, f"lost writes (201 but no row): {sorted(created - rows)[:5]}"
    assert rows <= created, f"rows without a 201: {sorted(rows - created)[:5]}"


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.method} {o.path} -> {o.status} {o.error or o.body[:200]!r}" for o in outcomes if not o.ok]


@pytest.fixture
def restore_services() -> Iterator[None]:
    """Whatever a test stopped is running again afterwards, and this process holds no
    connection that died meanwhile (a checked-out connection is only tested by
    pre-ping at its next checkout, which close_all() makes sure of)."""
    connections.close_all()
    yield
    for target in ("primary", "replica", "redis"):
        services.start(target)
    connections.close_all()


def test_all_backends_killed_with_pre_ping_no_request_fails(prefix: str, admin_token: str) -> None:
    urls = server_support.database_urls_for_tests()
    env = tagged_env(prefix, DATABASE_POOL_PRE_PING="true")
    calls = [Call("GET", "/one-query/"), Call("GET", "/items/"), Call("POST", "/items/"), Call("GET", "/whoami/")]
    with (GunicornServer(workers=2, threads=4, env=env) as server,
          Traffic(server.url, calls, clients=4, name_prefix=prefix) as traffic):
        traffic.wait_for(20, ok_only=True)
        for _ in range(2):  # health checks and lag samples leave the pools' connection recipe intact
            assert api(server, "health", admin_token)[0] == 200
        for _ in range(3):
            # Every connection is idle in a pool while the servers drop them all.
            with traffic.paused():
                killed = terminate_backends([urls["DATABASE_URL"], urls["DATABASE_REPLICA_URLS"]], prefix)
                assert killed > 0
            traffic.wait_for(20, since=time.monotonic())
    assert not failures(traffic.select()), traffic.summary()
    assert_writes_exact(traffic, prefix)


def test_primary_restart_fails_fast_with_503_then_recovers_without_restart(
        prefix: str, admin_token: str, restore_services: None) -> None:
    calls = [Call("GET", "/one-query/"), Call("POST", "/items/")]
    env = {"DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT)}
    with (GunicornServer(workers=2, threads=4, env=env) as server,
          Traffic(server.url, calls, clients=4, name_prefix=prefix, timeout=60) as traffic):
        workers = sorted(server.worker_pids())
        traffic.wait_for(10, ok_only=True)
        live: list[tuple[int | None, dict]] = []

        def check() -> None:
            live.append(api(server, "health?live=1", admin_token))
            # The health job's result (what GET health answers) says so too by its next check.
            wait_until(lambda: api(server, "health", admin_token)[1].get("status") == "unhealthy", timeout=15,
                       what="the health job seeing the primary down")

        # Stopped between two requests (a query cut in the middle is the next test's subject); after the
        # first success, every worker's pool has reconnected a moment later (a few seconds at most).
        window = traffic.outage(lambda: services.stop("primary"), lambda: services.start("primary"), check=check,
                                recovery=RECOVERY_SECONDS)
        assert sorted(server.worker_pids()) == workers  # recovered without restarting the app
    (health_status, health), settled = live[0], window.settled

    # During the outage (requests sent after the stop and answered before the restart began):
    outage = traffic.select(since=window.stopped, until=window.restarting)
    assert outage
    assert {o.status for o in outage} == {503}, traffic.summary()
    assert all(o.retry_after for o in outage)
    # ... fast: no request waited much past pool_timeout (generous margin for a loaded machine).
    assert max(o.elapsed for o in outage) < POOL_TIMEOUT + 8, sorted(o.elapsed for o in outage)[-5:]
    assert {o.status for o in traffic.select() if not o.ok} <= {503}, traffic.summary()
    assert health_status == 503 and health.get("status") == "unhealthy", health
    # After recovery: everything answers again.
    assert not failures(traffic.select(since=settled)), traffic.summary()
    assert_writes_exact(traffic, prefix)


def sleeping_backends(conn: psycopg.Connection, application_name: str) -> list[int]:
    """Backends of one app running its ``pg_sleep`` (a request holding its query open)."""
    return [row[0] for row in conn.execute(
        f"SELECT pid FROM pg_stat_activity WHERE {OWNED_SQL} AND query LIKE 'SELECT pg_sleep%%' "
        "AND state = 'active'", owned_params(application_name)).fetchall()]


def cut_while_sleeping(server: GunicornServer, method: str, path: str, prefix: str,
                       data: bytes | None = None) -> tuple[int | None, dict[str, str], bytes]:
    """Send one request whose query sleeps, terminate its backend mid-query, return the response."""
    urls = server_support.database_urls_for_tests()
    answer: list[tuple] = []
    headers = {"Content-Type": "application/json"} if data else {}
    thread = threading.Thread(target=lambda: answer.append(
        request(method, server.url + path, data=data, headers=headers, timeout=90)))
    thread.start()
    with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
        pids = wait_until(lambda: sleeping_backends(conn, prefix), timeout=30, what="the request's query running")
        assert conn.execute("SELECT pg_terminate_backend(%s)", [pids[0]]).fetchone()[0]
    thread.join(timeout=120)
    status, response_headers, body, error = answer[0]
    assert error is None, error
    return status, response_headers, body


def test_a_safe_request_cut_mid_query_is_replayed_on_a_fresh_connection(prefix: str) -> None:
    """A GET whose backend is terminated in the middle of its query (SQLSTATE 57P01) has written
    nothing: it is answered by running the view again, not with an error."""
    with GunicornServer(workers=1, threads=2, env=tagged_env(prefix)) as server:
        status, _, body = cut_while_sleeping(server, "GET", "/slow/?seconds=5", prefix)
        log = server.log_path.read_text(errors="replace")
    assert status == 200, (status, body[:300])
    assert "database connection lost" in log and "answering GET /slow/ again on fresh connections" in log


def test_an_unsafe_request_cut_mid_transaction_is_a_503_and_its_write_is_rolled_back(prefix: str) -> None:
    """A POST cut inside its transaction is not replayed (it would write again): 503 with
    Retry-After, and the row it inserted is gone with the transaction."""
    name = f"{prefix}-cut"
    with GunicornServer(workers=1, threads=2, env=tagged_env(prefix)) as server:
        status, headers, body = cut_while_sleeping(
            server, "POST", "/slow-write/", prefix, data=json.dumps({"name": name, "seconds": 20}).encode())
        after = request("GET", server.url + "/one-query/", timeout=30)
    assert status == 503, (status, body[:300])
    assert headers.get("Retry-After")
    assert after[0] == 200  # the next request gets a fresh connection
    assert not Item.objects.using("default").filter(name=name).exists()


def test_every_backend_killed_twice_under_load_fails_no_safe_request(prefix: str, admin_token: str) -> None:
    """The issue's measurement: 8 clients on safe GETs while every backend of the app (primary and
    replica) is terminated twice, queries in flight included: not one request fails."""
    urls = server_support.database_urls_for_tests()
    calls = [Call("GET", "/slow/?seconds=0.05"), Call("GET", "/one-query/"), Call("GET", "/items/"),
             Call("GET", "/whoami/"), Call("GET", "/cached-count/"), Call("GET", f"{API}stats")]
    with (GunicornServer(workers=2, threads=4, env=tagged_env(prefix)) as server,
          Traffic(server.url, calls, clients=8, name_prefix=prefix, timeout=60,
                  headers={"Authorization": f"Token {admin_token}"}) as traffic):
        traffic.wait_for(40, ok_only=True)
        for _ in range(2):
            killed = terminate_backends([urls["DATABASE_URL"], urls["DATABASE_REPLICA_URLS"]], prefix)
            assert killed > 0
            traffic.wait_for(60, since=time.monotonic())
        log = server.log_path.read_text(errors="replace")
    # On failure, the server's own account of the lost connections (what was replayed, what was not).
    told = "\n".join(line for line in log.splitlines()
                     if ("connection" in line.lower() and "pre-ping found" not in line) or " 503 " in line)[-4000:]
    assert not failures(traffic.select()), f"{traffic.summary()}\nserver log:\n{told}"
    assert "database connection lost" in log  # queries were cut in flight, and replayed


def whoami(server: GunicornServer) -> dict:
    status, _, body, error = request("GET", server.url + "/whoami/", timeout=30)
    assert status == 200, (status, error, body[:300])
    return json.loads(body)


def test_replica_stopped_and_started_reads_never_fail(restore_services: None) -> None:
    calls = [Call("GET", "/items/"), Call("GET", "/whoami/"), Call("GET", "/cached-count/")]
    with (GunicornServer(workers=2, threads=4) as server,
          Traffic(server.url, calls, clients=4) as traffic):
        # Reads go to the replica before the fault (else this test proves nothing).
        wait_until(lambda: whoami(server)["in_recovery"], timeout=30, what="reads on the replica")
        traffic.wait_for(10, ok_only=True)
        with traffic.paused():
            services.stop("replica")
        try:
            stopped = time.monotonic()
            traffic.wait_for(30, since=stopped, timeout=60)
            assert not whoami(server)["in_recovery"]  # served by the primary meanwhile
        finally:
            services.start("replica")
        # Back in rotation in every worker (each has its own cool-down) without restarting the app.
        back = wait_until(lambda: all(w["in_recovery"] for w in [whoami(server) for _ in range(8)]),
                          timeout=60, what="the replica back in rotation")
        traffic.wait_for(10, since=time.monotonic())
    assert back
    assert not failures(traffic.select()), traffic.summary()


def health(server: GunicornServer, token: str) -> str | None:
    return api(server, "health", token)[1].get("status")


def test_redis_stopped_and_started_pages_and_stats_keep_answering(admin_token: str, restore_services: None) -> None:
    calls = [Call("GET", "/cached-count/"), Call("GET", "/one-query/"), Call("GET", "/items/")]
    with (GunicornServer(workers=2, threads=4) as server,
          Traffic(server.url, calls, clients=3) as traffic):
        wait_until(lambda: health(server, admin_token) == "healthy", timeout=30, what="healthy before the fault")
        traffic.wait_for(10, ok_only=True)
        services.stop("redis")
        try:
            stopped = time.monotonic()
            traffic.wait_for(20, since=stopped, timeout=60)
            stats_status, stats = api(server, "stats", admin_token)
            degraded = health(server, admin_token)
        finally:
            services.start("redis")
        wait_until(lambda: health(server, admin_token) == "healthy", timeout=60, what="healthy after Redis is back")
        traffic.wait_for(10, since=time.monotonic())
    assert stats_status == 200 and "database_pools" in stats, stats
    assert degraded == "degraded"
    assert not failures(traffic.select()), traffic.summary()
    # The cached page did answer while Redis was down (as cache misses).
    assert traffic.select(since=stopped, path="/cached-count/", ok_only=True)


def test_pool_exhaustion_waits_then_503_with_retry_after_and_loses_no_write(prefix: str) -> None:
    env = {"DATABASE_POOL_SIZE": "1", "DATABASE_POOL_OVERFLOW": "1", "DATABASE_POOL_TIMEOUT": "1"}
    # Two slow requests hold both connections of the only worker while writes queue for them.
    calls = [Call("GET", "/slow/?seconds=1.5"), Call("POST", "/items/"), Call("POST", "/items/")]
    with (GunicornServer(workers=1, threads=8, env=env) as server,
          Traffic(server.url, calls, clients=8, name_prefix=prefix, timeout=60) as traffic):
        traffic.wait_for(60, timeout=60)
        wait_until(lambda: [o for o in traffic.select() if o.status == 503], timeout=30, what="a 503")
    outcomes = traffic.select()
    statuses = traffic.statuses(outcomes)
    assert set(statuses) <= {200, 201, 503}, traffic.summary()  # never a 500, never a dropped connection
    refused = [o for o in outcomes if o.status == 503]
    assert all(o.retry_after and o.retry_after.isdigit() for o in refused)
    # A refused request first waited for a connection (pool_timeout = 1 s) before giving up.
    assert min(o.elapsed for o in refused) >= 0.9
    assert statuses[201] > 0
    assert_writes_exact(traffic, prefix)
