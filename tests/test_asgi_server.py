"""Proof under real uvicorn workers (gunicorn + ``project.asgi_worker.AsgiWorker``), on the real
primary and replica: a burst of sync and async requests never takes a worker past its pools'
``max_size``, every connection is back in its pool afterwards and the pools settle at
``pool_size`` with nothing leaked (the server's count of each worker's connections equals the
pools' own), and the statistics count every request. With persistent connections
(``CONN_MAX_AGE > 0``) the server refuses to start (``connection_pools.E301``); forced, the
statistics show the leak.

Each worker's server connections are counted in ``pg_stat_activity`` by client port (which
ports a worker holds: ``/proc``), without the health and sampler connections (their own
``application_name``).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from connection_pools.cluster.store import store
from connection_pools.conf.aliases import probe_params
from connection_pools.core.snapshots import ProcessSnapshot
from tests.support.server import AsgiServer
from tests.support.sockets import client_ports

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]

POOL_SIZE, OVERFLOW = 3, 3
MAX_SIZE = POOL_SIZE + OVERFLOW
WORKERS = 2
REQUESTS, CLIENTS = 2000, 50
#: Sync and async views; each one checks out exactly one connection (primary or replica).
PATHS = ("/one-query/", "/items/?limit=1", "/async/one-query/", "/async/items/?limit=1")
#: An async view whose query runs on asgiref's shared executor: a thread that never sees
#: request_finished (a request may reuse the connection an earlier one left on that thread).
SHARED_THREAD = ("/async/one-query-shared-thread/",)
POOLS = ("db_default", "db_replica1")
SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.support.asgi_settings",
    "DATABASE_POOL_SIZE": str(POOL_SIZE), "DATABASE_POOL_OVERFLOW": str(OVERFLOW),
    "DATABASE_POOL_TIMEOUT": "20", "CONNECTION_POOLS_PROCESSES": str(WORKERS),
}


def _servers() -> dict[str, tuple[int, dict[str, object]]]:
    """Pool name -> (server port, connection parameters) of the primary and the replica."""
    found = {}
    for alias, pool in (("default", "db_default"), ("replica1", "db_replica1")):
        # Named like our own probes, so the count leaves this connection out too.
        params = probe_params(alias, timeout=5, application_name="connection_pools.test_count")
        found[pool] = (int(params.get("port") or 5432), params)
    return found


class ServerCount:
    """Each worker's client connections as the PostgreSQL servers see them, per pool."""

    def __init__(self) -> None:
        self.servers = _servers()
        self.database = connections["default"].settings_dict["NAME"]
        self.conns = {pool: psycopg.connect(**params) for pool, (_, params) in self.servers.items()}

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def per_worker(self, pids: list[int]) -> dict[tuple[int, str], int]:
        counts: dict[tuple[int, str], int] = {}
        for pool, (port, _) in self.servers.items():
            rows = self.conns[pool].execute(
                "SELECT client_port FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND application_name NOT LIKE 'connection_pools.%%'", [self.database]).fetchall()
            seen = {row[0] for row in rows}
            for pid in pids:
                try:
                    mine = client_ports(pid, port)
                except FileNotFoundError:  # a worker that is being replaced
                    continue
                counts[(pid, pool)] = len(seen & mine)
        return counts


@contextmanager
def sampling(count: ServerCount, pids: list[int]) -> Iterator[list[dict[tuple[int, str], int]]]:
    """Sample every worker's server connections in the background until the block ends."""
    samples: list[dict[tuple[int, str], int]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append(count.per_worker(pids))
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(10)


def burst(server: AsgiServer, requests: int, clients: int, paths: tuple[str, ...] = PATHS) -> Counter[int]:
    """``requests`` GETs over ``paths`` from ``clients`` keep-alive clients; the statuses."""
    per_client = requests // clients

    def client(number: int) -> list[int]:
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for i in range(per_client):
                conn.request("GET", paths[(number + i) % len(paths)])
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
        finally:
            conn.close()
        return statuses

    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(client, range(clients)))
    server.requests_sent += per_client * clients
    return Counter(status for statuses in results for status in statuses)


def snapshots(server: AsgiServer, pids: list[int]) -> dict[int, ProcessSnapshot]:
    """The latest snapshot each worker published (under the server's own key prefix)."""
    with override_settings(CONNECTION_POOLS={**settings.CONNECTION_POOLS, "KEY_PREFIX": server.key_prefix}):
        store.forget_failure()
        published = store.read_snapshots().snapshots
    return {snap.pid: snap for snap in published if snap.pid in pids}


