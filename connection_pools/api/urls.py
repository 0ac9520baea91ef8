"""URLs of the DRF admin API (mounted at /api/v1/admin/connection-pools/ by ``connection_pools.urls``).

The OpenAPI schema and its docs pages are admin-only; Swagger UI and Redoc assets come from the
installed drf-spectacular-sidecar, served under ``docs/assets/`` (never a CDN).
"""

from django.urls import path

from . import docs, views
from .history import PoolHistoryView

urlpatterns = [
    path("stats", views.StatsView.as_view(), name="connection-pools-stats"),
    path("health", views.HealthView.as_view(), name="connection-pools-health"),
    path("optimize", views.OptimizeView.as_view(), name="connection-pools-optimize"),
    path("config", views.ConfigView.as_view(), name="connection-pools-config"),
    path("reset-stats", views.ResetStatsView.as_view(), name="connection-pools-reset-stats"),
    path("server", views.ServerView.as_view(), name="connection-pools-server"),
    path("recommendations", views.RecommendationsView.as_view(), name="connection-pools-recommendations"),
    # The dashboard charts' time series.
    path("history", PoolHistoryView.as_view(), name="connection-pools-history"),
    path("schema/", docs.SchemaView.as_view(), name="connection-pools-schema"),
    path("docs/", docs.SwaggerView.as_view(url_name="connection-pools-schema"), name="connection-pools-docs"),
    path("redoc/", docs.RedocView.as_view(url_name="connection-pools-schema"), name="connection-pools-redoc"),
    path("docs/assets/<str:name>", docs.AssetView.as_view(), name="connection-pools-asset"),
]
