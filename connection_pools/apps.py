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
        # (replicas: issue 4, registers the replica lag-sampling job.)
        from . import checks, replicas, signals  # noqa: F401

        # Issue 7: the history sampler job (registered at import) and the /metrics collector.
        from .history import history as _history  # noqa: F401
        from .metrics import register as register_metrics

        # Issue 3: persistent-mode receivers and the long-hold job (registered at import).
        from .pools import persistent, postgres  # noqa: F401

        register_metrics()

        # Issue 6: the publisher, auto-tuner and alert jobs (registered at import).
        from . import publisher, service, tuner  # noqa: F401

        # Issue 5: create the Redis pools (no I/O) so redis_main / redis_cache show from the start.
        from .pools import redis as redis_pools

        redis_pools.register_pools()
