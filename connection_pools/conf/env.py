"""Environment variables -> ``DATABASES``, ``CACHES`` and ``CONNECTION_POOLS``.

Every reader validates its variable and raises one ``ImproperlyConfigured`` that
names the variable, the offending value (with any password masked) and what is
accepted, so a typo stops start-up with a sentence rather than a traceback from
deep inside a driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from . import DATABASE_POOL_DEFAULTS, REDIS_POOL_DEFAULTS

ENGINE = "connection_pools.backends.postgresql"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
REDIS_SCHEMES = ("redis", "rediss", "unix")

DEFAULT_DATABASE_URL = "postgres://pools:pools@127.0.0.1:55432/pools"
DEFAULT_REPLICA_URLS = "postgres://pools:pools@127.0.0.1:55433/pools"
DEFAULT_REDIS_URL = "redis://127.0.0.1:56379/0"
DEFAULT_REDIS_CACHE_URL = "redis://127.0.0.1:56379/1"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

Environ = Mapping[str, str]


def mask_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        # Unparseable: hide everything between "://" and "@" to be safe.
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return url


def _bad(name: str, value: str, accepted: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"Environment variable {name}={mask_url(value)!r} is invalid: expected {accepted}."
    )


def env_int(environ: Environ, name: str, default: int, *, minimum: int = 0) -> int:
    """Read an integer ``>= minimum``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, raw, f"a whole number >= {minimum}") from None
    if value < minimum:
        raise _bad(name, raw, f"a whole number >= {minimum}")
    return value


def env_float(environ: Environ, name: str, default: float, *, minimum: float = 0.0, strict: bool = False) -> float:
    """Read a number of seconds ``>= minimum`` (``> minimum`` when ``strict``)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    accepted = f"a number of seconds {'>' if strict else '>='} {minimum:g}"
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, raw, accepted) from None
    if value != value or value in (float("inf"), float("-inf")) or value < minimum or (strict and value == minimum):
        raise _bad(name, raw, accepted)
    return value


def env_bool(environ: Environ, name: str, default: bool) -> bool:
    """Read a boolean switch (1/0, true/false, yes/no, on/off)."""
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _bad(name, raw, "one of " + "/".join(_TRUE + _FALSE))


def env_list(environ: Environ, name: str, default: str = "") -> list[str]:
    """Read a comma-separated list; blanks are dropped."""
    return [item.strip() for item in environ.get(name, default).split(",") if item.strip()]


def parse_database_url(name: str, url: str) -> dict[str, Any]:
    """Parse one PostgreSQL URL into a ``DATABASES`` entry using our engine."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in POSTGRES_SCHEMES:
        raise _bad(name, url, "a PostgreSQL URL such as postgres://user:password@host:5432/dbname "
                   f"(scheme one of {', '.join(POSTGRES_SCHEMES)})")
    try:
        config = dict(dj_database_url.parse(url))
    except (ValueError, dj_database_url.ParseError) as exc:
        raise _bad(name, url, "a well-formed URL postgres://user:password@host:port/dbname") from exc
    if not config.get("NAME"):
        raise _bad(name, url, "a URL that names the database, e.g. postgres://user:password@host:5432/dbname")
    config["ENGINE"] = ENGINE
    return config


def parse_redis_url(name: str, url: str) -> str:
    """Validate a Redis URL and return it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _bad(name, url, "a well-formed URL redis://[:password@]host:port/db") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise _bad(name, url, f"a Redis URL (scheme one of {', '.join(REDIS_SCHEMES)})")
    if parts.scheme != "unix" and not parts.hostname:
        raise _bad(name, url, "a Redis URL with a host, e.g. redis://127.0.0.1:6379/0")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise _bad(name, url, "a Redis URL whose path is a database number, e.g. redis://host:6379/0")
    return url


def database_pool_settings(environ: Environ) -> dict[str, Any]:
    """The guide's six PostgreSQL pool settings from ``DATABASE_POOL_*``."""
    d = DATABASE_POOL_DEFAULTS
    return {
        "pool_size": env_int(environ, "DATABASE_POOL_SIZE", d["pool_size"], minimum=1),
        "max_overflow": env_int(environ, "DATABASE_POOL_OVERFLOW", d["max_overflow"], minimum=0),
        "pool_timeout": env_float(environ, "DATABASE_POOL_TIMEOUT", d["pool_timeout"], strict=True),
        "pool_recycle": env_float(environ, "DATABASE_POOL_RECYCLE", d["pool_recycle"], strict=True),
        "pool_pre_ping": env_bool(environ, "DATABASE_POOL_PRE_PING", d["pool_pre_ping"]),
        "pool_use_lifo": env_bool(environ, "DATABASE_POOL_USE_LIFO", d["pool_use_lifo"]),
        "pool_pre_ping_window": env_float(environ, "DATABASE_POOL_PRE_PING_WINDOW", d["pool_pre_ping_window"]),
    }


