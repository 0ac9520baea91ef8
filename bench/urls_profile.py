"""The project's URLs plus ``/noop/``: a sync view that touches no database (``bench/profile_asgi.py``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from project.urls import urlpatterns as project_urlpatterns


def noop(request: HttpRequest) -> JsonResponse:
    """No database, no cache: what the handler and the middleware cost by themselves."""
    return JsonResponse({"value": 1})


urlpatterns = [path("noop/", noop, name="noop"), *project_urlpatterns]
