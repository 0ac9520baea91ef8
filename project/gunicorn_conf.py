"""gunicorn settings and hooks of the example project (``--config python:project.gunicorn_conf``).

The worker settings are the ones slow clients cannot starve (README, "Serving"):
request heads are read in each worker's event loop (:mod:`project.gunicorn_worker`),
threads serve complete requests only, and idle keep-alive connections are closed soon.
"""

from __future__ import annotations

from typing import Any

worker_class = "project.gunicorn_worker.BufferedHeadWorker"
threads = 8
# Seconds a worker may stay silent before the master replaces it (the main loop beats even
# while every thread is busy), and a kept-alive connection may idle between two requests.
timeout = 30
keepalive = 5
graceful_timeout = 5


def on_starting(server: Any) -> None:
    """In the master, before binding: a bad setting stops here with one sentence (no worker boots)."""
    from project.startup import check_settings

    check_settings()


def post_fork(server: Any, worker: Any) -> None:
    """In each worker: make sure no pool inherited from the master is reused."""
    from connection_pools.lifecycle import after_fork

    after_fork()


def worker_exit(server: Any, worker: Any) -> None:
    """Publish a last snapshot and close pools when a worker stops."""
    from connection_pools.lifecycle import at_shutdown

    at_shutdown()
