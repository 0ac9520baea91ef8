"""Process lifecycle hooks: after a fork and at shutdown (gunicorn's ``post_fork`` / ``worker_exit``)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def start_jobs(**kwargs: Any) -> None:
    """Start this server process's background thread (the first request's ``request_started``)."""
    from .core import jobs

    jobs.ensure_started()


def after_fork() -> None:
    """Called in a freshly forked worker (gunicorn ``post_fork``)."""
    from .backends.persistent import forget as forget_persistent
    from .backends.postgresql import live as postgres
    from .backends.redis import pools as redis_pools
    from .core import jobs

    postgres.after_fork()  # replace pools inherited from the parent, then warm if configured
    forget_persistent()
    redis_pools.after_fork()  # redis-py resets inherited pools by itself; warm the child's if configured
    jobs.ensure_started()


def at_shutdown() -> None:
    """Called when a worker stops (gunicorn ``worker_exit``)."""
    from django.apps import apps

    if not apps.ready:
        return  # Django never started here (the application failed to load): nothing to close
    from .backends.postgresql import live as postgres
    from .backends.redis import pools as redis_pools
    from .cluster import publish, rollup
    from .cluster.store import store
    from .core import jobs
    from .insight import server_tier

    postgres.close_pools()  # their sessions end cleanly; exit does not wait on psycopg's threads
    jobs.stop()
    publish.at_shutdown()  # a last snapshot: this worker's final counts stay for SNAPSHOT_TTL
    rollup.release()
    server_tier.release()  # the census's dedicated connections close; another process takes over at once
    store.close()
    redis_pools.close_redis()
