"""Counting persistent connections (``CONN_MAX_AGE > 0`` and no pool, e.g. behind PgBouncer).

Django keeps one connection per thread and alias, and closes it at a request boundary
once it is older than ``CONN_MAX_AGE``. We follow it with Django's signals, into one
:class:`PersistentTracker` per alias (its counters are read by
:mod:`connection_pools.sources.persistent`):

* ``connection_created`` -> ``connections_created``; the connection is tracked;
* a connection used by a request is "in use" (``active``, ``checkouts``, hold time) until
  the request ends: one opened during a request -- on whatever thread, as under ASGI where
  the ORM runs on per-request threads -- is booked to the request's context
  (:mod:`connection_pools.core.context`) and released when that context ends; one kept from
  an earlier request is picked up at ``request_started`` and released at ``request_finished``
  on its thread (Django reuses a persistent connection only on the thread that opened it);
* a close (our engine reports it; other engines are noticed at ``request_finished``)
  -> ``connections_closed``, and ``recycled`` when it was closed for age.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from django.core.signals import request_finished, request_started
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from ..conf import serving
from ..conf.pool_options import is_pooled
from ..core.context import RequestContext, current_request
from ..core.counters import PoolCounters
from ..core.runtime import runtime
from ..core.snapshots import Gauges


class _Tracked:
    __slots__ = ("alias", "connection", "created", "in_use_since", "thread")

    def __init__(self, alias: str, connection: Any) -> None:
        self.alias = alias
        self.created = time.monotonic()
        self.in_use_since: float | None = None
        self.connection = connection  # the DB-API connection object we saw created
        self.thread = threading.get_ident()


class PersistentTracker:
    """The persistent connections of one alias in this process, and their counters."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.counters = PoolCounters()

    def gauges(self) -> Gauges:
        """``open`` connections, ``active`` (in use by a request now) and their ages."""
        now = time.monotonic()
        with _lock:
            mine = [t for t in _tracked.values() if t.alias == self.alias]
        ages = [now - t.created for t in mine]
        return Gauges(open=len(mine), active=sum(1 for t in mine if t.in_use_since is not None),
                      oldest_age_seconds=max(ages, default=0.0),
                      mean_age_seconds=sum(ages) / len(ages) if ages else 0.0)


_lock = threading.Lock()
_tracked: weakref.WeakKeyDictionary[Any, _Tracked] = weakref.WeakKeyDictionary()
_trackers: dict[str, PersistentTracker] = {}
_warned = {"asgi": False}
logger = logging.getLogger("connection_pools.persistent")


def tracker(alias: str) -> PersistentTracker:
    """The tracker of ``alias`` (created on first use)."""
    found = _trackers.get(alias)
    if found is None:
        with _lock:
            found = _trackers.setdefault(alias, PersistentTracker(alias))
    return found


def forget() -> None:
    """Drop every tracker (tests, after a fork)."""
    with _lock:
        _trackers.clear()
        _tracked.clear()
        _warned["asgi"] = False


runtime.register("backends.persistent", forget, after_fork=True)


def is_persistent(wrapper: Any) -> bool:
    """True for an alias with persistent connections (``CONN_MAX_AGE`` > 0 or None) and no pool."""
    settings_dict = wrapper.settings_dict
    max_age = settings_dict.get("CONN_MAX_AGE", 0)
    return (max_age is None or max_age > 0) and not is_pooled(settings_dict)


def _start_use(wrapper: Any, record: _Tracked) -> None:
    if record.in_use_since is None:
        record.in_use_since = time.monotonic()
        tracker(wrapper.alias).counters.checkout(0.0)


def _end_use(wrapper: Any, record: _Tracked) -> None:
    if record.in_use_since is not None:
        tracker(wrapper.alias).counters.checkin(time.monotonic() - record.in_use_since)
        record.in_use_since = None


@receiver(connection_created, dispatch_uid="connection_pools.persistent.created")
def _created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if not is_persistent(connection):
        return
    record = _Tracked(connection.alias, connection.connection)
    with _lock:
        previous = _tracked.get(connection)
        _tracked[connection] = record
    if previous is not None:
        # Closed behind our back (an engine without our close hook): count it now.
        _closed_record(connection, previous)
    tracker(connection.alias).counters.incr("connections_created")
    context = current_request.get()
    if context is not None:
        _start_use(connection, record)
        context.at_end(_ender(connection, record))
        if serving.is_asgi() and not _warned["asgi"]:
            _warned["asgi"] = True  # once per process: the statistics show the rest
            logger.warning("persistent connections under ASGI (connection_pools.E301 silenced): each request "
                           "opens a %s connection on its own thread and leaves it open; connections_created "
                           "and the open count (size) grow with the requests", connection.alias)


def _ender(wrapper: Any, record: _Tracked) -> Any:
    def end(context: RequestContext) -> None:
        _end_use(wrapper, record)

    return end


def connection_closing(wrapper: Any) -> None:
    """Called by our engine just before it closes a non-pooled connection."""
    with _lock:
        record = _tracked.pop(wrapper, None)
    if record is not None:
        _closed_record(wrapper, record)


def _closed_record(wrapper: Any, record: _Tracked) -> None:
    counters = tracker(wrapper.alias).counters
    _end_use(wrapper, record)
    counters.incr("connections_closed")
    max_age = wrapper.settings_dict.get("CONN_MAX_AGE")
    if max_age and time.monotonic() - record.created >= max_age:
        counters.incr("recycled")


def _mine() -> list[tuple[Any, _Tracked]]:
    """The tracked connections of the calling thread (Django's connections are per thread)."""
    if not _tracked:  # pooled aliases only: nothing to look at, no lock to take
        return []
    me = threading.get_ident()
    with _lock:
        return [(wrapper, record) for wrapper, record in _tracked.items() if record.thread == me]


@receiver(request_started, dispatch_uid="connection_pools.persistent.request_started")
def _request_started(**kwargs: Any) -> None:
    # Runs after Django's close_old_connections: what is still open on this thread is reused by this request.
    for wrapper, record in _mine():
        if wrapper.connection is record.connection:
            _start_use(wrapper, record)


@receiver(request_finished, dispatch_uid="connection_pools.persistent.request_finished")
def _request_finished(**kwargs: Any) -> None:
    for wrapper, record in _mine():
        if wrapper.connection is not record.connection:
            connection_closing(wrapper)  # closed by another engine's close_old_connections
        else:
            _end_use(wrapper, record)
