"""Process lifecycle hooks: after a fork and at shutdown.

Other modules add what they need here with small edits (fork safety of pools,
warming, publishing a last snapshot).
"""

from __future__ import annotations

import logging

from . import background

logger = logging.getLogger(__name__)


def after_fork() -> None:
    """Called in a freshly forked worker (gunicorn ``post_fork``)."""
    # Issue 3: replace pools inherited from the parent, then warm if configured.
    from .pools import postgres

    postgres.after_fork()
    # Issue 5: Redis pools reset themselves after a fork (pid-aware); with --preload, warm the
    # child's here (without it Django is not set up yet, and apps.ready warms each worker).
    from .pools import redis as redis_pools

    redis_pools.after_fork()
    background.ensure_started()


def at_shutdown() -> None:
    """Called when a worker stops (gunicorn ``worker_exit``)."""
    from django.apps import apps

    if not apps.ready:
        return  # Django never started here (the application failed to load): nothing to close
    # Issue 3: close this worker's pools (their sessions end cleanly, exit does not wait).
    from .pools import postgres

    postgres.close_pools()
    background.stop()
    # Issue 6: a last snapshot, so this worker's final counts stay in the aggregate for SNAPSHOT_TTL.
    from . import publisher

    publisher.at_shutdown()
    from .pools import redis as redis_pools  # Issue 5

    redis_pools.close_redis()
