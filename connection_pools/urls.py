"""Every surface of the app under its usual path, for one line in the project's ``urls.py``:

    path("", include("connection_pools.urls")),   # before path("admin/", admin.site.urls)

* ``admin/connection-pools/``: the dashboard (staff only; it reads the admin API below);
* ``api/v1/admin/connection-pools/``: the admin API, its OpenAPI schema and docs pages;
* ``metrics``: Prometheus.

To mount them elsewhere, include ``connection_pools.dashboard.urls``, ``connection_pools.api.urls``
and ``connection_pools.metrics_urls`` one by one (docs/adopting.md).
"""

from django.urls import include, path

urlpatterns = [
    path("admin/connection-pools/", include("connection_pools.dashboard.urls")),
    path("api/v1/admin/connection-pools/", include("connection_pools.api.urls")),
    path("", include("connection_pools.metrics_urls")),
]
