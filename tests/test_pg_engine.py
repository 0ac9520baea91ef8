"""The engine: settings mapping and validation, the cursor-wrapper chain, warmpools."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection
from django.db.backends.postgresql.base import Cursor as DjangoCursor
from django.test import override_settings

from connection_pools.pools.postgres import resolve_config
from tests.support.pg import (
    dispose,
    make_wrapper,
    quiet_background,  # noqa: F401 - fixture
    server_pids,
)

pytestmark = pytest.mark.usefixtures("quiet_background")


def test_defaults_are_the_guides():
    config = resolve_config("x", {})
    assert config.as_dict() == {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30.0, "pool_recycle": 3600.0,
                                "pool_pre_ping": True, "pool_use_lifo": True, "max_idle": 600.0}
    assert config.max_size == 30


def test_alias_options_override_the_app_settings():
    with override_settings(CONNECTION_POOLS={"DATABASE_POOL": {"pool_size": 4}}):
        config = resolve_config("x", {"max_overflow": 0, "pool_use_lifo": False})
    assert (config.pool_size, config.max_overflow, config.pool_use_lifo) == (4, 0, False)


@pytest.mark.parametrize(("options", "message"), [
    ({"pool_size": 0}, r"\['pool_size'\] is 0: expected a whole number >= 1"),
    ({"max_overflow": -1}, "expected a whole number >= 0"),
    ({"pool_timeout": "soon"}, "expected a number of seconds > 0"),
    ({"pool_recycle": 0}, "expected a number of seconds > 0"),
    ({"pool_pre_ping": "yes"}, "expected True or False"),
    ({"min_size": 3}, "use the guide's 'pool_size'"),
    ({"poolsize": 3}, "unknown key 'poolsize'"),
    ([1, 2], "expected a dict"),
])
def test_bad_pool_options_are_clear_errors(options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        resolve_config("reports", options)


def test_pool_and_conn_max_age_exclude_each_other():
    wrapper = make_wrapper({}, persistent=60)
    try:
        with pytest.raises(ImproperlyConfigured, match="CONN_MAX_AGE"):
            wrapper.pool  # noqa: B018
    finally:
        wrapper.settings_dict["OPTIONS"].pop("pool")


@pytest.mark.django_db(transaction=True)
def test_cursor_wrapper_chain_does_not_grow_across_checkouts():
    # django-prometheus issue 445: wrapping per checkout grew the class chain without bound.
    classes = set()
    depths = set()
    for _ in range(50):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            classes.add(type(cursor.cursor))
            depths.add(len(type(cursor.cursor).__mro__))
        connection.close()
    assert len(classes) == 1 and len(depths) == 1
    (cls,) = classes
    assert cls.__qualname__ == "MeteredCursor[default]"
    assert cls.__mro__[1] is DjangoCursor  # exactly one layer over Django's cursor


@pytest.mark.django_db(transaction=True)
def test_django_prometheus_query_metrics_still_count():
    from django_prometheus.db import errors_total, execute_many_total, execute_total

    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0})  # an alias nobody else queries

    def value(metric, **labels):
        return metric.labels(alias=wrapper.alias, vendor="postgresql", **labels)._value.get()

    try:
        assert wrapper.pool.wait_ready(10)  # Django's per-connection set_config('TimeZone') counts too
        executed = value(execute_total)
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.executemany("SELECT %s", [(1,), (2,), (3,)])
            with pytest.raises(ProgrammingError):
                cursor.execute("SELEC 1")
        assert value(execute_total) == executed + 5  # the pre-ping is not counted as a query
        assert value(execute_many_total) == 3
        assert value(errors_total, type="SyntaxError") == 1
    finally:
        dispose(wrapper)


@pytest.mark.django_db(transaction=True)
def test_warmpools_opens_pool_size_connections_and_reports(capsys):
    from django.db import connections

    wrapper = make_wrapper({"pool_size": 3, "max_overflow": 0})
    # Make the dedicated alias visible to the command like a configured one.
    connections.settings[wrapper.alias] = wrapper.settings_dict
    connections[wrapper.alias] = wrapper
    try:
        call_command("warmpools", wrapper.alias)
        out = capsys.readouterr().out
        assert f"db_{wrapper.alias}: 3/3 connections open in" in out and "(ready)" in out
        assert len(server_pids(wrapper.alias)) == 3
        with pytest.raises(CommandError, match="not a pooled database alias: nope"):
            call_command("warmpools", "nope")
    finally:
        dispose(wrapper)
        del connections[wrapper.alias]
        del connections.settings[wrapper.alias]


@pytest.mark.django_db(transaction=True)
def test_ping_reports_latency_and_counts_a_checkout():
    from connection_pools import stats
    from connection_pools.pools.postgres import ping

    before = stats.registry.get("db_default").counter(stats.CHECKOUTS) if stats.registry.get("db_default") else 0
    assert ping("default") > 0
    assert stats.registry.get("db_default").counter(stats.CHECKOUTS) == before + 1
    with pytest.raises(ValueError, match="unknown database alias 'no-such-alias'"):
        ping("no-such-alias")


@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_while_held_is_replaced_before_the_next_cursor():
    from django.db import OperationalError

    from tests.support.pg import terminate

    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0, "pool_pre_ping": False})
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (killed,) = cursor.fetchone()
        terminate([killed])
        with pytest.raises(OperationalError), wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")  # the held connection is dead: this query fails
        with wrapper.cursor() as cursor:  # Django alone would fail here too, until a request boundary
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != killed
    finally:
        dispose(wrapper)
