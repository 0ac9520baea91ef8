"""Per-transaction release (``OPTIONS["pool"]["release"] = "transaction"``), against the real primary,
replica and PgBouncer: a connection goes back after each statement outside a transaction, and stays
exactly as long as atomic() blocks, savepoints, on_commit callbacks, manual transactions, server-side
cursors and select_for_update need it; failed queries, broken connections, failover, read-your-writes,
threads and ASGI requests all leave every connection back in its pool."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, NotSupportedError, OperationalError, connection, connections, router, transaction
from django.db.transaction import TransactionManagementError
from django.http import HttpRequest, JsonResponse
from django.test import override_settings
from django.urls import path

from connection_pools.conf import serving
from connection_pools.routing import replicas
from project.workload.models import Item
from tests.support.asgi import asgi_request
from tests.support.pg import admin_connect, counters_of, make_wrapper
from tests.support.replication import REPLICA, fresh_routing_state

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"),
              pytest.mark.usefixtures("quiet_background")]


@contextlib.contextmanager
def releasing(*aliases: str, mode: str = "transaction") -> Iterator[None]:
    """``aliases`` with ``OPTIONS["pool"]["release"] = mode``, on pools built for it (restored after)."""
    saved = {}
    for alias in aliases:
        wrapper = connections[alias]
        wrapper.close()
        wrapper.close_pool()
        options = wrapper.settings_dict["OPTIONS"]
        saved[alias] = options.get("pool")
        options["pool"] = {**(saved[alias] if isinstance(saved[alias], dict) else {}), "release": mode}
    try:
        yield
    finally:
        for alias in aliases:
            wrapper = connections[alias]
            wrapper.close()
            wrapper.close_pool()
            wrapper.settings_dict["OPTIONS"]["pool"] = saved[alias]


@pytest.fixture
def per_transaction() -> Iterator[None]:
    with fresh_routing_state(), releasing("default", REPLICA):
        yield


def out(alias: str = "default") -> int:
    """Connections of ``alias``'s pool checked out now."""
    pool = connections[alias].pool
    return len(pool.leases) if pool is not None else 0


def checkouts(alias: str = "default") -> int:
    return counters_of(connections[alias].pool)["checkouts"]


def select_one(alias: str = "default") -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def items(n: int) -> list[Item]:
    return [Item.objects.create(name=f"release-{uuid.uuid4().hex[:8]}", quantity=index) for index in range(n)]


# --- outside a transaction: back after every statement ---------------------------------------------------
@pytest.mark.usefixtures("per_transaction")
def test_a_statement_outside_a_transaction_gives_the_connection_back() -> None:
    select_one()
    before = checkouts()
    select_one()
    assert connection.connection is None and out() == 0
    Item.objects.using("default").count()  # the ORM closes its cursors: the same
    assert connection.connection is None and out() == 0
    assert checkouts() == before + 2  # one checkout per statement
    with connection.cursor() as cursor:  # a cursor used for two statements holds its connection for both
        cursor.execute("SELECT 1")
        assert out() == 1
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
    assert out() == 0
    assert connections["default"].get_autocommit() is True and connection.connection is None  # no checkout to answer
    ran: list[bool] = []
    transaction.on_commit(lambda: ran.append(True))  # outside atomic(): runs at once, and checks nothing out
    assert ran == [True] and connection.connection is None


def test_in_request_mode_the_connection_stays_until_the_request_ends() -> None:
    with releasing("default", mode="request"):
        select_one()
        assert connection.connection is not None and out() == 1
        connection.close()  # what request_finished does
        assert out() == 0


@pytest.mark.usefixtures("per_transaction")
def test_a_cursor_dropped_without_close_stops_holding_once_collected() -> None:
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert out() == 1
    del cursor  # garbage (CPython frees it now): the next settling point gives the connection back
    select_one()
    assert out() == 0 and connection.connection is None


# --- atomic(), savepoints, on_commit, durable ------------------------------------------------------------
@pytest.mark.usefixtures("per_transaction")
def test_atomic_holds_one_connection_through_savepoints_then_commit_hooks_run_before_it_goes_back() -> None:
    seen: list[tuple[str, int, int]] = []

    def hook(name: str, pk: int) -> None:
        with admin_connect() as other:  # committed: visible on another connection
            visible = other.execute("SELECT count(*) FROM workload_item WHERE id = %s", [pk]).fetchone()[0]
        Item.objects.using("default").filter(pk=pk).exists()  # a query in the hook: still on the held connection
        seen.append((name, visible, out()))

    before = checkouts()
    with transaction.atomic(durable=True):
        outer = Item.objects.create(name="outer")
        transaction.on_commit(lambda: hook("outer", outer.pk))
        with transaction.atomic():  # a savepoint
            inner = Item.objects.create(name="inner")
            transaction.on_commit(lambda: hook("inner", inner.pk))
        with contextlib.suppress(ZeroDivisionError), transaction.atomic():
            transaction.on_commit(lambda: hook("rolled back", 0))
            raise ZeroDivisionError
        with pytest.raises(RuntimeError, match="durable"), transaction.atomic(durable=True):
            pass
        assert out() == 1 and seen == []
    assert seen == [("outer", 1, 1), ("inner", 1, 1)]  # after the commit, on the connection not yet back
    assert out() == 0 and connection.connection is None
    assert checkouts() == before + 1  # the whole block, hooks included, on one checkout