def pool_of(snapshot: ProcessSnapshot, name: str):  # -> PoolSnapshot
    (found,) = [pool for pool in snapshot.pools if pool.name == name]
    return found


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25,
               explain=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout} s {explain()}"
        time.sleep(interval)


def test_a_burst_under_uvicorn_workers_stays_within_max_size_settles_at_pool_size_and_leaks_nothing() -> None:
    count = ServerCount()
    try:
        with AsgiServer(workers=WORKERS, env=SERVER_ENV) as server:
            pids = sorted(server.worker_pids())
            assert len(pids) == WORKERS
            for path in PATHS + SHARED_THREAD:  # every pool of every worker built, and every worker publishing
                for _ in range(4 * WORKERS):
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                    conn.request("GET", path)
                    assert conn.getresponse().status == 200
                    conn.close()
            server.requests_sent += 4 * WORKERS * len(PATHS + SHARED_THREAD)

            seen: list[int] = []

            def all_published() -> dict[int, ProcessSnapshot] | None:
                found = snapshots(server, pids)
                served = sum(pool_of(s, p).hold.count for s in found.values() for p in POOLS)
                active = sum(pool_of(s, p).gauges.active for s in found.values() for p in POOLS)
                if len(found) != WORKERS or active or served > server.requests_sent + 1:
                    return None
                # The warm-up's last figures may still be on their way (the workers publish every
                # second): "before" is the count once two reads more than an interval apart agree.
                seen.append(served)
                return found if len(seen) >= 2 and seen[-1] == seen[-2] else None

            before = wait_until(all_published, 20, "both workers publish the warm-up", interval=1.5)

            with sampling(count, pids) as samples:
                statuses = burst(server, REQUESTS, CLIENTS)
            assert statuses == Counter({200: REQUESTS}), statuses

            # At every sample, no worker held more server connections per pool than its max_size.
            assert len(samples) >= 5
            worst = {key: max(sample.get(key, 0) for sample in samples) for key in samples[0]}
            assert all(value <= MAX_SIZE for value in worst.values()), worst
            assert max(worst.values()) > POOL_SIZE, f"the burst never needed overflow: {worst}"

            # They settle at pool_size (idle overflow closes after max_idle, 1 s here), and what the
            # server counts for each worker is what that worker's pools count: nothing leaked.
            last: dict[str, object] = {}

            def settled() -> dict[int, ProcessSnapshot] | None:
                server_side = count.per_worker(pids)
                last["server"] = server_side
                last["pools"] = {(pid, pool): (pool_of(snap, pool).gauges.open, pool_of(snap, pool).gauges.active)
                                 for pid, snap in snapshots(server, pids).items() for pool in POOLS}
                if any(server_side[(pid, pool)] != POOL_SIZE for pid in pids for pool in POOLS):
                    return None
                found = snapshots(server, pids)
                if len(found) != WORKERS:
                    return None
                for pid, snap in found.items():
                    for pool in POOLS:
                        gauges = pool_of(snap, pool).gauges
                        if gauges.open != server_side[(pid, pool)] or gauges.active != 0:
                            return None
                return found

            after = wait_until(settled, 30, "every worker's pools settle at pool_size with nothing out",
                               explain=lambda: f"last seen (size, active): {last}")

            # The statistics count the requests served: each one checked out exactly one connection,
            # and held and returned it (the workers publish every second: wait for the last figures).
            def total(found: dict[int, ProcessSnapshot], field: str) -> int:
                if field == "hold":
                    return sum(pool_of(s, p).hold.count for s in found.values() for p in POOLS)
                return sum(getattr(pool_of(s, p).counters, field) for s in found.values() for p in POOLS)

            def counted() -> dict[int, ProcessSnapshot] | None:
                found = snapshots(server, pids)
                if len(found) == WORKERS and total(found, "hold") - total(before, "hold") == REQUESTS:
                    return found
                return None

            def counts_so_far() -> str:
                now = snapshots(server, pids)
                return str({field: total(now, field) - total(before, field) for field in ("checkouts", "hold")})

            final = wait_until(counted, 15, "the statistics count every request", explain=counts_so_far)
            assert total(final, "checkouts") - total(before, "checkouts") == REQUESTS
            assert total(final, "timeouts") == 0 and total(after, "timeouts") == 0

            # Queries on a thread that is not the request's own: back in the pool too, nothing out.
            statuses = burst(server, 300, 30, SHARED_THREAD)
            assert statuses == Counter({200: 300}), statuses
            wait_until(settled, 30, "every worker's pools settle again after the shared-thread requests",
                       explain=lambda: f"last seen (size, active): {last}")
            assert sorted(server.worker_pids()) == pids  # no worker was replaced meanwhile
    finally:
        count.close()


