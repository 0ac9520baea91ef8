"""Helpers for the PostgreSQL pool tests: small dedicated pools and server-side counts."""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connections

from connection_pools.backends.postgresql.attribution import OWNED_SQL, owned_params
from connection_pools.backends.postgresql.base import DatabaseWrapper

_counter = itertools.count(1)


def admin_connect() -> psycopg.Connection:
    """A plain (unpooled) connection to the primary for looking at pg_stat_activity."""
    sd = connections["default"].settings_dict
    return psycopg.connect(host=sd["HOST"], port=sd["PORT"], user=sd["USER"], password=sd["PASSWORD"],
                           dbname=sd["NAME"], autocommit=True, application_name="pg-tests-admin")


def server_pids(app_name: str) -> list[int]:
    """Backend pids of the server connections a pool opened (filtered by its own application_name, which the
    engine's attribution follows with its token)."""
    with admin_connect() as conn:
        rows = conn.execute(
            f"SELECT pid FROM pg_stat_activity WHERE {OWNED_SQL} ORDER BY pid", owned_params(app_name)
        ).fetchall()
    return [row[0] for row in rows]


def terminate(pids: list[int]) -> None:
    """Kill backends and wait until the server has let them go."""
    with admin_connect() as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_for(lambda: not conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone()[0])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy (for background work, not for timing assertions)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def make_wrapper(pool: dict[str, Any] | None = None, *, alias: str | None = None, persistent: int = 0,
                 port: int | None = None, **options: Any) -> DatabaseWrapper:
    """A DatabaseWrapper of our engine on the test database under a fresh alias.

    ``pool`` is the alias's ``OPTIONS['pool']`` (None: no pool, persistent connections
    with ``CONN_MAX_AGE=persistent``). ``application_name`` equals the alias so the
    server-side count sees only this pool's connections.
    """
    alias = alias or f"pgt{os.getpid()}x{next(_counter)}"
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["OPTIONS"] = {**settings_dict.get("OPTIONS", {}), "application_name": alias, **options}
    settings_dict["OPTIONS"].pop("pool", None)
    if pool is not None:
        settings_dict["OPTIONS"]["pool"] = pool
    settings_dict["CONN_MAX_AGE"] = persistent
    settings_dict["TEST"] = {}
    if port is not None:
        settings_dict["PORT"] = port
    return DatabaseWrapper(settings_dict, alias)


def dispose(wrapper: DatabaseWrapper) -> None:
    """Close the wrapper's connection and pool (its counters go with it)."""
    try:
        wrapper.close()
    finally:
        wrapper.close_pool()


def snapshot_of(wrapper: DatabaseWrapper) -> Any:
    """The typed snapshot of a hand-built wrapper's pool, as its source reads it."""
    from connection_pools.conf.aliases import spec_of
    from connection_pools.sources.postgres import PostgresSource

    return PostgresSource(spec_of(wrapper.alias, wrapper.settings_dict)).snapshot()


def counters_of(pool: Any) -> dict[str, int]:
    """A pool's own counters as a dict (``checkouts``, ``connections_created``, ...)."""
    from dataclasses import asdict

    return asdict(pool.counters.read().counters)


def backend_pid(conn: psycopg.Connection) -> int:
    """The server pid behind a psycopg connection (a round trip)."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pooled():
    """Factory: ``wrapper, pool = pooled(options, port=None, wait=True)``: a dedicated alias with
    ``OPTIONS["pool"] = options`` (psycopg's names or the guide's), disposed after the test."""
    from connection_pools.backends.postgresql.pool import InstrumentedPool

    made = []

    def factory(options: Any, *, port: int | None = None, wait: bool = True) -> tuple[DatabaseWrapper, Any]:
        wrapper = make_wrapper(options, port=port)
        made.append(wrapper)
        pool = wrapper.pool
        assert isinstance(pool, InstrumentedPool)
        if wait:
            assert pool.wait_ready(10)
        return wrapper, pool

    yield factory
    for wrapper in made:
        dispose(wrapper)


@pytest.fixture
def proxy():
    """A TCP relay to the test server (:class:`tests.support.proxy.Proxy`): ``cut()`` drops every
    connection and refuses new ones, ``restore()`` lets them through again; pools built with
    ``port=proxy.port`` go through it."""
    from tests.support.proxy import Proxy

    settings_dict = connections["default"].settings_dict
    with Proxy(settings_dict["HOST"], settings_dict["PORT"]) as running:
        yield running


@contextlib.contextmanager
def reference_pool(ours: Any, **options: Any) -> Iterator[Any]:
    """psycopg's own ``ConnectionPool`` with ``ours``' connection keywords (the behaviour ours is
    held to), open (filled when ``min_size`` > 0), closed afterwards."""
    from psycopg_pool import ConnectionPool

    options = {"min_size": 1, "timeout": 5, **options}
    plain = ConnectionPool(kwargs=dict(ours.kwargs), open=False, **options)
    plain.open(wait=options["min_size"] > 0, timeout=10)
    try:
        yield plain
    finally:
        plain.close()


@pytest.fixture
def quiet_background():
    """Stop this process's background thread around a test that asserts exact counters.

    Its publisher resets the sources when it adopts a reset epoch, which would zero our
    counters mid-test; it starts again on the next request after the test.
    """
    from django.core.signals import request_started

    from connection_pools import lifecycle
    from connection_pools.core import jobs

    uid = "connection_pools.start_background"
    jobs.stop()
    request_started.disconnect(dispatch_uid=uid)  # our test requests must not restart it
    try:
        yield
    finally:
        request_started.connect(lifecycle.start_jobs, dispatch_uid=uid)
        jobs.stop()