@pytest.mark.usefixtures("per_transaction")
def test_a_rolled_back_block_gives_the_connection_back_and_keeps_nothing() -> None:
    with contextlib.suppress(ZeroDivisionError), transaction.atomic():
        Item.objects.create(name="never")
        raise ZeroDivisionError
    assert out() == 0 and not Item.objects.filter(name="never").exists()


@pytest.mark.usefixtures("per_transaction")
def test_manual_transactions_hold_the_connection_until_autocommit_is_back() -> None:
    transaction.set_autocommit(False)
    try:
        Item.objects.create(name="manual")
        assert out() == 1
        transaction.commit()
        assert out() == 1  # still in manual mode: the connection stays with its settings
        Item.objects.create(name="manual-2")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert out() == 0
    assert Item.objects.filter(name="manual").exists() and not Item.objects.filter(name="manual-2").exists()
    with connection.cursor() as cursor:  # a raw BEGIN opens a transaction on the server: held until COMMIT
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO workload_item (name, quantity, created_at) VALUES ('raw', 0, now())")
    assert out() == 1
    with connection.cursor() as cursor:
        cursor.execute("COMMIT")
    assert out() == 0 and Item.objects.filter(name="raw").exists()


@pytest.mark.usefixtures("per_transaction")
def test_select_for_update_keeps_its_lock_and_connection_until_the_block_ends() -> None:
    item = items(1)[0]
    with pytest.raises(TransactionManagementError):
        list(Item.objects.select_for_update().filter(pk=item.pk))  # Django's rule, unchanged
    with admin_connect() as other, transaction.atomic():
        Item.objects.select_for_update().get(pk=item.pk)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT id FROM workload_item WHERE id = %s FOR UPDATE NOWAIT", [item.pk])
        assert out() == 1
    with admin_connect() as other:
        other.execute("SELECT id FROM workload_item WHERE id = %s FOR UPDATE NOWAIT", [item.pk])
    assert out() == 0


# --- server-side cursors -----------------------------------------------------------------------------
@pytest.mark.usefixtures("per_transaction")
def test_an_iterator_holds_its_connection_until_exhausted_or_closed() -> None:
    made = items(5)
    ids = sorted(item.pk for item in made)
    rows = Item.objects.using("default").filter(pk__in=ids).order_by("pk").iterator(chunk_size=2)
    got = [next(rows).pk]
    assert out() == 1  # a named WITH HOLD cursor is open on it
    assert Item.objects.using("default").filter(pk__in=ids).count() == 5  # another statement meanwhile
    assert out() == 1  # ... which did not give the cursor's connection away
    got += [row.pk for row in rows]
    assert got == ids and out() == 0
    partial = Item.objects.using("default").filter(pk__in=ids).order_by("pk").iterator(chunk_size=2)
    next(partial)
    assert out() == 1
    partial.close()  # closing the generator closes the cursor
    assert out() == 0


# --- failures ----------------------------------------------------------------------------------------
@pytest.mark.usefixtures("per_transaction")
def test_a_failing_query_outside_atomic_gives_a_working_connection_back() -> None:
    with pytest.raises(DataError), connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    assert out() == 0
    with pytest.raises(DataError):
        Item.objects.using("default").extra(where=["1 / 0 = 1"]).count()
    assert out() == 0
    closed = counters_of(connection.pool)["connections_closed"]
    select_one()
    assert counters_of(connection.pool)["connections_closed"] == closed  # it was healthy: kept


@pytest.mark.usefixtures("per_transaction")
def test_a_connection_broken_outside_atomic_is_discarded_and_the_next_statement_gets_a_new_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        dead = cursor.fetchone()[0]
    closed = counters_of(connection.pool)["connections_closed"]
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert out() == 0 and connection.connection is None
    assert counters_of(connection.pool)["connections_closed"] == closed + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != dead


