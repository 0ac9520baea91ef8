"""The django-redis ``OPTIONS`` that put Django's cache on the instrumented ``cache`` pool.

One function for both ways of configuring the cache: :func:`connection_pools.env.caches` writes them
into ``CACHES`` from the environment, and ``connection_pools.backends.redis.cache.RedisCache`` takes
them as its defaults, so a ``BACKEND`` and a ``LOCATION`` are all an adopter writes. No django-redis
import here: settings modules load this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POOL_MODULE = "connection_pools.backends.redis.pools"


def instrumented_options(pool: Mapping[str, Any]) -> dict[str, Any]:
    """``OPTIONS`` for a django-redis cache on our pool named ``cache``, sized and timed by ``pool``
    (the settings of ``CONNECTION_POOLS["REDIS"]["cache"]``)."""
    blocking = bool(pool["blocking"])
    pool_kwargs: dict[str, Any] = {
        "pool_name": "cache",
        "max_connections": pool["max_connections"],
        "socket_keepalive": pool["socket_keepalive"],
        "retry_on_timeout": pool["retry_on_timeout"],
        "health_check_interval": pool["health_check_interval"],
    }
    if blocking:
        pool_kwargs["timeout"] = pool["blocking_timeout"]
    pool_class = "InstrumentedBlockingConnectionPool" if blocking else "InstrumentedConnectionPool"
    return {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "CONNECTION_POOL_CLASS": f"{POOL_MODULE}.{pool_class}",
        "CONNECTION_POOL_KWARGS": pool_kwargs,
        "SOCKET_CONNECT_TIMEOUT": pool["socket_connect_timeout"],
        "SOCKET_TIMEOUT": pool["socket_timeout"],
        # A cache outage degrades to misses instead of 500s, reported once per interval.
        "IGNORE_EXCEPTIONS": True,
        "OUTAGE_LOG_INTERVAL": 60,
    }
