"""Environment variables -> ``DATABASES``, ``CACHES`` and ``CONNECTION_POOLS``.

Every reader validates its variable and raises one ``ImproperlyConfigured`` that
names the variable, the offending value (with any password masked) and what is
accepted, so a typo stops start-up with a sentence rather than a traceback from
deep inside a driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as redis_parse_url

from .. import conf
from ..core.masking import mask_text
from ..core.typed_numbers import decimal_number, whole_number
from . import DATABASE_POOL_DEFAULTS, REDIS_POOL_DEFAULTS
from .cache_options import instrumented_options
from .pool_options import RELEASE_MODES

ENGINE = "connection_pools.backends.postgresql"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
REDIS_SCHEMES = ("redis", "rediss", "unix")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_APPLICATION_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,16}")
POOLERS = ("pgbouncer",)
MAX_PGBOUNCERS = 16
_SHOWN_LENGTH = 120  # longer values are cut in messages: a sentence, not a page
ENCODING_HINT = ("a user name or password holding /, ?, #, @ or : must be percent-encoded "
                 "(%2F, %3F, %23, %40, %3A)")

Environ = Mapping[str, str]


def _shown(value: str) -> str:
    """How a bad value is quoted in a message: any password masked (user-info or ``password=`` in
    the query), cut to a readable length."""
    masked = mask_text(value)
    if len(masked) > _SHOWN_LENGTH:
        masked = masked[: _SHOWN_LENGTH - 3] + "..."
    return repr(masked)


def _bad(name: str, value: str, accepted: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={_shown(value)} is invalid: expected {accepted}.")


def env_int(environ: Environ, name: str, default: int, *, minimum: int = 0, maximum: int) -> int:
    """Read a whole number from ``minimum`` to ``maximum``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    accepted = f"a whole number >= {minimum} and <= {maximum}"
    value = whole_number(raw)  # ASCII digits only (core/typed_numbers.py says why)
    if value is None or not minimum <= value <= maximum:
        raise _bad(name, raw, accepted)
    return value


def env_float(environ: Environ, name: str, default: float, *, minimum: float = 0.0, maximum: float,
              strict: bool = False) -> float:
    """Read a number of seconds from ``minimum`` (excluded when ``strict``) to ``maximum``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    accepted = f"a number of seconds {'>' if strict else '>='} {minimum:g} and <= {maximum:g}"
    value = decimal_number(raw)  # ASCII, finite (core/typed_numbers.py)
    if value is None or value < minimum or (strict and value == minimum) or value > maximum:
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


def env_choice(environ: Environ, name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read one of ``choices`` (case-insensitive); returns it spelled as in ``choices``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    by_folded = {choice.casefold(): choice for choice in choices}
    if raw.casefold() not in by_folded:
        raise _bad(name, raw, "one of " + ", ".join(choices))
    return by_folded[raw.casefold()]


def env_list(environ: Environ, name: str, default: str = "") -> list[str]:
    """Read a comma-separated list; blanks are dropped."""
    return [item.strip() for item in environ.get(name, default).split(",") if item.strip()]


def _unencoded_credentials(url: str) -> bool:
    """True when an ``@`` lies beyond where ``urlsplit`` ends the netloc: the user name or
    password holds a raw ``/``, ``?`` or ``#``, and the URL would be misread (host, port, name)."""
    after_scheme = url.split("://", 1)[1] if "://" in url else url
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "@" in after_scheme
    return "@" in after_scheme and "@" not in netloc


