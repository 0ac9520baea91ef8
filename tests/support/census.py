"""Helpers for the server-tier tests: an isolated cluster store, samples taken on cue, plain connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connections

from connection_pools.cluster import publish, reports
from connection_pools.cluster.store import store
from connection_pools.core.census import ServerCensus
from connection_pools.core.pooler import PgBouncerReport
from connection_pools.insight import health, server_tier
from connection_pools.sources.base import SampleContext, registry
from tests.support.admin_api import unique_prefix


@pytest.fixture
def tier(settings) -> Iterator[dict[str, Any]]:
    """The project's settings on an isolated KEY_PREFIX; ``tier["configure"](CENSUS={...}, LONG_HOLD_SECONDS=...)``
    overrides keys (a dict merges into its section). Everything the tier remembers is forgotten before and after."""
    base = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("tier")}

    def configure(**sections: Any) -> None:
        merged = dict(base)
        for name, values in sections.items():
            merged[name] = {**base.get(name, {}), **values} if isinstance(values, dict) else values
        settings.CONNECTION_POOLS = merged

    configure()
    _forget()
    yield {"configure": configure}
    try:
        store.clear()
    finally:
        _forget()
        for source in registry.report_sources():
            source.close()


def _forget() -> None:
    store.forget_failure()
    publish.forget()
    reports.forget()
    health.forget()
    server_tier.forget()
    for source in registry.report_sources():
        source.reset()


def census_source(name: str = "server_default") -> Any:
    return next(source for source in registry.report_sources() if source.name == name)


def sample_census(name: str = "server_default") -> ServerCensus:
    """One census of a server now, with the fleet as the cluster store knows it."""
    report = census_source(name).sample(server_tier.context())
    assert isinstance(report, ServerCensus)
    return report


def sample_pgbouncer(name: str = "pgbouncer_1") -> PgBouncerReport:
    source = next(source for source in registry.report_sources() if source.name == name)
    report = source.sample(SampleContext())
    assert isinstance(report, PgBouncerReport)
    return report


def plain_connect(application_name: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the test database outside every pool."""
    sd = connections["default"].settings_dict
    return psycopg.connect(host=sd["HOST"], port=sd["PORT"], user=sd["USER"], password=sd["PASSWORD"],
                           dbname=sd["NAME"], autocommit=True, application_name=application_name, **kwargs)


@contextmanager
def running(sql: str, application_name: str) -> Iterator[int]:
    """``sql`` running on its own connection in a thread; yields that backend's pid, cancels it at the end."""
    conn = plain_connect(application_name)
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            conn.execute(sql)
        except psycopg.errors.QueryCanceled:
            pass
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield pid
    finally:
        with plain_connect("census-tests-cancel") as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", [pid])
        thread.join(timeout=30)
        conn.close()
    assert not failures, failures