# --- session state -----------------------------------------------------------------------------------
@pytest.mark.usefixtures("per_transaction")
def test_session_state_is_refused_with_one_clear_error() -> None:
    for sql in ("SET statement_timeout = 1000", "SELECT pg_advisory_lock(1)", "LISTEN channel"):
        with pytest.raises(NotSupportedError, match=r"'default' gives its connection back to the pool after each "
                           r"transaction \(OPTIONS\['pool'\]\['release'\] = 'transaction'\)"), connection.cursor() as c:
            c.execute(sql)
    assert out() == 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1000")
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("1s",)
    with releasing("default", mode="request"), connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # request mode: as before


# --- routing: read-your-writes and failover ----------------------------------------------------------------
def _on_primary(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT NOT pg_is_in_recovery()")
        return bool(cursor.fetchone()[0])


def write_then_read(request: HttpRequest) -> JsonResponse:
    Item.objects.create(name=f"ryw-{uuid.uuid4().hex[:8]}")
    released = connections["default"].connection is None
    alias = router.db_for_read(Item)
    return JsonResponse({"released": released, "read_from": alias, "on_primary": _on_primary(alias)})


def read_view(request: HttpRequest) -> JsonResponse:
    alias = router.db_for_read(Item)
    return JsonResponse({"read_from": alias, "on_primary": _on_primary(alias)})


def wait_between_queries(request: HttpRequest) -> JsonResponse:
    select_one()
    during = out()
    time.sleep(0.05)
    select_one()
    return JsonResponse({"out_during_wait": during})


async def async_wait_between_queries(request: HttpRequest) -> JsonResponse:
    await sync_to_async(select_one)()
    during = out()
    await sync_to_async(select_one, thread_sensitive=False)()  # a thread that is not the request's
    return JsonResponse({"out_during_wait": during})


urlpatterns = [
    path("write-then-read/", write_then_read),
    path("read/", read_view),
    path("wait/", wait_between_queries),
    path("async-wait/", async_wait_between_queries),
]


@pytest.mark.usefixtures("per_transaction")
@override_settings(ROOT_URLCONF=__name__)
def test_read_your_writes_still_reads_from_the_primary_after_the_write_went_back(client) -> None:
    answer = client.get("/write-then-read/").json()
    assert answer == {"released": True, "read_from": "default", "on_primary": True}
    assert client.get("/read/").json() == {"read_from": "default", "on_primary": True}  # the pin cookie
    client.cookies.clear()
    assert client.get("/read/").json() == {"read_from": REPLICA, "on_primary": False}
    assert out() == 0 and out(REPLICA) == 0


@pytest.mark.usefixtures("per_transaction")
def test_a_connection_lent_by_the_primary_goes_back_to_the_primary_after_the_statement() -> None:
    select_one()
    select_one(REPLICA)
    primary_before, replica_before = checkouts(), checkouts(REPLICA)
    replicas.mark_failed(REPLICA, "test: down")
    assert _on_primary(REPLICA) is True  # the read is served, by the primary
    assert connections[REPLICA].connection is None and out() == 0 and out(REPLICA) == 0
    assert checkouts() == primary_before + 1 and checkouts(REPLICA) == replica_before
    assert replicas.reading(REPLICA).fallbacks >= 1


# --- threads and ASGI: the request end (and each statement) returns everything ----------------------------
@pytest.mark.usefixtures("per_transaction")
@override_settings(ROOT_URLCONF=__name__)
def test_a_wsgi_request_holds_no_connection_while_it_waits(client) -> None:
    assert client.get("/wait/").json() == {"out_during_wait": 0}
    assert out() == 0


@pytest.mark.usefixtures("per_transaction")
@override_settings(ROOT_URLCONF=__name__)
def test_an_asgi_request_holds_no_connection_between_statements_on_any_thread() -> None:
    try:
        response = asgi_request("/async-wait/")
    finally:
        serving._forget()  # building an ASGIHandler marks the process as serving ASGI
    assert response.status == 200, response.body
    assert response.body == b'{"out_during_wait": 0}'
    assert out() == 0


@pytest.mark.usefixtures("per_transaction")
def test_a_plain_thread_leaves_nothing_checked_out_without_close_all() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                select_one()
            Item.objects.using("default").count()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and out() == 0


# --- behind PgBouncer ----------------------------------------------------------------------------------
def test_through_pgbouncer_the_connection_goes_back_and_session_state_is_refused(settings: Any) -> None:
    from tests.support import pgbouncer as pgb

    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 1, "release": "transaction"}, port=pgb.port(),
                           prepare_threshold=None)
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "POOLERS": {wrapper.alias: "pgbouncer"}}
    try:
        for _ in range(3):
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
            assert wrapper.connection is None and len(wrapper.pool.leases) == 0
        with pytest.raises(NotSupportedError, match="PgBouncer in transaction mode"), wrapper.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1000")
        assert len(wrapper.pool.leases) == 0
    finally:
        wrapper.close()
        wrapper.close_pool()
        pgb.release_servers(wrapper.settings_dict["NAME"])  # the test database must be droppable at the end
