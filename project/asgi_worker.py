"""The gunicorn worker that serves the project under ASGI: uvicorn's, with the project's choices.

``gunicorn --config python:project.gunicorn_conf`` picks it (and ``project.asgi:application``)
when ``CONNECTION_POOLS_ASGI=true`` -- ``make run ASGI=1`` and ``docker-compose.asgi.yml`` do.
Each worker is one process with one event loop: request heads and bodies are read in the
loop (a slow client costs a socket, never a thread), async views run in it, and Django runs
each request's synchronous work (sync views, sync middleware, the ORM behind
``sync_to_async``) on a thread of that request's own.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class AsgiWorker(UvicornWorker):
    """uvicorn in a gunicorn worker: asyncio loop, httptools parser, no lifespan (Django has none)."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "asyncio", "http": "httptools", "lifespan": "off"}
