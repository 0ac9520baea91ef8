"""gunicorn hooks of the example project (``--config python:project.gunicorn_conf``)."""

from __future__ import annotations

from typing import Any


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
