"""URL configurations an adopter might write by mistake (tests/test_wiring.py)."""

from django.contrib import admin
from django.urls import include, path


class DashboardWithoutApi:
    urlpatterns = [
        path("admin/connection-pools/", include("connection_pools.dashboard.urls")),
        path("admin/", admin.site.urls),
    ]


class IncludedAfterTheAdmin:
    urlpatterns = [
        path("admin/", admin.site.urls),
        path("", include("connection_pools.urls")),
    ]


class AsDocumented:
    urlpatterns = [
        path("", include("connection_pools.urls")),
        path("admin/", admin.site.urls),
    ]


class WithoutTheAdmin:
    urlpatterns = [
        path("", include("connection_pools.urls")),
    ]
