"""URLs of the admin dashboard page (mounted at /admin/connection-pools/)."""

from django.urls import path

from . import views as dashboard

urlpatterns = [
    path("", dashboard.dashboard, name="connection-pools-dashboard"),
    path("reset/", dashboard.reset, name="connection-pools-reset"),
    path("apply/", dashboard.apply_suggestions, name="connection-pools-apply"),
]
