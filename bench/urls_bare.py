"""``/noop/`` alone, for ``bench/settings_bare.py``."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path


def noop(request: HttpRequest) -> JsonResponse:
    """No database, no cache."""
    return JsonResponse({"value": 1})


urlpatterns = [path("noop/", noop, name="noop")]
