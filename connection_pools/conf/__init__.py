"""The app's settings: one namespaced dict, ``settings.CONNECTION_POOLS``.

Defaults live in :data:`DEFAULTS`; user values are merged over them lazily (one
level deep for nested dicts) and the merged result is cached until Django's
``setting_changed`` signal says the setting moved, so ``override_settings`` works
in tests. Nothing is ever written back into ``django.conf.settings``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import derived

#: The guide's six PostgreSQL pool settings, with the guide's defaults.
DATABASE_POOL_DEFAULTS: dict[str, Any] = {
    "pool_size": 10,  # connections kept open and ready (psycopg min_size)
    "max_overflow": 20,  # extra connections under load (max_size = size + overflow)
    "pool_timeout": 30.0,  # seconds a checkout may wait before it fails
    "pool_recycle": 3600.0,  # seconds a connection may live (psycopg max_lifetime)
    "pool_pre_ping": True,  # test a connection before handing it out
    "pool_use_lifo": True,  # hand out the most recently returned connection first
    # Ours: a connection proved alive less than this many seconds ago is handed out without
    # a ping (0: ping on every checkout, as the guide says).
    "pool_pre_ping_window": 0.0,
    # Ours: when a checked-out connection goes back to its pool. "request": at the end of the request
    # (Django's pool); "transaction": as soon as no transaction, atomic() block or open cursor holds it.
    "release": "request",
}

#: The guide's Redis pool settings. ``cache`` is the larger, high-throughput pool. A ``url`` left
#: None comes from the project's ``CACHES`` (:mod:`.derived`); a pool without one is not configured.
REDIS_POOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "main": {
        "url": None,
        "max_connections": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 30,
        "socket_connect_timeout": 2.0,
        "socket_timeout": 2.0,
        # A blocking pool queues a burst beyond max_connections instead of failing.
        "blocking": True,
        "blocking_timeout": 5.0,
        # Connections opened per process when warming (WARM_ON_STARTUP).
        "warm_connections": 2,
    },
    "cache": {
        "url": None,
        "max_connections": 50,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 30,
        "socket_connect_timeout": 2.0,
        "socket_timeout": 2.0,
        "blocking": True,
        "blocking_timeout": 5.0,
        "warm_connections": 4,
    },
}

#: Upper bounds of what we accept (env vars and system checks). A value beyond them is a typo or an
#: attack, and some would hang start-up: a blocking Redis pool fills one queue slot per connection.
MAX_POOL_CONNECTIONS = 1000  # pool_size and max_overflow of one alias in one process; the tuner's bounds
MAX_REDIS_CONNECTIONS = 10000  # max_connections of one Redis pool (Redis's own default maxclients)
MAX_WAIT_SECONDS = 3600.0  # timeouts, intervals, cool-downs, pins
MAX_LIFETIME_SECONDS = 7 * 86400.0  # pool_recycle, CONN_MAX_AGE
MAX_HISTORY_POINTS = 10000  # HISTORY_SECONDS / HISTORY_INTERVAL: points kept per pool in Redis
MAX_PROCESSES = 10000  # PROCESSES
MAX_REPLICAS = 32  # aliases in DATABASE_REPLICA_URLS

DEFAULTS: dict[str, Any] = {
    # Defaults for every PostgreSQL alias that uses our engine; an alias may
    # override any key in DATABASES[alias]["OPTIONS"]["pool"].
    "DATABASE_POOL": DATABASE_POOL_DEFAULTS,
    # Redis pools by name ("main", "cache").
    "REDIS": REDIS_POOL_DEFAULTS,
    # Open every pool and wait for pool_size connections when the app starts.
    "WARM_ON_STARTUP": False,
    # A connection held longer than this (seconds) is logged and counted.
    "LONG_HOLD_SECONDS": 10.0,
    # Seconds sent in Retry-After when a checkout times out (HTTP 503).
    "RETRY_AFTER_SECONDS": 5,
    # Cross-process statistics: how often each process publishes its snapshot
    # to Redis, and how long a snapshot outlives a silent (dead) process.
    "PUBLISH_INTERVAL": 5.0,
    "SNAPSHOT_TTL": 30.0,
    # The namespace of every key in Redis. None: derived from the primary database the project serves
    # (unique per project, stable across its processes and restarts; :func:`.derived.namespace`).
    "KEY_PREFIX": None,
    # History kept in Redis for the dashboard charts.
    "HISTORY_INTERVAL": 5.0,
    "HISTORY_SECONDS": 3600.0,
    # Health checks: each one's timeout, and how often the job checks (one process per interval).
    "HEALTH_CHECK_TIMEOUT": 2.0,
    "HEALTH_INTERVAL": 10.0,
    # The cluster store: its own small Redis client for the shared statistics (URL None: the
    # main Redis pool's server), short timeouts, and how long to leave Redis alone after a failure.
    "STORE": {"URL": None, "SOCKET_TIMEOUT": 0.5, "MAX_CONNECTIONS": 4, "RETRY_AFTER": 2.0},
    # Pool sources: one module per kind, with discover() (its sources) and KIND (how every surface
    # shows it). A new kind of pool is one module and one line here (docs/api.md, "Adding a kind of
    # pool"); a dotted path to a discover() function or a callable works too.
    "SOURCES": (
        "connection_pools.sources.postgres",
        "connection_pools.sources.persistent",
        "connection_pools.sources.redis",
        "connection_pools.sources.census",
        "connection_pools.sources.pgbouncer",
    ),
    # The application_name every connection of the engine carries: "<prefix>[<alias>:<pid>@<host>]",
    # after the user's own OPTIONS["application_name"] when there is one (docs/server-tier.md).
    "APPLICATION_NAME": {"ENABLED": True, "PREFIX": "django"},
    # Poolers in front of the servers, by alias ("pgbouncer": transaction pooling; env DATABASE_POOLER
    # sets the primary's).
    "POOLERS": {},
    # The server census (pg_stat_activity + pg_settings of each server), sampled by one process of
    # the cluster every INTERVAL seconds over one dedicated connection; QUERY_TEXT_LENGTH > 0 shows
    # that many characters of the longest and blocked queries (it may hold personal data: off).
    "CENSUS": {
        "ENABLED": True,
        "INTERVAL": 5.0,
        "TIMEOUT": 2.0,
        "QUERY_TEXT_LENGTH": 0,
        "TOP_OWNERS": 20,
        # Recommendations: an idle-in-transaction session older than this (seconds).
        "IDLE_IN_TRANSACTION_SECONDS": 30.0,
        # A connection younger than this is not a leak yet (the pool may be adding it).
        "LEAK_GRACE_SECONDS": 5.0,
        # Other clients holding more than this share of the server's connections are named.
        "OTHERS_SHARE": 0.25,
    },
    # PgBouncer admin consoles (env PGBOUNCER_ADMIN_URL, comma-separated), read every INTERVAL s.
    "PGBOUNCER": {"ADMIN_URLS": (), "INTERVAL": 5.0, "TIMEOUT": 3.0},
    # How many processes open these pools at once (gunicorn workers of every server, Celery
    # workers, commands). None: count the processes publishing snapshots. The system check
    # connection_pools.W201 multiplies the pools' maximum by it (docs/postgresql-pools.md).
    "PROCESSES": None,
    # Served under ASGI (uvicorn workers...). True: say so, so that ``manage.py check`` refuses
    # persistent connections (connection_pools.E301) before deployment; a server that loads the
    # app through Django's ASGI handler is detected by itself (docs/asgi.md).
    "ASGI": False,
    # Read replicas.
    "REPLICAS": {
        "BALANCING": "round_robin",  # or "least_busy"
        "MAX_LAG_SECONDS": 30.0,  # a replica lagging more is skipped for reads
        "LAG_SAMPLE_INTERVAL": 2.0,  # seconds between lag samples (never per query)
        "COOLDOWN_SECONDS": 10.0,  # a failed replica stays out of rotation this long
        "PIN_SECONDS": 5.0,  # read-your-writes: a client reads from the primary this long after a write
        "PIN_COOKIE": "cp_pin",
        # The replica aliases of DATABASES (env: one per DATABASE_REPLICA_URLS entry); None: none.
        "ALIASES": None,
    },
    # Dynamic sizing (opt-in).
    "TUNER": {
        "ENABLED": False,  # run the auto-tuner in the background
        "ALLOW_APPLY": False,  # allow POST optimize / "Apply suggestions"
        "INTERVAL": 60.0,
        "MIN_POOL_SIZE": 1,
        "MAX_POOL_SIZE": 50,
        "MAX_OVERFLOW": 100,
    },
}


def _merge(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(defaults)
    for key, value in user.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def get_config() -> dict[str, Any]:
    """Return the effective ``CONNECTION_POOLS`` settings: defaults merged with the user's, and what the
    user left unset taken from the project's own ``CACHES`` and ``DATABASES`` (:mod:`.derived`)."""
    user = getattr(settings, "CONNECTION_POOLS", {}) or {}
    merged = _merge(DEFAULTS, user)
    caches = getattr(settings, "CACHES", {}) or {}
    if isinstance(merged.get("REDIS"), dict):
        merged["REDIS"] = derived.redis_urls(merged["REDIS"], caches)
    if not merged.get("KEY_PREFIX"):
        merged["KEY_PREFIX"] = derived.namespace(getattr(settings, "DATABASES", {}) or {})
    return merged


def get(key: str) -> Any:
    """Return one top-level key of the effective settings."""
    return get_config()[key]


#: The settings the effective configuration is made of.
_SOURCES = ("CONNECTION_POOLS", "CACHES", "DATABASES")


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in _SOURCES:
        get_config.cache_clear()
