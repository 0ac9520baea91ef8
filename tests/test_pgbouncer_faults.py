"""The app through the real PgBouncer (``DATABASE_POOLER=pgbouncer``), under load, while PgBouncer restarts:
every request in the outage is a prompt 503 with Retry-After, and the app recovers by itself."""

from __future__ import annotations

import uuid

import pytest
from django.db import connections

from tests.support import pgbouncer as pgb
from tests.support import services
from tests.support.server import GunicornServer
from tests.support.traffic import Call, Traffic
from tests.test_e2e_faults import assert_writes_exact, failures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(databases=["default", "replica1"], transaction=True)]

#: Long on purpose: a request that waited it out would outlast the client's timeout and count as a failure.
POOL_TIMEOUT = 30.0
CLIENT_TIMEOUT = 10.0


def test_pgbouncer_restarted_under_load_gives_prompt_503s_then_recovers_without_restart():
    prefix = f"pgbf-{uuid.uuid4().hex[:8]}"
    name = connections["default"].settings_dict["NAME"]
    env = {"DATABASE_URL": pgb.database_url(name), "DATABASE_REPLICA_URLS": "", "DATABASE_POOLER": "pgbouncer",
           "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT)}
    calls = [Call("GET", "/one-query/"), Call("POST", "/items/")]
    try:
        with (GunicornServer(workers=2, threads=4, env=env) as server,
              Traffic(server.url, calls, clients=4, name_prefix=prefix, timeout=CLIENT_TIMEOUT) as traffic):
            workers = sorted(server.worker_pids())
            traffic.wait_for(10, ok_only=True)
            window = traffic.outage(lambda: services.stop("pgbouncer"), lambda: services.start("pgbouncer"))
            assert sorted(server.worker_pids()) == workers  # recovered without restarting the app
    finally:
        pgb.release_servers(name)  # or the test database cannot be dropped at the end of the run

    outage = traffic.select(since=window.stopped, until=window.restarting)
    assert outage
    # Every one answered (none outlasted the client's timeout, far below pool_timeout) with 503 + Retry-After.
    assert {o.status for o in outage} == {503}, traffic.summary()
    assert all(o.retry_after for o in outage)
    assert {o.status for o in traffic.select() if not o.ok} <= {503}, traffic.summary()
    assert not failures(traffic.select(since=window.settled)), traffic.summary()
    assert_writes_exact(traffic, prefix)
