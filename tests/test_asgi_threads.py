"""``connection_pools.asgi.ReusedThreadASGIHandler``: one thread per request, reused by later requests.

In-process, through the handler as uvicorn calls it (``tests.support.asgi``), on the real primary.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.test import override_settings
from django.urls import path
from django.utils.module_loading import import_string

from connection_pools import asgi
from connection_pools.conf import serving
from project.workload.urls import urlpatterns as workload_urls
from tests.support.asgi import _call
from tests.support.pg import quiet_background  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"),
              pytest.mark.usefixtures("quiet_background", "_forget_asgi", "urls")]

pytest.importorskip("asgiref.sync")
if not asgi.SUPPORTED:  # pragma: no cover - requirements.txt pins an asgiref that has it
    pytest.skip("asgiref without ThreadSensitiveContext(executor=...)", allow_module_level=True)

_barrier: list[threading.Barrier] = []


def where(request: HttpRequest) -> JsonResponse:
    """The request's thread and database wrapper, after one query on the primary."""
    if _barrier:
        _barrier[0].wait(timeout=10)  # every concurrent request is in its view at once
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"thread": threading.get_ident(), "wrapper": id(connection),
                         "name": threading.current_thread().name})


urlpatterns = [path("where/", where), *workload_urls]


@pytest.fixture
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__):
        yield


@pytest.fixture
def _forget_asgi() -> Iterator[None]:
    """Building an ASGI handler marks this process as serving ASGI: not for the tests after these."""
    _barrier.clear()
    yield
    _barrier.clear()
    serving._forget()


def _serve(handler: ASGIHandler, url: str) -> dict[str, object]:
    """One request from an event loop with no sync thread above it, as uvicorn calls the handler."""
    response = asyncio.run(_call(handler, "GET", url, b""))
    assert response.status == 200, response.body
    return json.loads(response.body)  # type: ignore[no-any-return]


def _pool():  # type: ignore[no-untyped-def]
    connection.ensure_connection()  # the pool is built before we count
    connection.close()
    return connection.pool


def test_sequential_requests_reuse_one_thread_and_its_wrapper_and_give_every_connection_back() -> None:
    handler = asgi.ReusedThreadASGIHandler()
    pool = _pool()
    out_before, checkouts_before = len(pool.leases), pool.counters.count("checkouts")
    seen = [_serve(handler, "/where/") for _ in range(5)]
    assert len({s["thread"] for s in seen}) == 1 and len({s["wrapper"] for s in seen}) == 1
    assert seen[0]["name"].startswith("asgi-request")
    assert len(handler._idle) == 1
    assert pool.counters.count("checkouts") == checkouts_before + 5
    assert len(pool.leases) == out_before  # each request's connection went back at its end
    assert serving.is_asgi()  # the request middleware still sees an ASGI handler


def test_djangos_own_handler_starts_a_thread_per_request() -> None:
    """The baseline the handler improves on (asgiref's per-request executor)."""
    handler = ASGIHandler()
    seen = [_serve(handler, "/where/") for _ in range(3)]
    assert len({s["name"] for s in seen}) == 3


def test_concurrent_requests_each_get_a_thread_of_their_own_which_later_requests_reuse() -> None:
    handler = asgi.ReusedThreadASGIHandler()
    pool = _pool()
    out_before = len(pool.leases)
    _barrier.append(threading.Barrier(3))

    async def three() -> list[dict[str, object]]:
        responses = await asyncio.gather(*(_call(handler, "GET", "/where/", b"") for _ in range(3)))
        return [json.loads(r.body) for r in responses]

    first = asyncio.run(three())
    assert len({r["thread"] for r in first}) == 3  # never two requests on one thread at once
    assert len(handler._idle) == 3
    second = asyncio.run(three())
    assert {r["thread"] for r in second} == {r["thread"] for r in first}
    assert len(pool.leases) == out_before


def test_a_thread_with_work_left_is_not_reused_and_idle_threads_are_bounded() -> None:
    handler = asgi.ReusedThreadASGIHandler()
    busy = asgi.RequestThread()
    release = threading.Event()
    future = busy.submit(release.wait, 10)
    handler._give_back(busy)
    assert handler._idle == []
    release.set()
    assert future.result(timeout=10) is True
    assert busy.pending == 0

    handler.max_idle_threads = 2
    threads = [asgi.RequestThread() for _ in range(3)]
    for thread in threads:
        handler._give_back(thread)
    assert handler._idle == threads[:2]
    with pytest.raises(RuntimeError):  # the third was shut down
        threads[2].submit(print)


def test_a_forked_child_does_not_reuse_its_parents_threads() -> None:
    handler = asgi.ReusedThreadASGIHandler()
    idle = asgi.RequestThread()
    handler._give_back(idle)
    handler._pid = -1  # as if this process were a fork of the one that made the thread
    assert handler._take() is not idle
    assert handler._idle == []


def test_non_http_scopes_are_refused_as_django_does() -> None:
    handler = asgi.ReusedThreadASGIHandler()
    with pytest.raises(ValueError, match="only handle ASGI/HTTP"):
        asyncio.run(handler({"type": "websocket"}, None, None))


def _hops_per_request(handler: ASGIHandler, url: str) -> int:
    from asgiref.sync import SyncToAsync

    calls = [0]
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return await original(self, *args, **kwargs)

    _serve(handler, url)  # warm: the pool is built, the URLconf loaded
    SyncToAsync.__call__ = counting  # type: ignore[method-assign]
    try:
        _serve(handler, url)
    finally:
        SyncToAsync.__call__ = original  # type: ignore[method-assign]
    return calls[0]


def test_the_projects_middleware_costs_one_thread_hop_not_one_per_hook() -> None:
    """project/middleware.py: Django's and django-prometheus' middleware are sync-only, so Django runs
    them as one block on the request's thread. Measured: 7 sync_to_async hops for /one-query/ (request
    started, the block, the two sync process_view hooks, the view, the response's close...), against
    21 with their async-capable originals (one per hook). The originals' chain is checked to answer too."""
    from django.conf import settings

    handler = asgi.ReusedThreadASGIHandler()
    assert serving.is_asgi()  # the handler says so (the request middleware runs in the sync block)
    assert _hops_per_request(handler, "/one-query/") <= 8
    hooks = [m for m in settings.MIDDLEWARE if m.startswith("project.middleware.")]
    bases = [import_string(m).__mro__[1] for m in hooks]  # Django's and django-prometheus' classes
    originals = [f"{base.__module__}.{base.__name__}" for base in bases]
    with override_settings(MIDDLEWARE=[originals[0], "connection_pools.middleware.RequestContextMiddleware",
                                        *originals[1:]]):
        assert _hops_per_request(asgi.ReusedThreadASGIHandler(), "/one-query/") >= 15
