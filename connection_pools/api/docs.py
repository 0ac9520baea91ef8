"""The OpenAPI schema and its docs pages (Swagger UI, Redoc), admin-only, with JSON error bodies.

Nothing in the project's settings is needed for them: the schema comes from
:class:`~.schema.AdminSchemaGenerator`, the pages are our own templates, and their scripts and
styles are drf-spectacular-sidecar's files served by :mod:`.assets` (neither ``drf_spectacular`` nor
``drf_spectacular_sidecar`` in ``INSTALLED_APPS``, no ``collectstatic``, never a CDN). A refused
caller gets a JSON ``detail`` like every other endpoint instead of a half-rendered HTML page.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import assets
from .access import AdminAccessMixin, extend_schema
from .bodies import StrictBodyMixin
from .schema import TITLE, AdminSchemaGenerator

if TYPE_CHECKING:
    # The stubs' name for what APIView.permission_classes holds.
    from rest_framework.permissions import _PermissionClass


class _AdminOnly(AdminAccessMixin, StrictBodyMixin):
    permission_classes: Sequence[_PermissionClass] = [IsAdminUser]
    query_fields = None  # the pages' own (lang, version...)
    #: What the page renders as when all goes well.
    page_renderers: Sequence[type[BaseRenderer]] = ()

    def get_renderers(self) -> list[BaseRenderer]:
        # JSON last: errors and OPTIONS metadata are data, not a page.
        return [*(cls() for cls in self.page_renderers), JSONRenderer()]

    def _as_json(self) -> None:
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


class SchemaView(_AdminOnly, SpectacularJSONAPIView):
    """The OpenAPI 3 schema (JSON) of the admin API."""

    generator_class = AdminSchemaGenerator
    urlconf = None  # the project's: the paths are where the API is mounted
    serve_public = True
    page_renderers = SpectacularJSONAPIView.renderer_classes


class _Page(_AdminOnly, APIView):
    """A docs page on the schema (``url_name``), rendered from our own template."""

    page_renderers = (TemplateHTMLRenderer,)
    template_name = ""
    url_name = "connection-pools-schema"  # as_view(url_name=...) may name another

    def page_context(self) -> dict[str, Any]:
        return {}

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        context = {"title": TITLE, "schema_url": reverse(self.url_name), **self.page_context()}
        return Response(context, template_name=self.template_name,
                        headers={"Cache-Control": "private, no-store"})


class SwaggerView(_Page):
    """Swagger UI on the schema ("Try it out" sends the session's CSRF token)."""

    template_name = "connection_pools/swagger_ui.html"

    def page_context(self) -> dict[str, Any]:
        header = settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-")
        return {"assets": assets.urls("swagger"), "csrf_header": header}


class RedocView(_Page):
    """Redoc on the schema (no web fonts from a CDN)."""

    template_name = "connection_pools/redoc.html"

    def page_context(self) -> dict[str, Any]:
        return {"assets": assets.urls("redoc")}


class AssetView(_AdminOnly, APIView):
    """One script, style or icon of the docs pages (:data:`.assets.FILES`)."""

    @extend_schema(exclude=True)
    def get(self, request: Request, name: str) -> HttpResponse:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = HttpResponse(assets.read_asset(name), content_type=content_type)
        response["Cache-Control"] = f"private, max-age={assets.MAX_AGE}"
        return response
