"""Shared fixtures. The suite runs against the real PostgreSQL primary + replica and
the real Redis that scripts/devservices starts (``make test`` does it)."""

from __future__ import annotations

import pytest

from tests.support.census import tier  # noqa: F401 - the server-tier tests' settings fixture
from tests.support.pg import pooled, proxy, quiet_background  # noqa: F401 - the pool tests' fixtures


@pytest.fixture
def gunicorn_server():
    """Factory: ``with gunicorn_server(workers=3) as server: ...`` (real processes)."""
    from tests.support.server import GunicornServer

    return GunicornServer


def pytest_sessionstart(session):
    """PgBouncer keeps server connections to the test database after a run that was cut short,
    and PostgreSQL cannot recreate a database it still has sessions on: let them go first."""
    import os

    if not os.environ.get("PGBOUNCER_CONTROL_URL"):
        return
    import psycopg
    from django.db import connections

    from connection_pools.pgbouncer_admin import PgBouncerAdminError
    from tests.support import pgbouncer

    try:
        pgbouncer.release_servers(connections["default"].creation._get_test_db_name(), timeout=10)
    except (PgBouncerAdminError, psycopg.Error):
        pass  # PgBouncer is not running: nothing holds the test database


@pytest.fixture(scope="session", autouse=True)
def _no_background_server_tier():
    """This test process does not sample the server tier in its background thread (it would write census
    and PgBouncer reports into whichever KEY_PREFIX a test set): tests take their samples explicitly
    (``server_tier.job()``); real server processes (gunicorn tests) run the job as in production."""
    from connection_pools.core import jobs

    jobs.unregister("connection_pools.server_tier")
    yield
