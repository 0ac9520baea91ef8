"""Statistics for persistent connections (``CONN_MAX_AGE > 0`` and no pool, e.g. behind PgBouncer).

Django keeps one connection per thread and alias, and closes it at a request
boundary once it is older than ``CONN_MAX_AGE``. We follow it with Django's signals:

* ``connection_created`` -> ``connections_created``; the connection is tracked;
* ``request_started`` / ``request_finished`` -> a connection used by a request is
  "in use" (``active``, ``checkouts``, hold time) until the request ends;
* a close (our engine reports it; other engines are noticed at ``request_finished``)
  -> ``connections_closed``, and ``recycled`` when it was closed for age.

Registered as ``db_<alias>`` with kind ``persistent``; gauges: ``size`` (open
connections in this process), ``active`` (in use by a request now),
``oldest_age_seconds`` and ``mean_age_seconds`` of the open ones.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from django.core.signals import request_finished, request_started
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from .. import stats
from ..conf.pool_options import is_pooled, role_for


class _Tracked:
    __slots__ = ("alias", "connection", "created", "in_use_since", "thread")

    def __init__(self, alias: str, connection: Any) -> None:
        self.alias = alias
        self.created = time.monotonic()
        self.in_use_since: float | None = None
        self.connection = connection  # the DB-API connection object we saw created
        self.thread = threading.get_ident()


_lock = threading.Lock()
_tracked: weakref.WeakKeyDictionary[Any, _Tracked] = weakref.WeakKeyDictionary()
_local = threading.local()


def is_persistent(wrapper: Any) -> bool:
    """True for an alias with persistent connections (``CONN_MAX_AGE`` > 0 or None) and no pool."""
    settings_dict = wrapper.settings_dict
    max_age = settings_dict.get("CONN_MAX_AGE", 0)
    return (max_age is None or max_age > 0) and not is_pooled(settings_dict)


def stats_for(wrapper: Any) -> stats.PoolStats:
    """The ``db_<alias>`` stats of a persistent alias (registered on first use)."""
    alias = wrapper.alias
    name = stats.pool_name_for_alias(alias)
    pool_stats = stats.registry.get(name)
    if pool_stats is None:
        pool_stats = stats.registry.get_or_create(name, "persistent", alias=alias,
                                                  role=role_for(wrapper.settings_dict))
        settings_dict = wrapper.settings_dict
        pool_stats.gauge_source = lambda: _gauges(alias)
        pool_stats.config_source = lambda: {
            "conn_max_age": settings_dict.get("CONN_MAX_AGE"),
            "conn_health_checks": settings_dict.get("CONN_HEALTH_CHECKS", False),
        }
    return pool_stats


def _gauges(alias: str) -> dict[str, Any]:
    now = time.monotonic()
    with _lock:
        mine = [t for t in _tracked.values() if t.alias == alias]
    ages = [now - t.created for t in mine]
    return {
        stats.SIZE: len(mine),
        stats.ACTIVE: sum(1 for t in mine if t.in_use_since is not None),
        "oldest_age_seconds": max(ages, default=0.0),
        "mean_age_seconds": sum(ages) / len(ages) if ages else 0.0,
    }


def _start_use(wrapper: Any, record: _Tracked) -> None:
    if record.in_use_since is None:
        record.in_use_since = time.monotonic()
        stats_for(wrapper).record_checkout(0.0)


def _end_use(wrapper: Any, record: _Tracked) -> None:
    if record.in_use_since is not None:
        stats_for(wrapper).record_checkin(time.monotonic() - record.in_use_since)
        record.in_use_since = None


@receiver(connection_created, dispatch_uid="connection_pools.persistent.created")
def _created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if not is_persistent(connection):
        return
    record = _Tracked(connection.alias, connection.connection)
    with _lock:
        previous = _tracked.get(connection)
        _tracked[connection] = record
    pool_stats = stats_for(connection)
    if previous is not None:
        # Closed behind our back (an engine without our close hook): count it now.
        _closed_record(connection, previous)
    pool_stats.incr(stats.CONNECTIONS_CREATED)
    if getattr(_local, "in_request", False):
        _start_use(connection, record)


def connection_closing(wrapper: Any) -> None:
    """Called by our engine just before it closes a non-pooled connection."""
    with _lock:
        record = _tracked.pop(wrapper, None)
    if record is not None:
        _closed_record(wrapper, record)


def _closed_record(wrapper: Any, record: _Tracked) -> None:
    pool_stats = stats_for(wrapper)
    _end_use(wrapper, record)
    pool_stats.incr(stats.CONNECTIONS_CLOSED)
    max_age = wrapper.settings_dict.get("CONN_MAX_AGE")
    if max_age and time.monotonic() - record.created >= max_age:
        pool_stats.incr(stats.RECYCLED)


def _mine() -> list[tuple[Any, _Tracked]]:
    """The tracked connections of the calling thread (Django's connections are per thread)."""
    if not _tracked:  # pooled aliases only: nothing to look at, no lock to take
        return []
    me = threading.get_ident()
    with _lock:
        return [(wrapper, record) for wrapper, record in _tracked.items() if record.thread == me]


@receiver(request_started, dispatch_uid="connection_pools.persistent.request_started")
def _request_started(**kwargs: Any) -> None:
    # Runs after Django's close_old_connections: what is still open is reused by this request.
    _local.in_request = True
    for wrapper, record in _mine():
        if wrapper.connection is record.connection:
            _start_use(wrapper, record)


@receiver(request_finished, dispatch_uid="connection_pools.persistent.request_finished")
def _request_finished(**kwargs: Any) -> None:
    _local.in_request = False
    for wrapper, record in _mine():
        if wrapper.connection is not record.connection:
            connection_closing(wrapper)  # closed by another engine's close_old_connections
        else:
            _end_use(wrapper, record)
