"""Through the real PgBouncer in transaction mode: what works (prepared statements off, no
server-side cursors) and, as the control, what breaks without those settings.

Each test makes the next transaction of a client land on another server connection:
PgBouncer hands out the most recently released server (``server_round_robin = 0``), so a
second client that opens a transaction right after the first one's takes that server.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import DatabaseError, connections, transaction

from connection_pools.pgbouncer_admin import is_pgbouncer
from project.workload.models import Item
from tests.support import pgbouncer as pgb
from tests.support.pg import dispose, make_wrapper


@pytest.fixture
def fresh_servers():
    """No server connection of the ``postgres`` database left from earlier clients (with their
    prepared statements), before and after the test."""
    assert pgb.release_servers("postgres")
    yield "postgres"
    assert pgb.release_servers("postgres")


@pytest.mark.parametrize(("prepare_threshold", "breaks"), [(None, False), (5, True)])
def test_repeated_queries_need_prepare_threshold_none(prepare_threshold, breaks, fresh_servers):
    name = f"pgb-prep-{uuid.uuid4().hex[:8]}"
    client = pgb.connect(fresh_servers, name, prepare_threshold=prepare_threshold)
    other = pgb.connect(fresh_servers, name + "-other")
    query = "SELECT %s::int, pg_backend_pid()"
    try:
        pids = {client.execute(query, [i]).fetchone()[1] for i in range(6)}  # psycopg prepares the 6th (5 + 1)
        assert len(pids) == 1
        with other.transaction():
            (taken,) = other.execute("SELECT pg_backend_pid()").fetchone()
            assert taken in pids  # the server the client used last is now the other client's
            if breaks:
                with pytest.raises(psycopg.errors.InvalidSqlStatementName, match="does not exist"):
                    client.execute(query, [7])
            else:
                value, pid = client.execute(query, [7]).fetchone()
                assert value == 7 and pid not in pids  # really another server connection
    finally:
        client.close()
        other.close()


@pytest.fixture
def through_pgbouncer(request, transactional_db):
    """Our engine on the test database through PgBouncer, with ``DISABLE_SERVER_SIDE_CURSORS``
    as the test's parameter, reachable as ``connections[alias]`` (not in ``DATABASES``: Django's
    test case lets such a dynamically created connection connect)."""
    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0}, port=pgb.port(), prepare_threshold=None)
    wrapper.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = request.param
    connections[wrapper.alias] = wrapper
    try:
        yield wrapper
    finally:
        dispose(wrapper)
        del connections[wrapper.alias]
        assert pgb.release_servers(wrapper.settings_dict["NAME"])  # or the test database cannot be dropped


def _backend_pid(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("through_pgbouncer", [True], indirect=True)
def test_the_orm_through_pgbouncer_with_client_side_cursors(through_pgbouncer):
    alias = through_pgbouncer.alias
    with transaction.atomic(using=alias):
        Item.objects.using(alias).bulk_create([Item(name=f"pgb-{i}", quantity=i) for i in range(3)])
        Item.objects.using(alias).filter(name="pgb-0").update(quantity=10)
    through_pgbouncer.ensure_connection()
    assert is_pgbouncer(through_pgbouncer.connection)
    assert through_pgbouncer.connection.prepare_threshold is None  # the engine passed the option on

    other = pgb.connect(through_pgbouncer.settings_dict["NAME"], "pgb-orm-other")
    try:
        first_pid = _backend_pid(alias)
        rows = Item.objects.using(alias).order_by("quantity").values_list("quantity", flat=True).iterator(
            chunk_size=1)
        first = next(rows)
        with other.transaction():
            assert other.execute("SELECT pg_backend_pid()").fetchone()[0] == first_pid
            assert _backend_pid(alias) != first_pid  # the rest runs on another server connection
            assert [first, *rows] == [1, 2, 10]
    finally:
        other.close()
    assert Item.objects.using(alias).filter(quantity__gte=2).count() == 2


@pytest.mark.parametrize("through_pgbouncer", [False], indirect=True)
def test_server_side_cursors_break_across_transactions(through_pgbouncer):
    # The control: Django's default for .iterator() in autocommit, a WITH HOLD cursor from
    # chunked_cursor(), is declared on one server connection and fetched from on another.
    alias = through_pgbouncer.alias
    Item.objects.using(alias).bulk_create([Item(name=f"pgb-{i}", quantity=i) for i in range(3)])
    other = pgb.connect(through_pgbouncer.settings_dict["NAME"], "pgb-orm-other")
    cursor = connections[alias].chunked_cursor()
    try:
        cursor.execute(f"SELECT quantity FROM {Item._meta.db_table} ORDER BY quantity")
        assert cursor.fetchmany(1) == [(0,)]
        with other.transaction():
            other.execute("SELECT 1")
            with pytest.raises(DatabaseError, match="does not exist"):
                cursor.fetchmany(1)
    finally:
        cursor.close()  # runs on the server that has the cursor again, now the other client let it go
        other.close()
