"""Example workload views: JSON list/detail/create of items, a one-query view,
a cached view, a slow view that holds its connection, and a slow write -- and async
twins of the read views (``/async/...``), which run in the event loop under ASGI: their
ORM work goes through ``sync_to_async`` (or the async ORM, which uses it), and reads use
the guide's ``async with get_session(read_only=True)``.

They are plain Django views (no auth) so load tools and fault tests can drive them.
Every input is checked (:mod:`project.workload.inputs`): bad input is a 400 with a
sentence. Every view that answers GET answers HEAD too.
"""

from __future__ import annotations

import os
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections, router, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from connection_pools import get_session

from .inputs import HeldWrite, InvalidInput, NewItem, limit_from_query, seconds_from_query
from .models import Item


def _item(item: Item) -> dict:
    return {"id": item.id, "name": item.name, "quantity": item.quantity}


def _invalid(exc: InvalidInput) -> JsonResponse:
    return JsonResponse({"error": str(exc)}, status=400)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def items(request: HttpRequest) -> JsonResponse:
    """GET: the latest items (a read, routed to a replica). POST: create one (a write)."""
    try:
        if request.method == "POST":
            new = NewItem.from_body(request.body)
        else:
            limit = limit_from_query(request.GET.get("limit"))
    except InvalidInput as exc:
        return _invalid(exc)
    if request.method == "POST":
        item = Item.objects.create(name=new.name, quantity=new.quantity)
        return JsonResponse(_item(item), status=201)
    rows = [_item(i) for i in Item.objects.all()[:limit]]
    return JsonResponse({"items": rows, "db": router.db_for_read(Item)})


@require_safe
def item_detail(request: HttpRequest, pk: int) -> JsonResponse:
    """One item, or 404."""
    item = Item.objects.filter(pk=pk).first()
    if item is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse(_item(item))


def _select_one() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@require_safe
def one_query(request: HttpRequest) -> JsonResponse:
    """Exactly one query on the primary: the benchmarks' unit of work (and which process served it)."""
    return JsonResponse({"value": _select_one(), "pid": os.getpid()})


@require_safe
async def one_query_async(request: HttpRequest) -> JsonResponse:
    """``/one-query/`` as an async view: the query runs through ``sync_to_async``."""
    value = await sync_to_async(_select_one)()
    return JsonResponse({"value": value, "pid": os.getpid()})


@require_safe
async def one_query_shared_thread(request: HttpRequest) -> JsonResponse:
    """``/one-query/`` on asgiref's shared executor (``thread_sensitive=False``), not the request's thread:
    Django would never give this connection back; the request middleware does, as the request ends."""
    value = await sync_to_async(_select_one, thread_sensitive=False)()
    return JsonResponse({"value": value, "pid": os.getpid()})


@require_safe
async def items_async(request: HttpRequest) -> JsonResponse:
    """The latest items, read with the guide's ``async with get_session(read_only=True)`` and the async ORM."""
    try:
        limit = limit_from_query(request.GET.get("limit"))
    except InvalidInput as exc:
        return _invalid(exc)
    async with get_session(read_only=True) as alias:
        rows = [_item(item) async for item in Item.objects.using(alias).order_by("-id")[:limit]]
    return JsonResponse({"items": rows, "db": alias})


@require_safe
async def whoami_async(request: HttpRequest) -> JsonResponse:
    """``/whoami/`` as an async view (which server a read in ``get_session(read_only=True)`` lands on)."""
    async with get_session(read_only=True) as alias:
        in_recovery, pid = await sync_to_async(_recovery_and_pid)(alias)
    return JsonResponse({"alias": alias, "in_recovery": in_recovery, "backend_pid": pid})


def _recovery_and_pid(alias: str) -> tuple[bool, int]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), pg_backend_pid()")
        in_recovery, pid = cursor.fetchone()
    return in_recovery, pid


@require_safe
def whoami(request: HttpRequest) -> JsonResponse:
    """Which server a routed read lands on: alias and pg_is_in_recovery()."""
    alias = router.db_for_read(Item)
    in_recovery, pid = _recovery_and_pid(alias)
    return JsonResponse({"alias": alias, "in_recovery": in_recovery, "backend_pid": pid})


@require_safe
def cached_count(request: HttpRequest) -> JsonResponse:
    """A page that uses the cache: still answers (as a miss) when Redis is down."""
    count = cache.get("workload:item-count")
    hit = count is not None
    if not hit:
        count = Item.objects.count()
        cache.set("workload:item-count", count, 5)
    return JsonResponse({"count": count, "cache_hit": hit})


@require_safe
def slow(request: HttpRequest) -> JsonResponse:
    """Hold a primary connection for ``?seconds=`` (0 to 30) with pg_sleep."""
    try:
        seconds = seconds_from_query(request.GET.get("seconds"))
    except InvalidInput as exc:
        return _invalid(exc)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])
    return JsonResponse({"slept": round(time.monotonic() - started, 3)})


@require_safe
def wait_between_queries(request: HttpRequest) -> JsonResponse:
    """Two reads on the primary with ``?seconds=`` (0 to 30, default 0.05) of waiting between them that
    is not the database's, as a view calling another service does: ``bench/bench_release.py``'s unit of
    work (with ``release = "transaction"`` no connection is held during the wait)."""
    try:
        seconds = 0.05 if request.GET.get("seconds") is None else seconds_from_query(request.GET.get("seconds"))
    except InvalidInput as exc:
        return _invalid(exc)
    count = Item.objects.using(DEFAULT_DB_ALIAS).count()
    time.sleep(seconds)  # the external call
    latest = list(Item.objects.using(DEFAULT_DB_ALIAS).order_by("-id").values_list("id", flat=True)[:5])
    return JsonResponse({"count": count, "latest": latest, "waited": seconds})


@csrf_exempt
@require_POST
def slow_write(request: HttpRequest) -> JsonResponse:
    """Create an item, then hold the transaction open ``seconds`` before committing (fault tests cut it)."""
    try:
        held = HeldWrite.from_body(request.body)
    except InvalidInput as exc:
        return _invalid(exc)
    with transaction.atomic():
        item = Item.objects.create(name=held.name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [held.seconds])
    return JsonResponse(_item(item), status=201)