PERSISTENT_ENV = {**SERVER_ENV, "DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "60"}


def test_persistent_connections_under_uvicorn_workers_are_refused_by_the_check() -> None:
    """Declared (CONNECTION_POOLS_ASGI=true, as make run ASGI=1): the master refuses before any worker boots."""
    returncode, log = AsgiServer(workers=WORKERS, env=PERSISTENT_ENV).run_until_exit()
    assert returncode == 4, log
    assert "connection_pools.E301" in log and "Django ticket 33497" in log
    assert "Traceback" not in log and "Booting worker" not in log


def test_an_asgi_server_is_detected_without_being_declared() -> None:
    """``gunicorn project.asgi:application -k ...`` with nothing declared: the worker's ASGI handler
    is seen as the application loads, and the worker refuses to serve."""
    server = AsgiServer(workers=1, env={**PERSISTENT_ENV, "CONNECTION_POOLS_ASGI": "false"},
                        extra_args=["--worker-class", "project.asgi_worker.AsgiWorker", "project.asgi:application"])
    returncode, log = server.run_until_exit()
    assert returncode == 4, log
    assert "ImproperlyConfigured: connection_pools.E301" in log and "App failed to load" in log


def test_persistent_connections_forced_under_asgi_show_the_leak_in_the_statistics() -> None:
    """E301 silenced, on Django's own ASGI handler: requests open connections on their own threads
    and leave them; the statistics say so (connections created by the dozen, never closed).
    (``project.asgi`` reuses request threads, so there a connection stays per idle thread.)"""
    requests = 40
    with AsgiServer(workers=1, env={**PERSISTENT_ENV, "ASGI_TEST_SILENCE_E301": "1"},
                    extra_args=["django.core.asgi:get_asgi_application()"]) as server:
        (pid,) = server.worker_pids()
        for _ in range(requests):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/one-query/")
            assert conn.getresponse().status == 200
            conn.close()
        served = requests + server.requests_sent + 1  # and the start-up probe

        def published() -> ProcessSnapshot | None:
            snap = snapshots(server, [pid]).get(pid)
            return snap if snap is not None and pool_of(snap, "db_default").counters.checkouts >= served else None

        snap = wait_until(published, 20, "the worker publishes its requests")
        default = pool_of(snap, "db_default")
        assert default.kind == "persistent"
        # A connection per request thread, never reused: asgiref may run a few requests on the same
        # thread, so not exactly one per request, but far more than the one a pool would keep.
        assert default.counters.connections_created >= served // 2
        assert default.counters.connections_closed == 0  # none given back by Django
    assert "persistent connections under ASGI" in server.log_path.read_text()


def test_the_dashboard_and_the_api_are_served_under_asgi(django_user_model) -> None:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    admin = django_user_model.objects.create_superuser("asgi-admin", "a@example.com", "x" * 20)
    token = Token.objects.create(user=admin)
    session = SessionStore()  # a logged-in staff session, as the admin login leaves it
    session.update({SESSION_KEY: str(admin.pk), HASH_SESSION_KEY: admin.get_session_auth_hash(),
                    BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend"})
    session.create()
    with AsgiServer(workers=1, env=SERVER_ENV) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

        def stats() -> dict[str, object] | None:
            conn.request("GET", "/api/v1/admin/connection-pools/stats",
                         headers={"Authorization": f"Token {token.key}"})
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200, body
            return body if "default" in body["database_pools"] else None  # once the worker published

        try:
            wait_until(stats, 15, "the stats API shows the worker's pools")
            conn.request("GET", "/admin/connection-pools/", headers={"Cookie": f"sessionid={session.session_key}"})
            response = conn.getresponse()
            page = response.read().decode()
            assert response.status == 200 and "db_default" in page, page[:500]
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            assert response.status == 200 and b"connection_pool_checkouts_total" in response.read()
        finally:
            conn.close()
