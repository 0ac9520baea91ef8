"""App configuration: wires signals, checks, background jobs and pools once per process."""

from __future__ import annotations

from django.apps import AppConfig


class ConnectionPoolsConfig(AppConfig):
    """The ``connection_pools`` app."""

    name = "connection_pools"
    verbose_name = "Connection pools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: signal receivers, system checks and the
        # background jobs each module registers at import (replica lag sampling,
        # long-hold sweep, snapshot publishing, auto-tuner, alerts, history) and the
        # statement observer that tells a replayable request from one that wrote.
        from . import checks, history, publisher, replicas, service, signals, statements, tuner  # noqa: F401
        from .metrics import register as register_metrics
        from .pools import persistent, postgres  # noqa: F401
        from .pools import redis as redis_pools

        register_metrics()
        # Create the Redis pools (no I/O) so redis_main / redis_cache show from the start.
        redis_pools.register_pools()
