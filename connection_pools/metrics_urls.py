"""``metrics``: the Prometheus page (mounted at /metrics by ``connection_pools.urls``)."""

from django.urls import path

from .metrics import MetricsView

urlpatterns = [
    path("metrics", MetricsView.as_view(), name="connection-pools-metrics"),
]
