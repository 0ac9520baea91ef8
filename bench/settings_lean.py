"""The project's settings with one middleware, ours, for ``bench/bench_asgi.py``.

Under ASGI, Django runs the hooks of every async-capable ``MiddlewareMixin`` middleware (its own
and django-prometheus') through ``sync_to_async``: a thread hop each, per request; the project
declares them sync-only (``project/middleware.py``), which makes it one hop for the chain. This
variant keeps only ``RequestContextMiddleware`` (natively async) so the benchmark can tell what
the middleware cost from what the server and the pool cost.

    DJANGO_SETTINGS_MODULE=bench.settings_lean gunicorn ...
"""

from __future__ import annotations

from project.settings import *  # noqa: F403 - a variant of the project's settings

MIDDLEWARE = ["connection_pools.middleware.RequestContextMiddleware"]
