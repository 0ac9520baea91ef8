"""PoolStatsMiddleware: 503 + Retry-After on pool timeout and on an unreachable database."""

from __future__ import annotations

import json

import pytest
from django.db import connection, connections
from django.http import JsonResponse
from django.test import Client, override_settings
from django.urls import path

from tests.support.pg import (
    dispose,
    make_wrapper,
)
from tests.support.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]

_down = {}


def one_query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def down_query(request):
    with _down["wrapper"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def slow_query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.15)")
    return JsonResponse({"ok": True})


urlpatterns = [
    path("held/", slow_query),
    path("api/thing/", one_query),
    path("page/", one_query),
    path("api/down/", down_query),
    path("down/", down_query),
]

SMALL = {"DATABASE_POOL": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.3}, "RETRY_AFTER_SECONDS": 7}


@pytest.fixture
def tiny_default_pool():
    """The default alias rebuilt with one connection; restored afterwards."""
    with override_settings(CONNECTION_POOLS=SMALL, ROOT_URLCONF=__name__):
        connections["default"].close()
        connections["default"].close_pool()
        pool = connections["default"].pool
        assert pool.wait_ready(10)
        yield pool
        connections["default"].close()
        connections["default"].close_pool()


@pytest.mark.parametrize("url", ["/page/", "/api/thing/"])
def test_pool_timeout_becomes_503_with_retry_after(tiny_default_pool, url, caplog):
    pool = tiny_default_pool
    before = pool.counters.count("timeouts")
    held = pool.getconn()  # the only connection
    try:
        response = Client().get(url)
    finally:
        pool.putconn(held)
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert pool.counters.count("timeouts") == before + 1
    if url.startswith("/api/"):
        body = json.loads(response.content)
        assert body["error"] == "pool_timeout" and body["retry_after"] == 7
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"Traceback" not in response.content and b"retry in 7 seconds" in response.content
    assert "503 for GET" in caplog.text and "tests.test_pg_middleware.one_query" in caplog.text
    # And once a connection is free again the same page works, with its wait reported.
    ok = Client().get(url)
    assert ok.status_code == 200
    assert ok["Server-Timing"].startswith("db-pool-wait;dur=")


@pytest.mark.parametrize("pooled", [True, False])
@pytest.mark.parametrize("url", ["/down/", "/api/down/"])
def test_unreachable_database_becomes_503(pooled, url):
    _down["wrapper"] = make_wrapper({"pool_timeout": 30} if pooled else None, port=free_port())
    try:
        with override_settings(ROOT_URLCONF=__name__):
            response = Client().get(url)
    finally:
        dispose(_down.pop("wrapper"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    if url.startswith("/api/"):
        assert json.loads(response.content)["error"] == "database_unavailable"


def test_other_errors_are_left_alone():
    def boom(request):
        raise ValueError("not a database problem")

    from connection_pools.middleware import PoolStatsMiddleware

    middleware = PoolStatsMiddleware(boom)
    assert middleware.process_exception(None, ValueError("x")) is None


def test_long_hold_names_the_request_path_and_view(settings, caplog):
    settings.CONNECTION_POOLS = {"LONG_HOLD_SECONDS": 0.1}
    with override_settings(ROOT_URLCONF=__name__):
        connection.close()
        connection.ensure_connection()  # make sure the pool is built before counting
        connection.close()
        pool = connection.pool
        before = pool.counters.count("long_holds")
        with caplog.at_level("WARNING", logger="connection_pools.postgres"):
            response = Client().get("/held/?x=1")
            connection.close()  # what request_finished does outside the test client
    assert response.status_code == 200
    assert pool.counters.count("long_holds") == before + 1
    assert "by GET /held/ (view tests.test_pg_middleware.slow_query)" in caplog.text


def test_query_cut_by_a_killed_backend_is_a_lost_connection_but_query_errors_are_not():
    import psycopg

    from connection_pools.middleware import classify_failure
    from tests.support.pg import terminate

    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0, "pool_pre_ping": False})
    try:
        conn = wrapper.pool.getconn()
        terminate([conn.execute("SELECT pg_backend_pid()").fetchone()[0]])
        with pytest.raises(psycopg.OperationalError) as cut:
            conn.execute("SELECT 1")
        wrapper.pool.putconn(conn)
        assert classify_failure(cut.value) == "lost"
        conn = wrapper.pool.getconn()
        with pytest.raises(psycopg.errors.SyntaxError) as wrong:
            conn.execute("SELEC 1")
        with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
            conn.execute("SET statement_timeout = 1; SELECT pg_sleep(1)")
        wrapper.pool.putconn(conn)
        assert classify_failure(wrong.value) is None
        assert classify_failure(cancelled.value) is None
    finally:
        dispose(wrapper)
