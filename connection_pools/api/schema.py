"""The admin API's OpenAPI schema, whatever else the project serves and however it configures DRF.

The generator walks the project's URLs (so the paths are the real ones, wherever the adopter mounts
the API) but keeps only the admin API's own views, and writes its own title and version: no
``SPECTACULAR_SETTINGS``, no ``DEFAULT_SCHEMA_CLASS``, and a project's other views (with another
schema class, or none) neither appear in it nor break it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator

TITLE = "Connection pools admin API"
DESCRIPTION = "Statistics, health, recommendations and configuration of the connection pools."
VERSION = "1.0.0"


class AdminEndpoints(EndpointEnumerator):
    """Only the endpoints of :class:`~.views.AdminAPIView` subclasses."""

    def should_include_endpoint(self, path: str, callback: Any) -> bool:
        from .views import AdminAPIView

        view = getattr(callback, "cls", None)
        return isinstance(view, type) and issubclass(view, AdminAPIView) and bool(
            super().should_include_endpoint(path, callback))


class AdminSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator on :class:`AdminEndpoints`, with the API's own ``info``."""

    endpoint_inspector_cls = AdminEndpoints

    def get_schema(self, request: Any = None, public: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super().get_schema(request=request, public=public)  # type: ignore[no-untyped-call]
        schema["info"] = {"title": TITLE, "version": VERSION, "description": DESCRIPTION}
        return schema
