"""Replay of cut safe requests (ReplicaPinningMiddleware) in-process, on the real primary.

A view's own backend is terminated (``pg_terminate_backend``) between two of its
queries: a GET that has not written is answered by running the view once more on a
fresh connection; a request that wrote (routed or raw SQL), an unsafe one, a view
marked ``no_replay`` and a second cut get 503 with ``Retry-After`` -- and no write is
applied twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.template import engines
from django.template.response import SimpleTemplateResponse
from django.test import Client, override_settings
from django.urls import path

from connection_pools import routing
from connection_pools.middleware.pinning import no_replay
from connection_pools.routing.statements import is_read_statement
from project.workload.models import Item
from tests.support.pg import dispose, make_wrapper, terminate
from tests.support.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)

#: How many times each view ran in the current test.
calls: list[str] = []


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _cut_first_time() -> None:
    """Terminate this request's backend, on the view's first run only."""
    if len(calls) == 1:
        terminate([_backend_pid()])


def _count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM workload_item")
        return cursor.fetchone()[0]


def read(request: HttpRequest) -> JsonResponse:
    calls.append("read")
    _cut_first_time()
    return JsonResponse({"count": _count(), "runs": len(calls)})


def raw_write(request: HttpRequest) -> JsonResponse:
    calls.append("raw_write")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO workload_item (name, quantity, created_at) VALUES (%s, 0, now())",
                       [request.GET["name"]])
    _cut_first_time()
    return JsonResponse({"count": _count()})


def orm_write(request: HttpRequest) -> JsonResponse:
    calls.append("orm_write")
    Item.objects.create(name=request.GET["name"])
    _cut_first_time()
    return JsonResponse({"count": _count()})


@no_replay
def opted_out(request: HttpRequest) -> JsonResponse:
    calls.append("opted_out")
    _cut_first_time()
    return JsonResponse({"count": _count()})


def always_cut(request: HttpRequest) -> JsonResponse:
    calls.append("always_cut")
    terminate([_backend_pid()])
    return JsonResponse({"count": _count()})


def lazy_page(request: HttpRequest) -> SimpleTemplateResponse:
    """The query runs while the response renders, after the view returned."""
    calls.append("lazy_page")
    _cut_first_time()
    template = engines["django"].from_string("{{ items|length }} items")
    return SimpleTemplateResponse(template, {"items": Item.objects.using("default").all()})


def raw_update_then_state(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("/* a comment */ UPDATE workload_item SET quantity = quantity WHERE false")
    state = routing.current_state()
    return JsonResponse({"wrote": state is not None and state.wrote})


#: Aliases outside DATABASES that a view uses: one on a port nobody listens on, one with a full pool.
side_wrappers: dict[str, object] = {}


def refused_then_fine(request: HttpRequest) -> JsonResponse:
    """The first run cannot open a connection (as when a kill storm cuts one being opened)."""
    calls.append("refused_then_fine")
    if len(calls) == 1:
        with side_wrappers["refused"].cursor() as cursor:
            cursor.execute("SELECT 1")
    return JsonResponse({"count": _count()})


def pool_full(request: HttpRequest) -> JsonResponse:
    calls.append("pool_full")
    with side_wrappers["full"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({})


urlpatterns = [
    path("refused-then-fine/", refused_then_fine),
    path("pool-full/", pool_full),
    path("read/", read),
    path("raw-write/", raw_write),
    path("orm-write/", orm_write),
    path("opted-out/", opted_out),
    path("always-cut/", always_cut),
    path("lazy-page/", lazy_page),
    path("raw-update/", raw_update_then_state),
]


@pytest.fixture(autouse=True)
def urls() -> Iterator[None]:
    calls.clear()
    with override_settings(ROOT_URLCONF=__name__):
        yield
    connection.close()  # the test process's connection may be one the test killed


def rows(name: str) -> int:
    return Item.objects.using("default").filter(name=name).count()


def test_a_get_cut_between_its_queries_is_replayed_on_a_fresh_connection() -> None:
    response = Client().get("/read/")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["runs"] == 2
    assert calls == ["read", "read"]


def test_head_and_options_are_replayed_too() -> None:
    for method in ("head", "options"):
        calls.clear()
        response = getattr(Client(), method)("/read/")
        assert response.status_code == 200, (method, response.status_code)
        assert calls == ["read", "read"], method


def test_a_response_whose_rendering_was_cut_is_replayed_and_rendered() -> None:
    response = Client().get("/lazy-page/")
    assert response.status_code == 200
    assert response.content.endswith(b" items")
    assert calls == ["lazy_page", "lazy_page"]


@pytest.mark.parametrize("view", ["raw-write", "orm-write"])
def test_a_get_that_wrote_before_the_cut_is_not_replayed_and_its_write_is_applied_once(view: str) -> None:
    name = f"replay-{uuid.uuid4().hex[:8]}"
    response = Client().get(f"/{view}/?name={name}")
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"]
    assert len(calls) == 1
    assert rows(name) == 1  # committed before the cut (autocommit), and not written a second time


def test_an_unsafe_request_is_never_replayed() -> None:
    response = Client().post("/read/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert calls == ["read"]


def test_a_view_marked_no_replay_is_not_replayed() -> None:
    response = Client().get("/opted-out/")
    assert response.status_code == 503
    assert calls == ["opted_out"]


def test_a_second_cut_is_a_503_not_a_500() -> None:
    response = Client().get("/always-cut/")
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"]
    assert calls == ["always_cut", "always_cut"]  # replayed once, not more


def test_raw_sql_that_may_write_counts_as_a_write_and_pins_the_client() -> None:
    response = Client().get("/raw-update/")
    assert response.json() == {"wrote": True}
    assert "cp_pin" in response.cookies  # read-your-writes for raw writes too


def test_a_user_execute_wrapper_is_removed_as_usual_and_ours_stays() -> None:
    from connection_pools.routing.statements import observe_statement

    seen: list[str] = []

    def mine(execute: Callable, sql: str, params: object, many: bool, context: object) -> object:
        seen.append(sql)
        return execute(sql, params, many, context)

    connection.close()  # the next query opens a connection: our wrapper joins inside the block
    with connection.execute_wrapper(mine):
        _count()
    assert seen and mine not in connection.execute_wrappers
    assert observe_statement in connection.execute_wrappers


@pytest.mark.parametrize(("sql", "read"), [
    ("SELECT 1", True),
    ("  select * from t", True),
    ("(SELECT 1) UNION (SELECT 2)", True),
    ("-- why\nSELECT 1", True),
    ("/* multi\nline */ SHOW max_connections", True),
    ('SAVEPOINT "s1"', True),
    ('RELEASE SAVEPOINT "s1"', True),
    ("SET LOCAL statement_timeout = 1", True),
    ("DECLARE c CURSOR FOR SELECT 1", True),
    ("INSERT INTO t VALUES (1)", False),
    ("update t set x = 1", False),
    ("DELETE FROM t", False),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
    ("EXPLAIN ANALYZE DELETE FROM t", False),
    ("CALL p()", False),
    ("COPY t FROM STDIN", False),
    ("", False),
    (b"SELECT 1", True),
    (object(), False),
])
def test_statements_are_reads_only_by_a_read_keyword(sql: object, read: bool) -> None:
    assert is_read_statement(sql) is read


def test_a_connection_that_could_not_be_opened_is_replayed() -> None:
    side_wrappers["refused"] = make_wrapper(port=free_port())
    try:
        response = Client().get("/refused-then-fine/")
    finally:
        dispose(side_wrappers.pop("refused"))
    assert response.status_code == 200, response.content[:300]
    assert calls == ["refused_then_fine", "refused_then_fine"]


def test_a_full_pool_is_not_replayed() -> None:
    """The replay would wait pool_timeout again: 503 at once."""
    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2})
    side_wrappers["full"] = wrapper
    held = wrapper.pool.getconn()
    try:
        response = Client().get("/pool-full/")
    finally:
        wrapper.pool.putconn(held)
        dispose(side_wrappers.pop("full"))
    assert response.status_code == 503
    assert calls == ["pool_full"]
