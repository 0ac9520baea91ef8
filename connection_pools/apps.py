"""App configuration: the one place that wires the app into a process."""

from __future__ import annotations

from django.apps import AppConfig


class ConnectionPoolsConfig(AppConfig):
    """The ``connection_pools`` app."""

    name = "connection_pools"
    verbose_name = "Connection pools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        # checks register at import; statements observes what each connection sends (a request
        # that wrote is never replayed).
        from . import checks, jobs, lifecycle, wiring  # noqa: F401
        from .backends import persistent, request_end  # noqa: F401 - their signal receivers
        from .backends.postgresql.base import live_pool
        from .backends.redis import pools as redis_pools
        from .metrics import register as register_metrics
        from .routing import replicas, statements

        statements.install()

        jobs.register()
        # Least-busy balancing asks the pools how busy each replica is (routing sits below them).
        replicas.load_of = lambda alias: len(pool.leases) if (pool := live_pool(alias)) is not None else 0
        # Lazily, in the serving process itself (after any fork): one background thread per process.
        request_started.connect(lifecycle.start_jobs, dispatch_uid="connection_pools.start_background")
        register_metrics()
        # Create the Redis pools (no I/O) so redis_main / redis_cache show from the start.
        redis_pools.register_pools()
