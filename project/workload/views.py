"""Example workload views: JSON list/detail/create of items, a one-query view,
a cached view, and a slow view that holds its connection.

They are plain Django views (no auth) so load tools and fault tests can drive them.
"""

from __future__ import annotations

import json
import os
import time

from django.core.cache import cache
from django.db import connection, connections, router
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from .models import Item


def _item(item: Item) -> dict:
    return {"id": item.id, "name": item.name, "quantity": item.quantity}


@csrf_exempt
@require_http_methods(["GET", "POST"])
def items(request: HttpRequest) -> JsonResponse:
    """GET: the latest items (a read, routed to a replica). POST: create one (a write)."""
    if request.method == "POST":
        try:
            data = json.loads(request.body or b"{}")
            name = str(data.get("name", "")).strip()[:200]
            quantity = int(data.get("quantity", 0))
        except (ValueError, TypeError):
            return JsonResponse({"error": "expected JSON {\"name\": str, \"quantity\": int}"}, status=400)
        if not name:
            return JsonResponse({"error": "name is required"}, status=400)
        item = Item.objects.create(name=name, quantity=quantity)
        return JsonResponse(_item(item), status=201)
    raw_limit = request.GET.get("limit", "20")
    if not raw_limit.isdigit():
        return JsonResponse({"error": "limit must be a whole number from 1 to 100"}, status=400)
    limit = min(max(int(raw_limit), 1), 100)
    rows = [_item(i) for i in Item.objects.all()[:limit]]
    return JsonResponse({"items": rows, "db": router.db_for_read(Item)})


@require_GET
def item_detail(request: HttpRequest, pk: int) -> JsonResponse:
    """One item, or 404."""
    item = Item.objects.filter(pk=pk).first()
    if item is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse(_item(item))


@require_GET
def one_query(request: HttpRequest) -> JsonResponse:
    """Exactly one query on the primary: the benchmarks' unit of work (and which process served it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    return JsonResponse({"value": value, "pid": os.getpid()})


@require_GET
def whoami(request: HttpRequest) -> JsonResponse:
    """Which server a routed read lands on: alias and pg_is_in_recovery()."""
    alias = router.db_for_read(Item)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), pg_backend_pid()")
        in_recovery, pid = cursor.fetchone()
    return JsonResponse({"alias": alias, "in_recovery": in_recovery, "backend_pid": pid})


@require_GET
def cached_count(request: HttpRequest) -> JsonResponse:
    """A page that uses the cache: still answers (as a miss) when Redis is down."""
    count = cache.get("workload:item-count")
    hit = count is not None
    if not hit:
        count = Item.objects.count()
        cache.set("workload:item-count", count, 5)
    return JsonResponse({"count": count, "cache_hit": hit})


@require_GET
def slow(request: HttpRequest) -> JsonResponse:
    """Hold a primary connection for ``?seconds=`` (max 30) with pg_sleep."""
    try:
        seconds = min(max(float(request.GET.get("seconds", "1")), 0.0), 30.0)
    except ValueError:
        return JsonResponse({"error": "seconds must be a number"}, status=400)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])
    return JsonResponse({"slept": round(time.monotonic() - started, 3)})
