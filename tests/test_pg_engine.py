"""The engine: settings mapping and validation, the cursor-wrapper chain, warmpools."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection
from django.db.backends.postgresql.base import Cursor as DjangoCursor

from tests.support.pg import (
    dispose,
    make_wrapper,
    server_pids,
)

pytestmark = pytest.mark.usefixtures("quiet_background")


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
    from connection_pools.backends.postgresql.metered import MeteredCursorWrapper

    wrappers, cursors = set(), set()
    for _ in range(50):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            wrappers.add(type(cursor))
            cursors.add(type(cursor.cursor))
        connection.close()
    assert wrappers == {MeteredCursorWrapper}  # one fixed class around every cursor
    assert cursors == {DjangoCursor}  # and psycopg's cursor exactly as Django configures it


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pooled", [True, False])
def test_cursor_factory_and_server_side_binding_are_honoured(pooled):
    from django.db.backends.postgresql.base import ServerBindingCursor

    class MyCursor(DjangoCursor):
        pass

    for options, expected in (({"cursor_factory": MyCursor}, MyCursor), ({"server_side_binding": True},
                                                                           ServerBindingCursor)):
        wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0} if pooled else None, **options)
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT %s", [1])
                assert type(cursor.cursor) is expected
            assert wrapper.connection.cursor_factory is expected
        finally:
            dispose(wrapper)


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
    from connection_pools.backends.postgresql.live import get_pool, ping

    pool = get_pool("default")
    before = pool.counters.count("checkouts")
    assert ping("default") > 0
    assert pool.counters.count("checkouts") == before + 1
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