def parse_database_url(name: str, url: str) -> dict[str, Any]:
    """Parse one PostgreSQL URL into a ``DATABASES`` entry using our engine."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in POSTGRES_SCHEMES:
        raise _bad(name, url, "a PostgreSQL URL such as postgres://user:password@host:5432/dbname "
                   f"(scheme one of {', '.join(POSTGRES_SCHEMES)})")
    if _unencoded_credentials(url):
        raise _bad(name, url, f"a well-formed URL postgres://user:password@host:port/dbname: {ENCODING_HINT}")
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
    if _unencoded_credentials(url):
        raise _bad(name, url, f"a well-formed URL redis://[:password@]host:port/db: {ENCODING_HINT}")
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
    if db and not (db.isascii() and db.isdigit()):
        raise _bad(name, url, "a Redis URL whose path is a database number, e.g. redis://host:6379/0")
    if "max_connections" in parts.query:
        # Options in the URL win over the settings: this one would bypass REDIS_POOL_SIZE's bound.
        raise _bad(name, url, "a Redis URL without max_connections (set REDIS_POOL_SIZE or REDIS_MAX_CONNECTIONS)")
    unreadable = redis_url_error(url)
    if unreadable is not None:
        raise _bad(name, url, f"a Redis URL whose options redis-py can read ({unreadable})")
    return url


def redis_url_error(url: str) -> str | None:
    """What redis-py says of ``url`` when it cannot build a pool from it (a bad scheme, port or
    option: ``?db=x``, ``?socket_timeout=abc``), or None. redis-py reads the options only when it
    connects: a value it cannot read would pass start-up and fail every request later."""
    try:
        redis_parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ValueError as exc:
        return mask_text(str(exc))
    return None


def replica_urls(environ: Environ) -> list[str]:
    """``DATABASE_REPLICA_URLS``: at most ``MAX_REPLICAS`` comma-separated PostgreSQL URLs."""
    urls = env_list(environ, "DATABASE_REPLICA_URLS")
    if any("://" not in url for url in urls):
        # A piece without a scheme is most likely the tail of a password that holds a comma:
        # quoting it (or its neighbour) would print part of that password.
        raise ImproperlyConfigured(
            "Environment variable DATABASE_REPLICA_URLS is invalid: expected comma-separated URLs "
            "postgres://user:password@host:port/dbname, and one of its items is not a URL "
            "(a comma in a password must be percent-encoded as %2C).")
    if len(urls) > conf.MAX_REPLICAS:
        raise ImproperlyConfigured(
            f"Environment variable DATABASE_REPLICA_URLS is invalid: expected at most {conf.MAX_REPLICAS} "
            f"replica URLs, got {len(urls)}.")
    return urls


def database_pool_settings(environ: Environ) -> dict[str, Any]:
    """The guide's six PostgreSQL pool settings (and ours) from ``DATABASE_POOL_*``."""
    d = DATABASE_POOL_DEFAULTS
    most = conf.MAX_POOL_CONNECTIONS
    return {
        "pool_size": env_int(environ, "DATABASE_POOL_SIZE", d["pool_size"], minimum=1, maximum=most),
        "max_overflow": env_int(environ, "DATABASE_POOL_OVERFLOW", d["max_overflow"], minimum=0, maximum=most),
        "pool_timeout": env_float(environ, "DATABASE_POOL_TIMEOUT", d["pool_timeout"], strict=True,
                                  maximum=conf.MAX_WAIT_SECONDS),
        "pool_recycle": env_float(environ, "DATABASE_POOL_RECYCLE", d["pool_recycle"], strict=True,
                                  maximum=conf.MAX_LIFETIME_SECONDS),
        "pool_pre_ping": env_bool(environ, "DATABASE_POOL_PRE_PING", d["pool_pre_ping"]),
        "pool_use_lifo": env_bool(environ, "DATABASE_POOL_USE_LIFO", d["pool_use_lifo"]),
        "pool_pre_ping_window": env_float(environ, "DATABASE_POOL_PRE_PING_WINDOW", d["pool_pre_ping_window"],
                                          maximum=conf.MAX_WAIT_SECONDS),
        "release": env_choice(environ, "DATABASE_POOL_RELEASE", d["release"], RELEASE_MODES),
    }