def databases(environ: Environ | None = None) -> dict[str, dict[str, Any]]:
    """``DATABASES`` from ``DATABASE_URL`` and ``DATABASE_REPLICA_URLS``.

    The primary is ``default``; replicas are ``replica1``, ``replica2``, ... and
    mirror ``default`` in tests. With ``DATABASE_POOL_ENABLED=false`` the aliases
    use persistent connections (``DATABASE_CONN_MAX_AGE``) instead of a pool.
    """
    environ = os.environ if environ is None else environ
    pooled = env_bool(environ, "DATABASE_POOL_ENABLED", True)
    conn_max_age = env_int(environ, "DATABASE_CONN_MAX_AGE", 0, minimum=0)
    if pooled and conn_max_age:
        raise ImproperlyConfigured(
            f"Environment variable DATABASE_CONN_MAX_AGE={conn_max_age} needs DATABASE_POOL_ENABLED=false: "
            "Django's pool and persistent connections exclude each other."
        )

    def alias_config(name: str, url: str) -> dict[str, Any]:
        config = parse_database_url(name, url)
        config["CONN_MAX_AGE"] = conn_max_age
        config["CONN_HEALTH_CHECKS"] = not pooled and conn_max_age > 0
        options = config.setdefault("OPTIONS", {})
        if pooled:
            # The pool's settings come from CONNECTION_POOLS["DATABASE_POOL"];
            # an alias may override keys here.
            options["pool"] = {}
        options.setdefault("connect_timeout", 5)
        return config

    result = {"default": alias_config("DATABASE_URL", environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))}
    replica_urls = env_list(environ, "DATABASE_REPLICA_URLS", DEFAULT_REPLICA_URLS)
    for alias, url in zip(replica_aliases(environ), replica_urls, strict=True):
        replica = alias_config("DATABASE_REPLICA_URLS", url)
        replica["TEST"] = {"MIRROR": "default"}
        result[alias] = replica
    return result


