"""Defaults taken from the project's own settings, so an adopter configures nothing twice.

* the Redis pools' URLs: a pool whose ``url`` is not set serves the project's Redis cache
  (``CACHES["default"]["LOCATION"]``): ``main`` (and with it the shared statistics) whenever that
  cache is a Redis one, ``cache`` only when Django's cache runs on our instrumented pool (otherwise
  we would count a pool of our own that the cache never uses). A pool left without a URL is not
  configured at all: no ``redis_<name>`` pool, and with no Redis anywhere every process keeps its
  own statistics (``"source": "local"``, check ``connection_pools.W401``);
* the namespace of the shared statistics (``KEY_PREFIX``): unique per project and stable across
  its processes and restarts, derived from the primary database it serves (host, port, name), so
  two projects on one Redis never see or reset each other's pools.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

#: Cache backends whose pool is ours by default (they set ``CONNECTION_POOL_CLASS`` themselves).
INSTRUMENTED_CACHE_BACKENDS = ("connection_pools.backends.redis.cache.RedisCache",)
#: Where our instrumented redis-py pool classes live (a django-redis ``CONNECTION_POOL_CLASS``).
INSTRUMENTED_POOL_MODULE = "connection_pools.backends.redis.pools."
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
NAMESPACE_ROOT = "connection_pools"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def cache_location(caches: Mapping[str, Any]) -> str | None:
    """The Redis URL of ``CACHES["default"]`` (its first server), or None when it is not a Redis cache."""
    default = caches.get("default")
    if not isinstance(default, Mapping):
        return None
    location = default.get("LOCATION")
    if isinstance(location, list | tuple):
        location = location[0] if location else None
    if not isinstance(location, str):
        return None
    first = location.split(",", 1)[0].strip()  # Django's own Redis backend: comma-separated servers
    return first if first.startswith(REDIS_SCHEMES) else None


def cache_is_instrumented(caches: Mapping[str, Any]) -> bool:
    """True when Django's default cache runs on our instrumented Redis pool (``redis_cache``)."""
    default = caches.get("default")
    if not isinstance(default, Mapping) or cache_location(caches) is None:
        return False
    if default.get("BACKEND") in INSTRUMENTED_CACHE_BACKENDS:
        return True
    pool_class = (default.get("OPTIONS") or {}).get("CONNECTION_POOL_CLASS")
    return isinstance(pool_class, str) and pool_class.startswith(INSTRUMENTED_POOL_MODULE)


def redis_urls(pools: Mapping[str, Mapping[str, Any]], caches: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``CONNECTION_POOLS["REDIS"]`` with each missing ``url`` taken from ``CACHES``; pools left without
    a URL are dropped (not configured)."""
    location = cache_location(caches)
    from_cache = {"main": location, "cache": location if cache_is_instrumented(caches) else None}
    resolved: dict[str, dict[str, Any]] = {}
    for name, settings in pools.items():
        if not isinstance(settings, Mapping):
            resolved[name] = settings  # a bad value: the checks report it
            continue
        url = settings.get("url") or from_cache.get(name)
        if url:
            resolved[name] = {**settings, "url": url}
    return resolved


def namespace(databases: Mapping[str, Any]) -> str:
    """The default ``KEY_PREFIX``: ``connection_pools:<database name>:<digest of host, port and name>``.

    The same for every process of a project (they share ``DATABASES``), different for projects that
    serve different databases; no pid, host name or random value in it, so it survives restarts.
    """
    primary = databases.get("default")
    if not isinstance(primary, Mapping) or not primary.get("NAME"):
        return NAMESPACE_ROOT
    host = str(primary.get("HOST") or "localhost")
    port = str(primary.get("PORT") or "")
    name = str(primary["NAME"])
    digest = hashlib.sha256(f"{host}\0{port}\0{name}".encode()).hexdigest()[:12]
    readable = _UNSAFE.sub("_", name)[:32].strip("_") or "db"
    return f"{NAMESPACE_ROOT}:{readable}:{digest}"
