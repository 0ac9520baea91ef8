"""gunicorn settings and hooks of the example project (``--config python:project.gunicorn_conf``).

WSGI (the default): ``project.wsgi`` on the worker slow clients cannot starve (README,
"Serving"): request heads are read in each worker's event loop (:mod:`project.gunicorn_worker`),
threads serve complete requests only, and idle keep-alive connections are closed soon.

ASGI (``CONNECTION_POOLS_ASGI=true``): ``project.asgi:application`` on uvicorn workers
(:mod:`project.asgi_worker`), one event loop per worker (docs/asgi.md). An application given
on the command line wins over ``wsgi_app``; the worker class must then match it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _asgi() -> bool:
    from django.core.exceptions import ImproperlyConfigured

    from connection_pools.conf.env import env_bool
    from project.startup import EXIT_CONFIGURATION

    try:
        return env_bool(os.environ, "CONNECTION_POOLS_ASGI", False)
    except ImproperlyConfigured as exc:  # one sentence, as for every other bad setting
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        raise SystemExit(EXIT_CONFIGURATION) from None


ASGI = _asgi()
wsgi_app = "project.asgi:application" if ASGI else "project.wsgi:application"
worker_class = "project.asgi_worker.AsgiWorker" if ASGI else "project.gunicorn_worker.BufferedHeadWorker"
threads = 8  # WSGI only: uvicorn workers have no thread setting
# Seconds a worker may stay silent before the master replaces it (the main loop beats even
# while every thread is busy), and a kept-alive connection may idle between two requests.
timeout = 30
keepalive = 5
graceful_timeout = 5


def on_starting(server: Any) -> None:
    """In the master, before binding: a bad setting stops here with one sentence (no worker boots);
    so do persistent connections when serving under ASGI (connection_pools.E301)."""
    from project.startup import check_settings, start

    check_settings()
    if ASGI:
        from connection_pools.conf.serving import refuse_unsafe_asgi

        start(refuse_unsafe_asgi)


def post_fork(server: Any, worker: Any) -> None:
    """In each worker: make sure no pool inherited from the master is reused."""
    from connection_pools.lifecycle import after_fork

    after_fork()


def worker_exit(server: Any, worker: Any) -> None:
    """Publish a last snapshot and close pools when a worker stops."""
    from connection_pools.lifecycle import at_shutdown

    at_shutdown()
