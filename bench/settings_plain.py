"""Baseline settings for the instrumentation-cost benchmark.

The project's settings with every PostgreSQL alias on Django's plain
``django.db.backends.postgresql`` engine and its native psycopg pool (sized from the
same ``CONNECTION_POOLS["DATABASE_POOL"]`` values), and without our middleware.
Like for like: when our pool pre-pings (``DATABASE_POOL_PRE_PING``, on by default)
Django's pool checks each checkout too (``CONN_HEALTH_CHECKS``: the same round trip).
Everything else (apps, URLs, the example views) is unchanged, so the only
difference a benchmark sees is our engine's instrumentation and our middleware.

    DJANGO_SETTINGS_MODULE=bench.settings_plain gunicorn project.wsgi ...
"""

from __future__ import annotations

from project.settings import *  # noqa: F403 - a variant of the project's settings
from project.settings import CONNECTION_POOLS, DATABASES, MIDDLEWARE

_pool = CONNECTION_POOLS["DATABASE_POOL"]

# Django's own pool options are psycopg_pool.ConnectionPool keyword arguments.
_NATIVE_POOL = {
    "min_size": _pool["pool_size"],
    "max_size": _pool["pool_size"] + _pool["max_overflow"],
    "timeout": _pool["pool_timeout"],
    "max_lifetime": _pool["pool_recycle"],
}

for _config in DATABASES.values():
    _config["ENGINE"] = "django.db.backends.postgresql"
    _options = _config.setdefault("OPTIONS", {})
    if "pool" in _options:  # pooled (DATABASE_POOL_ENABLED is on)
        _options["pool"] = dict(_NATIVE_POOL)
        _config["CONN_HEALTH_CHECKS"] = _pool["pool_pre_ping"]

MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("connection_pools.")]
