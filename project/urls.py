"""URLs of the example project."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    # The dashboard, the admin API and /metrics, as docs/adopting.md says (before the admin's own URLs).
    path("", include("connection_pools.urls")),
    path("admin/", admin.site.urls),
    path("", include("project.workload.urls")),
]

if settings.SERVE_STATIC:
    urlpatterns.append(
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    )