def redis_pools(environ: Environ | None = None) -> dict[str, dict[str, Any]]:
    """The Redis pools' settings from ``REDIS_URL``, ``REDIS_CACHE_URL``, ``REDIS_POOL_SIZE``,
    ``REDIS_MAX_CONNECTIONS`` and the ``REDIS_POOL_*`` / ``REDIS_SOCKET_*`` knobs both pools share."""
    environ = os.environ if environ is None else environ
    main = dict(REDIS_POOL_DEFAULTS["main"])
    cache = dict(REDIS_POOL_DEFAULTS["cache"])
    main["url"] = parse_redis_url("REDIS_URL", environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    cache["url"] = parse_redis_url("REDIS_CACHE_URL", environ.get("REDIS_CACHE_URL", DEFAULT_REDIS_CACHE_URL))
    main["max_connections"] = env_int(environ, "REDIS_POOL_SIZE", main["max_connections"], minimum=1)
    cache["max_connections"] = env_int(environ, "REDIS_MAX_CONNECTIONS", cache["max_connections"], minimum=1)
    # Settings both pools share; see docs/redis-pools.md.
    for pool in (main, cache):
        pool["blocking"] = env_bool(environ, "REDIS_POOL_BLOCKING", pool["blocking"])
        pool["blocking_timeout"] = env_float(environ, "REDIS_POOL_TIMEOUT", pool["blocking_timeout"], strict=True)
        pool["socket_timeout"] = env_float(environ, "REDIS_SOCKET_TIMEOUT", pool["socket_timeout"], strict=True)
        pool["socket_connect_timeout"] = env_float(
            environ, "REDIS_SOCKET_CONNECT_TIMEOUT", pool["socket_connect_timeout"], strict=True)
        pool["health_check_interval"] = env_int(
            environ, "REDIS_HEALTH_CHECK_INTERVAL", pool["health_check_interval"], minimum=0)
    return {"main": main, "cache": cache}


def replica_aliases(environ: Environ) -> list[str]:
    """``replica1``, ``replica2``, ...: one alias per ``DATABASE_REPLICA_URLS`` entry."""
    urls = env_list(environ, "DATABASE_REPLICA_URLS", DEFAULT_REPLICA_URLS)
    return [f"replica{index}" for index in range(1, len(urls) + 1)]


def replica_settings(environ: Environ) -> dict[str, Any]:
    """Read-replica routing settings from ``DATABASE_REPLICA_*`` (see docs/read-replicas.md)."""
    balancing = environ.get("DATABASE_REPLICA_BALANCING", "").strip().lower() or "round_robin"
    if balancing not in ("round_robin", "least_busy"):
        raise _bad("DATABASE_REPLICA_BALANCING", balancing, "round_robin or least_busy")
    return {
        "ALIASES": replica_aliases(environ),
        "BALANCING": balancing,
        "MAX_LAG_SECONDS": env_float(environ, "DATABASE_REPLICA_MAX_LAG", 30.0),
        "LAG_SAMPLE_INTERVAL": env_float(environ, "DATABASE_REPLICA_LAG_INTERVAL", 2.0, strict=True),
        "COOLDOWN_SECONDS": env_float(environ, "DATABASE_REPLICA_COOLDOWN", 10.0),
        "PIN_SECONDS": env_float(environ, "DATABASE_REPLICA_PIN_SECONDS", 5.0),
    }


def connection_pools(environ: Environ | None = None) -> dict[str, Any]:
    """The ``CONNECTION_POOLS`` settings dict that the env vars determine."""
    environ = os.environ if environ is None else environ
    return {
        "DATABASE_POOL": database_pool_settings(environ),
        "REDIS": redis_pools(environ),
        "WARM_ON_STARTUP": env_bool(environ, "CONNECTION_POOLS_WARM", False),
        "REPLICAS": replica_settings(environ),
        # Dashboard history: seconds between points, and seconds kept.
        "HISTORY_INTERVAL": env_float(environ, "CONNECTION_POOLS_HISTORY_INTERVAL", 5.0, minimum=0.5),
        "HISTORY_SECONDS": env_float(environ, "CONNECTION_POOLS_HISTORY_SECONDS", 3600.0, minimum=60.0),
        "TUNER": {
            "ENABLED": env_bool(environ, "CONNECTION_POOLS_TUNER", False),
            "ALLOW_APPLY": env_bool(environ, "CONNECTION_POOLS_TUNER_ALLOW_APPLY", False),
            "INTERVAL": env_float(environ, "CONNECTION_POOLS_TUNER_INTERVAL", 60.0, minimum=1.0),
            "MIN_POOL_SIZE": env_int(environ, "CONNECTION_POOLS_TUNER_MIN_POOL_SIZE", 1, minimum=1),
            "MAX_POOL_SIZE": env_int(environ, "CONNECTION_POOLS_TUNER_MAX_POOL_SIZE", 50, minimum=1),
            "MAX_OVERFLOW": env_int(environ, "CONNECTION_POOLS_TUNER_MAX_OVERFLOW", 100, minimum=0),
        },
        # Cross-process statistics (docs/api.md): Redis key prefix, publish interval, snapshot TTL.
        "KEY_PREFIX": environ.get("CONNECTION_POOLS_KEY_PREFIX", "").strip() or "connection_pools",
        "PUBLISH_INTERVAL": env_float(environ, "CONNECTION_POOLS_PUBLISH_INTERVAL", 5.0, minimum=0.1),
        "SNAPSHOT_TTL": env_float(environ, "CONNECTION_POOLS_SNAPSHOT_TTL", 30.0, minimum=1.0),
        "HEALTH_CHECK_TIMEOUT": env_float(environ, "CONNECTION_POOLS_HEALTH_CHECK_TIMEOUT", 2.0, strict=True),
        "HEALTH_INTERVAL": env_float(environ, "CONNECTION_POOLS_HEALTH_INTERVAL", 10.0, minimum=1.0),
    }


def secret_key(environ: Environ | None = None, *, debug: bool) -> str:
    """``SECRET_KEY``: required outside DEBUG; a fixed development key otherwise."""
    environ = os.environ if environ is None else environ
    key = environ.get("SECRET_KEY", "")
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            "Environment variable SECRET_KEY is not set: it is required when DEBUG is off."
        )
    return "django-insecure-development-key-do-not-use-in-production"


def caches(redis: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``CACHES``: Django's cache framework on the Redis *cache* pool (django-redis).

    The pool is our instrumented redis-py pool (``connection_pools.backends.redis.pools``), so
    every setting reaches it and its statistics are recorded as ``redis_cache``.
    """
    cache = redis["cache"]
    blocking = bool(cache["blocking"])
    pool_kwargs: dict[str, Any] = {
        "pool_name": "cache",
        "max_connections": cache["max_connections"],
        "socket_keepalive": cache["socket_keepalive"],
        "retry_on_timeout": cache["retry_on_timeout"],
        "health_check_interval": cache["health_check_interval"],
    }
    if blocking:
        pool_kwargs["timeout"] = cache["blocking_timeout"]
    pool_class = "InstrumentedBlockingConnectionPool" if blocking else "InstrumentedConnectionPool"
    return {
        "default": {
            "BACKEND": "connection_pools.backends.redis.cache.RedisCache",
            "LOCATION": cache["url"],
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "CONNECTION_POOL_CLASS": f"connection_pools.backends.redis.pools.{pool_class}",
                "CONNECTION_POOL_KWARGS": pool_kwargs,
                "SOCKET_CONNECT_TIMEOUT": cache["socket_connect_timeout"],
                "SOCKET_TIMEOUT": cache["socket_timeout"],
                # A cache outage degrades to misses instead of 500s, reported once per interval.
                "IGNORE_EXCEPTIONS": True,
                "OUTAGE_LOG_INTERVAL": 60,
            },
        }
    }
