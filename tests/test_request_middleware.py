"""The one request middleware under its old names: users' MIDDLEWARE settings keep working."""

from __future__ import annotations

import uuid

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from connection_pools.middleware import PoolStatsMiddleware, RequestContextMiddleware
from connection_pools.pinning import ReplicaPinningMiddleware
from project.workload.models import Item

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

OLD_PAIR = ["connection_pools.middleware.PoolStatsMiddleware", "connection_pools.pinning.ReplicaPinningMiddleware"]


def writes(request: HttpRequest) -> JsonResponse:
    Item.objects.create(name=f"mw-{uuid.uuid4().hex[:8]}")
    return JsonResponse({"ok": True})


urlpatterns = [path("writes/", writes)]


def ours(handler: WSGIHandler) -> list[object]:
    """Our middleware instances in a loaded handler (each has a process_view)."""
    return [m.__self__ for m in handler._view_middleware
            if isinstance(getattr(m, "__self__", None), RequestContextMiddleware)]


def test_pool_stats_middleware_is_the_request_middleware() -> None:
    assert PoolStatsMiddleware is RequestContextMiddleware


def test_the_old_pair_gives_one_request_middleware() -> None:
    with override_settings(MIDDLEWARE=OLD_PAIR):
        handler = WSGIHandler()
    (instance,) = ours(handler)
    assert type(instance) is RequestContextMiddleware  # the pinning name took itself out


@pytest.mark.parametrize("middleware", [OLD_PAIR, ["connection_pools.pinning.ReplicaPinningMiddleware"],
                                        ["connection_pools.middleware.RequestContextMiddleware"]])
def test_a_write_pins_the_client_whichever_names_are_listed(middleware: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware, ROOT_URLCONF=__name__):
        response = Client().get("/writes/")
        (instance,) = ours(WSGIHandler())
    assert response.status_code == 200
    assert "cp_pin" in response.cookies
    assert isinstance(response.wsgi_request.connection_pools.route.wrote, bool)
    assert response.wsgi_request.connection_pools.route.wrote
    alone = middleware == ["connection_pools.pinning.ReplicaPinningMiddleware"]
    assert isinstance(instance, ReplicaPinningMiddleware) is alone
