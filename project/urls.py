"""URLs of the example project."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/connection-pools/", include("connection_pools.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/admin/connection-pools/", include("connection_pools.api.urls")),
    path("", include("django_prometheus.urls")),
    path("", include("project.workload.urls")),
]

if settings.SERVE_STATIC:
    urlpatterns.append(
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    )
