"""Request accounting, pinning, replay and connection return under Django's real ASGI handler.

In-process, on the real primary and replica: each request goes through ``ASGIHandler`` (what
uvicorn calls), so sync code runs on the request's own thread-sensitive thread and async views
in the event loop, as under a real ASGI server. (Django's ``AsyncClient`` is not used: it
closes connections its own way.)
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connection, connections, router
from django.http import HttpRequest, JsonResponse
from django.test import override_settings
from django.urls import path

from connection_pools.conf import serving
from connection_pools.middleware import RequestContextMiddleware
from project.workload.models import Item
from project.workload.urls import urlpatterns as workload_urls
from tests.support.asgi import asgi_request
from tests.support.pg import terminate

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"),
              pytest.mark.usefixtures("quiet_background", "_forget_asgi")]

calls: list[str] = []


@pytest.fixture
def _forget_asgi() -> Iterator[None]:
    """Building an ASGIHandler marks this process as serving ASGI: not for the tests after these."""
    calls.clear()
    yield
    serving._forget()


def _pg_sleep(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


async def held_async(request: HttpRequest) -> JsonResponse:
    await sync_to_async(_pg_sleep)(0.15)
    return JsonResponse({"ok": True})


def held_sync(request: HttpRequest) -> JsonResponse:
    _pg_sleep(0.15)
    return JsonResponse({"ok": True})


async def write_then_read(request: HttpRequest) -> JsonResponse:
    await Item.objects.acreate(name=f"asgi-{uuid.uuid4().hex[:8]}")
    return JsonResponse({"read_from": await sync_to_async(router.db_for_read)(Item)})


async def read_only_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"read_from": await sync_to_async(router.db_for_read)(Item)})


def _backend_pid_and_count() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        if len(calls) == 1:
            terminate([pid])  # cut this request's connection, on the first run only
        cursor.execute("SELECT count(*) FROM workload_item")
        return pid, cursor.fetchone()[0]


async def cut_once(request: HttpRequest) -> JsonResponse:
    calls.append("cut_once")
    _, count = await sync_to_async(_backend_pid_and_count)()
    return JsonResponse({"count": count, "runs": len(calls)})


urlpatterns = [
    path("held-async/", held_async),
    path("held-sync/", held_sync),
    path("write-then-read/", write_then_read),
    path("read-only/", read_only_view),
    path("cut-once/", cut_once),
    *workload_urls,
]


@pytest.fixture
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__):
        yield


@override_settings(MIDDLEWARE=["connection_pools.middleware.RequestContextMiddleware",
                             "django.middleware.security.SecurityMiddleware"])
def test_the_middleware_is_native_async_under_asgi() -> None:
    """No thread hop of its own: its __call__ and process_view are coroutines in an ASGI stack whose
    middleware below are async-capable (the project's are sync-only, so there it runs in their block)."""
    handler = ASGIHandler()
    # Django wraps a sync process_view of an async stack in sync_to_async; ours is used as it is.
    ours = [m for m in handler._view_middleware
            if getattr(m, "__func__", None) is RequestContextMiddleware._process_view_async]
    assert len(ours) == 1 and inspect.ismethod(ours[0])
    assert iscoroutinefunction(ours[0].__self__)
    assert serving.is_asgi()


@pytest.mark.usefixtures("urls")
@pytest.mark.parametrize("view", ["held-async", "held-sync"])
def test_wait_hold_and_long_hold_with_the_view_name(view: str, settings, caplog) -> None:
    settings.CONNECTION_POOLS = {"LONG_HOLD_SECONDS": 0.1}
    connection.ensure_connection()  # the pool is built before we count
    connection.close()
    pool = connection.pool
    before = pool.counters.read()
    with caplog.at_level(logging.WARNING, logger="connection_pools.postgres"):
        response = asgi_request(f"/{view}/")
    assert response.status == 200
    assert response.headers["server-timing"].startswith("db-pool-wait;dur=")
    after = pool.counters.read()
    assert after.counters.checkouts == before.counters.checkouts + 1
    assert after.hold.count == before.hold.count + 1 and after.hold.sum - before.hold.sum >= 0.15
    assert after.counters.long_holds == before.counters.long_holds + 1
    name = "held_async" if view == "held-async" else "held_sync"
    assert f"by GET /{view}/ (view tests.test_asgi_requests.{name})" in caplog.text
    assert after.active == before.active  # back in the pool once the request ended


@pytest.mark.usefixtures("urls")
def test_an_async_write_pins_the_request_and_the_client() -> None:
    wrote = asgi_request("/write-then-read/")
    assert wrote.status == 200, wrote.body
    assert json.loads(wrote.body)["read_from"] == "default"
    assert any(cookie.startswith("cp_pin=") for cookie in wrote.cookies)
    read = asgi_request("/read-only/")
    assert json.loads(read.body)["read_from"] != "default"
    assert not any(cookie.startswith("cp_pin=") for cookie in read.cookies)


@pytest.mark.usefixtures("urls")
def test_a_cut_safe_async_request_is_replayed() -> None:
    response = asgi_request("/cut-once/")
    assert response.status == 200, response.body
    assert json.loads(response.body)["runs"] == 2


@pytest.mark.usefixtures("urls")
def test_a_connection_checked_out_on_another_thread_goes_back_at_the_end_of_the_request() -> None:
    """``sync_to_async(thread_sensitive=False)`` runs the query on asgiref's shared executor, whose
    thread never sees request_finished: the middleware gives that connection back."""
    connection.ensure_connection()
    connection.close()
    pool = connection.pool
    out_before = len(pool.leases)
    checkouts_before = pool.counters.count("checkouts")
    for _ in range(3):
        response = asgi_request("/async/one-query-shared-thread/")
        assert response.status == 200
    assert pool.counters.count("checkouts") == checkouts_before + 3
    assert len(pool.leases) == out_before


@pytest.mark.usefixtures("urls")
def test_the_async_workload_views_answer() -> None:
    one = asgi_request("/async/one-query/")
    assert one.status == 200 and json.loads(one.body)["value"] == 1
    items = asgi_request("/async/items/?limit=2")
    assert items.status == 200 and json.loads(items.body)["db"] in connections.settings
    who = json.loads(asgi_request("/async/whoami/").body)
    assert who["in_recovery"] is (who["alias"] != "default")
    bad = asgi_request("/async/items/?limit=nope")
    assert bad.status == 400 and "limit" in json.loads(bad.body)["error"]
