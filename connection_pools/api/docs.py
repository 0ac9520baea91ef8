"""The OpenAPI schema and its docs pages, admin-only, with JSON error bodies.

Swagger UI and Redoc assets come from drf-spectacular-sidecar (served as our static
files), never from a CDN. A refused caller gets a JSON ``detail`` like every other
endpoint instead of a half-rendered HTML page.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .bodies import StrictBodyMixin
from .views import AdminAPIView


class _AdminOnly(StrictBodyMixin):
    authentication_classes = AdminAPIView.authentication_classes
    permission_classes = AdminAPIView.permission_classes
    query_fields = None  # drf-spectacular's own (lang, version...)

    def _as_json(self) -> None:
        # Errors and OPTIONS metadata are data, not a page: the HTML renderers need a template for them.
        self.request.accepted_renderer = JSONRenderer()  # type: ignore[attr-defined]
        self.request.accepted_media_type = "application/json"  # type: ignore[attr-defined]

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        self._as_json()
        return response

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        """The endpoint's metadata, as JSON whatever the page renders otherwise."""
        response: Response = super().options(request, *args, **kwargs)  # type: ignore[misc]
        self._as_json()
        return response

    def get_renderers(self) -> list[Any]:
        return [*super().get_renderers(), JSONRenderer()]  # type: ignore[misc]


class SchemaView(_AdminOnly, SpectacularJSONAPIView):
    """The OpenAPI 3 schema (JSON)."""


class SwaggerView(_AdminOnly, SpectacularSwaggerView):
    """Swagger UI on the schema."""


class RedocView(_AdminOnly, SpectacularRedocView):
    """Redoc on the schema (our template: no web fonts from a CDN)."""

    template_name = "connection_pools/redoc.html"
