"""App configuration: wires signals, checks and start-up work once per process."""

from __future__ import annotations

from django.apps import AppConfig


class ConnectionPoolsConfig(AppConfig):
    """The ``connection_pools`` app."""

    name = "connection_pools"
    verbose_name = "Connection pools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: signal receivers and system checks.
        from . import checks, signals  # noqa: F401