def databases(environ: Environ | None = None) -> dict[str, dict[str, Any]]:
    """``DATABASES`` from ``DATABASE_URL`` and ``DATABASE_REPLICA_URLS``.

    The primary is ``default``; replicas are ``replica1``, ``replica2``, ... and
    mirror ``default`` in tests. With ``DATABASE_POOL_ENABLED=false`` the aliases
    use persistent connections (``DATABASE_CONN_MAX_AGE``) instead of a pool.
    """
    environ = os.environ if environ is None else environ
    pooled = env_bool(environ, "DATABASE_POOL_ENABLED", True)
    conn_max_age = env_int(environ, "DATABASE_CONN_MAX_AGE", 0, minimum=0, maximum=int(conf.MAX_LIFETIME_SECONDS))
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

    primary = environ.get("DATABASE_URL", "").strip()
    if not primary:
        raise ImproperlyConfigured(
            "Environment variable DATABASE_URL is not set: expected the primary's PostgreSQL URL, such as "
            "postgres://user:password@host:5432/dbname.")
    result = {"default": alias_config("DATABASE_URL", primary)}
    if pooler(environ) == "pgbouncer":
        # Transaction pooling: a server-side (WITH HOLD) cursor and a prepared statement live on one
        # server connection, and the next transaction may run on another.
        result["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        result["default"]["OPTIONS"]["prepare_threshold"] = None
    urls = replica_urls(environ)
    for alias, url in zip(replica_aliases(environ), urls, strict=True):
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
    most = conf.MAX_REDIS_CONNECTIONS
    wait = conf.MAX_WAIT_SECONDS
    # Unset: no such pool (the main one then serves the cache's Redis, when there is one: conf.derived).
    main["url"] = parse_redis_url("REDIS_URL", raw) if (raw := environ.get("REDIS_URL", "").strip()) else None
    cache["url"] = (parse_redis_url("REDIS_CACHE_URL", raw) if (raw := environ.get("REDIS_CACHE_URL", "").strip())
                    else None)
    main["max_connections"] = env_int(environ, "REDIS_POOL_SIZE", main["max_connections"], minimum=1, maximum=most)
    cache["max_connections"] = env_int(environ, "REDIS_MAX_CONNECTIONS", cache["max_connections"], minimum=1,
                                       maximum=most)
    # Settings both pools share; see docs/redis-pools.md.
    for pool in (main, cache):
        pool["blocking"] = env_bool(environ, "REDIS_POOL_BLOCKING", pool["blocking"])
        pool["blocking_timeout"] = env_float(environ, "REDIS_POOL_TIMEOUT", pool["blocking_timeout"], strict=True,
                                             maximum=wait)
        pool["socket_timeout"] = env_float(environ, "REDIS_SOCKET_TIMEOUT", pool["socket_timeout"], strict=True,
                                           maximum=wait)
        pool["socket_connect_timeout"] = env_float(
            environ, "REDIS_SOCKET_CONNECT_TIMEOUT", pool["socket_connect_timeout"], strict=True, maximum=wait)
        pool["health_check_interval"] = env_int(
            environ, "REDIS_HEALTH_CHECK_INTERVAL", pool["health_check_interval"], minimum=0, maximum=int(wait))
    return {"main": main, "cache": cache}


def pooler(environ: Environ) -> str | None:
    """``DATABASE_POOLER``: ``pgbouncer`` when ``DATABASE_URL`` points at a PgBouncer in transaction mode."""
    raw = environ.get("DATABASE_POOLER", "").strip()
    if not raw or raw.casefold() == "none":
        return None
    return env_choice(environ, "DATABASE_POOLER", "", (*POOLERS, "none")) or None


def pgbouncer_admin_urls(environ: Environ) -> list[str]:
    """``PGBOUNCER_ADMIN_URL``: comma-separated URLs of PgBouncer admin consoles (database ``pgbouncer``)."""
    urls = env_list(environ, "PGBOUNCER_ADMIN_URL")
    if len(urls) > MAX_PGBOUNCERS:
        raise ImproperlyConfigured(
            f"Environment variable PGBOUNCER_ADMIN_URL is invalid: expected at most {MAX_PGBOUNCERS} URLs, "
            f"got {len(urls)}.")
    for url in urls:
        if "://" not in url:
            raise ImproperlyConfigured(
                "Environment variable PGBOUNCER_ADMIN_URL is invalid: expected comma-separated URLs "
                "postgres://user:password@host:port/pgbouncer, and one of its items is not a URL "
                "(a comma in a password must be percent-encoded as %2C).")
        config = parse_database_url("PGBOUNCER_ADMIN_URL", url)
        if config["NAME"] != "pgbouncer":
            raise _bad("PGBOUNCER_ADMIN_URL", url, "the URL of PgBouncer's admin console, whose database is "
                       "'pgbouncer': postgres://user:password@host:port/pgbouncer")
    return urls


def census_settings(environ: Environ) -> dict[str, Any]:
    """The server census from ``CONNECTION_POOLS_CENSUS_*`` (docs/server-tier.md)."""
    census = dict(conf.DEFAULTS["CENSUS"])
    census.update(
        ENABLED=env_bool(environ, "CONNECTION_POOLS_CENSUS", census["ENABLED"]),
        INTERVAL=env_float(environ, "CONNECTION_POOLS_CENSUS_INTERVAL", census["INTERVAL"], minimum=0.5,
                           maximum=conf.MAX_WAIT_SECONDS),
        TIMEOUT=env_float(environ, "CONNECTION_POOLS_CENSUS_TIMEOUT", census["TIMEOUT"], strict=True, maximum=60.0),
        QUERY_TEXT_LENGTH=env_int(environ, "CONNECTION_POOLS_CENSUS_QUERY_TEXT", census["QUERY_TEXT_LENGTH"],
                                  minimum=0, maximum=10000),
        IDLE_IN_TRANSACTION_SECONDS=env_float(environ, "CONNECTION_POOLS_CENSUS_IDLE_IN_TRANSACTION",
                                              census["IDLE_IN_TRANSACTION_SECONDS"], strict=True, maximum=86400.0),
    )
    return census


def application_name(environ: Environ) -> dict[str, Any]:
    """``CONNECTION_POOLS_APPLICATION_NAME`` (switch) and ``_PREFIX``: the attribution of every connection."""
    prefix = environ.get("CONNECTION_POOLS_APPLICATION_NAME_PREFIX", "").strip() or "django"
    if not _APPLICATION_PREFIX.fullmatch(prefix):
        raise _bad("CONNECTION_POOLS_APPLICATION_NAME_PREFIX", prefix, "1 to 16 letters, digits, '_', '.' or '-'")
    return {"ENABLED": env_bool(environ, "CONNECTION_POOLS_APPLICATION_NAME", True), "PREFIX": prefix}


def replica_aliases(environ: Environ) -> list[str]:
    """``replica1``, ``replica2``, ...: one alias per ``DATABASE_REPLICA_URLS`` entry."""
    return [f"replica{index}" for index in range(1, len(replica_urls(environ)) + 1)]


def replica_settings(environ: Environ) -> dict[str, Any]:
    """Read-replica routing settings from ``DATABASE_REPLICA_*`` (see docs/read-replicas.md)."""
    wait = conf.MAX_WAIT_SECONDS
    return {
        "ALIASES": replica_aliases(environ),
        "BALANCING": env_choice(environ, "DATABASE_REPLICA_BALANCING", "round_robin", ("round_robin", "least_busy")),
        "MAX_LAG_SECONDS": env_float(environ, "DATABASE_REPLICA_MAX_LAG", 30.0, maximum=86400.0),
        "LAG_SAMPLE_INTERVAL": env_float(environ, "DATABASE_REPLICA_LAG_INTERVAL", 2.0, strict=True, maximum=wait),
        "COOLDOWN_SECONDS": env_float(environ, "DATABASE_REPLICA_COOLDOWN", 10.0, maximum=wait),
        "PIN_SECONDS": env_float(environ, "DATABASE_REPLICA_PIN_SECONDS", 5.0, maximum=wait),
    }


def tuner_settings(environ: Environ) -> dict[str, Any]:
    """The auto-tuner's switches and bounds from ``CONNECTION_POOLS_TUNER_*``."""
    most = conf.MAX_POOL_CONNECTIONS
    tuner = {
        "ENABLED": env_bool(environ, "CONNECTION_POOLS_TUNER", False),
        "ALLOW_APPLY": env_bool(environ, "CONNECTION_POOLS_TUNER_ALLOW_APPLY", False),
        "INTERVAL": env_float(environ, "CONNECTION_POOLS_TUNER_INTERVAL", 60.0, minimum=1.0, maximum=86400.0),
        "MIN_POOL_SIZE": env_int(environ, "CONNECTION_POOLS_TUNER_MIN_POOL_SIZE", 1, minimum=1, maximum=most),
        "MAX_POOL_SIZE": env_int(environ, "CONNECTION_POOLS_TUNER_MAX_POOL_SIZE", 50, minimum=1, maximum=most),
        "MAX_OVERFLOW": env_int(environ, "CONNECTION_POOLS_TUNER_MAX_OVERFLOW", 100, minimum=0, maximum=most),
    }
    if tuner["MIN_POOL_SIZE"] > tuner["MAX_POOL_SIZE"]:
        raise ImproperlyConfigured(
            f"Environment variable CONNECTION_POOLS_TUNER_MIN_POOL_SIZE={tuner['MIN_POOL_SIZE']} is invalid: "
            f"expected at most CONNECTION_POOLS_TUNER_MAX_POOL_SIZE={tuner['MAX_POOL_SIZE']}.")
    return tuner


def key_prefix(environ: Environ) -> str | None:
    """``CONNECTION_POOLS_KEY_PREFIX``: the Redis key prefix of the shared statistics (None when unset:
    derived from the primary database, unique per project; ``conf.derived.namespace``)."""
    raw = environ.get("CONNECTION_POOLS_KEY_PREFIX", "").strip()
    if not raw:
        return None
    if not _KEY_PREFIX.fullmatch(raw):
        raise _bad("CONNECTION_POOLS_KEY_PREFIX", raw, "1 to 100 letters, digits, '_', '.', ':' or '-'")
    return raw


def processes(environ: Environ) -> int | None:
    """``CONNECTION_POOLS_PROCESSES``: how many processes open the pools at once (None: unknown)."""
    raw = environ.get("CONNECTION_POOLS_PROCESSES", "").strip()
    if not raw:
        return None
    return env_int(environ, "CONNECTION_POOLS_PROCESSES", 1, minimum=1, maximum=conf.MAX_PROCESSES)


def connection_pools(environ: Environ | None = None) -> dict[str, Any]:
    """The ``CONNECTION_POOLS`` settings dict that the env vars determine."""
    environ = os.environ if environ is None else environ
    wait = conf.MAX_WAIT_SECONDS
    settings = {
        "DATABASE_POOL": database_pool_settings(environ),
        "REDIS": redis_pools(environ),
        "WARM_ON_STARTUP": env_bool(environ, "CONNECTION_POOLS_WARM", False),
        "REPLICAS": replica_settings(environ),
        # Dashboard history: seconds between points, and seconds kept.
        "HISTORY_INTERVAL": env_float(environ, "CONNECTION_POOLS_HISTORY_INTERVAL", 5.0, minimum=0.5, maximum=wait),
        "HISTORY_SECONDS": env_float(environ, "CONNECTION_POOLS_HISTORY_SECONDS", 3600.0, minimum=60.0,
                                     maximum=conf.MAX_LIFETIME_SECONDS),
        "TUNER": tuner_settings(environ),
        # Cross-process statistics (docs/api.md): Redis key prefix, publish interval, snapshot TTL.
        "KEY_PREFIX": key_prefix(environ),
        "PUBLISH_INTERVAL": env_float(environ, "CONNECTION_POOLS_PUBLISH_INTERVAL", 5.0, minimum=0.1, maximum=wait),
        "SNAPSHOT_TTL": env_float(environ, "CONNECTION_POOLS_SNAPSHOT_TTL", 30.0, minimum=1.0, maximum=86400.0),
        "HEALTH_CHECK_TIMEOUT": env_float(environ, "CONNECTION_POOLS_HEALTH_CHECK_TIMEOUT", 2.0, strict=True,
                                          maximum=60.0),
        "HEALTH_INTERVAL": env_float(environ, "CONNECTION_POOLS_HEALTH_INTERVAL", 10.0, minimum=1.0, maximum=3600.0),
        "PROCESSES": processes(environ),
        "APPLICATION_NAME": application_name(environ),
        "POOLERS": {"default": found} if (found := pooler(environ)) else {},
        "CENSUS": census_settings(environ),
        "PGBOUNCER": {**conf.DEFAULTS["PGBOUNCER"], "ADMIN_URLS": tuple(pgbouncer_admin_urls(environ))},
        "ASGI": env_bool(environ, "CONNECTION_POOLS_ASGI", False),
    }
    _check_pairs(settings)
    return settings


def _check_pairs(settings: dict[str, Any]) -> None:
    """Values that are fine alone but not together."""
    pool = settings["DATABASE_POOL"]
    if pool["pool_size"] + pool["max_overflow"] > conf.MAX_POOL_CONNECTIONS:
        raise ImproperlyConfigured(
            f"Environment variable DATABASE_POOL_OVERFLOW={pool['max_overflow']} is invalid: with "
            f"DATABASE_POOL_SIZE={pool['pool_size']} expected at most "
            f"{conf.MAX_POOL_CONNECTIONS - pool['pool_size']} (at most {conf.MAX_POOL_CONNECTIONS} connections per "
            "pool in all).")
    if settings["SNAPSHOT_TTL"] <= settings["PUBLISH_INTERVAL"]:
        # Snapshots would expire before their process publishes again: processes blink in and out.
        raise ImproperlyConfigured(
            f"Environment variable CONNECTION_POOLS_SNAPSHOT_TTL={settings['SNAPSHOT_TTL']:g} is invalid: "
            f"expected more than CONNECTION_POOLS_PUBLISH_INTERVAL={settings['PUBLISH_INTERVAL']:g}.")
    points = settings["HISTORY_SECONDS"] / settings["HISTORY_INTERVAL"]
    if points > conf.MAX_HISTORY_POINTS:
        raise ImproperlyConfigured(
            f"Environment variable CONNECTION_POOLS_HISTORY_SECONDS={settings['HISTORY_SECONDS']:g} is invalid: "
            f"with CONNECTION_POOLS_HISTORY_INTERVAL={settings['HISTORY_INTERVAL']:g} it keeps {points:.0f} "
            f"points per pool, expected at most {conf.MAX_HISTORY_POINTS} (lengthen the interval).")


def allowed_hosts(environ: Environ | None = None) -> list[str]:
    """``ALLOWED_HOSTS``: host names (``example.com``, ``.example.com``, ``*``, ``[::1]``), no URLs or ports."""
    environ = os.environ if environ is None else environ
    hosts = env_list(environ, "ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
    for host in hosts:
        # Django compares the Host header without its port: "example.com:8000" or a URL never matches.
        bare = host[host.index("]") + 1:] if host.startswith("[") and "]" in host else host
        if "/" in host or ":" in bare or " " in host or len(host) > 253:
            raise _bad("ALLOWED_HOSTS", host, "comma-separated host names such as example.com, .example.com or "
                       "[::1] (IPv6 in brackets), without scheme or port")
    return hosts


def log_level(environ: Environ | None = None) -> str:
    """``CONNECTION_POOLS_LOG_LEVEL``: the level of the ``connection_pools`` loggers."""
    environ = os.environ if environ is None else environ
    return env_choice(environ, "CONNECTION_POOLS_LOG_LEVEL", "INFO", LOG_LEVELS)


def secret_key(environ: Environ | None = None, *, debug: bool) -> str:
    """``SECRET_KEY``: required outside DEBUG; a fixed development key otherwise; never blank."""
    environ = os.environ if environ is None else environ
    key = environ.get("SECRET_KEY", "")
    if key and not key.strip():
        raise ImproperlyConfigured(
            "Environment variable SECRET_KEY is blank (only whitespace): set it to a long random string.")
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            "Environment variable SECRET_KEY is not set: it is required when DEBUG is off."
        )
    return "django-insecure-development-key-do-not-use-in-production"


def caches(redis: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``CACHES``: Django's cache framework on the Redis *cache* pool (django-redis), or Django's local
    memory cache when no ``REDIS_CACHE_URL`` is set.

    The pool is our instrumented redis-py pool (``connection_pools.backends.redis.pools``), so
    every setting reaches it and its statistics are recorded as ``redis_cache``.
    """
    cache = redis.get("cache") or {}
    if not cache.get("url"):
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {
            "BACKEND": "connection_pools.backends.redis.cache.RedisCache",
            "LOCATION": cache["url"],
            "OPTIONS": instrumented_options(cache),
        }
    }
