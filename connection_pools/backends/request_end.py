"""Every pooled connection a request checked out goes back to its pool when the request ends,
whatever thread checked it out.

Django returns pooled connections at ``request_finished`` (``close_old_connections``), but
only the calling thread's: its connections are kept per thread. That is the request's own
thread under WSGI, and under ASGI the request's thread-sensitive executor thread, where
``sync_to_async`` (and the async ORM) run by default. A connection checked out on any other
thread -- ``sync_to_async(..., thread_sensitive=False)``, a thread pool of the view's -- would
stay checked out, outside the pool, for as long as that thread lives.

So each connect made while a request context is active is noted on the context
(:meth:`~connection_pools.core.context.RequestContext.opened`), and when the request ends the
connections of *other* threads are given back (``close()`` with Django's thread-sharing
switch, as Django's own ``close_old_connections`` would have done on their thread):

* under WSGI when the middleware finishes (it runs on the request's thread);
* under ASGI at ``request_finished``, which Django sends on the request's thread-sensitive
  thread; the middleware (in the event loop, where a ``close()`` is not allowed) leaves the
  context for it, keyed by the request's asgiref ``ThreadSensitiveContext``.

Only idle connections are taken back: not inside ``atomic()``, no transaction or command in
progress on them. One that is busy -- its thread is already working for another request, which
reuses it without connecting -- is kept aside and given back at the end of a later request
that finds it idle: the request that used it last ends after that use.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from asgiref.sync import SyncToAsync
from django.core.signals import request_finished
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from psycopg.pq import TransactionStatus

from ..conf.pool_options import is_pooled
from ..core.context import OpenedConnection, RequestContext, current_request
from ..core.runtime import runtime

logger = logging.getLogger("connection_pools.request_end")

_lock = threading.Lock()
#: ASGI: request contexts waiting for their request_finished, by ThreadSensitiveContext.
_waiting: weakref.WeakKeyDictionary[Any, RequestContext] = weakref.WeakKeyDictionary()
#: Other-thread connections that were busy when their request ended, by wrapper id.
_busy: dict[int, OpenedConnection] = {}


def _forget() -> None:
    with _lock:
        _waiting.clear()
        _busy.clear()


runtime.register("backends.request_end", _forget, after_fork=True)


@receiver(connection_created, dispatch_uid="connection_pools.request_end.opened")
def _opened(sender: Any, connection: Any, **kwargs: Any) -> None:
    context = current_request.get()
    if context is not None:
        context.opened(connection)


def _thread_sensitive_context() -> Any:
    # asgiref's public class attribute: the ThreadSensitiveContext Django's ASGI handler entered
    # for this request (None outside one, e.g. under WSGI).
    return SyncToAsync.thread_sensitive_context.get(None)


def release_later(context: RequestContext) -> None:
    """ASGI, from the event loop: release ``context``'s other-thread connections at its request_finished."""
    if not _busy and not any(entry.wrapper.connection is not None for entry in list(context.connections.values())):
        return
    key = _thread_sensitive_context()
    if key is None:  # not Django's ASGI handler: nothing will come back for it on a known thread
        logger.debug("no thread-sensitive context for %s; its other-thread connections stay", context.label)
        return
    with _lock:
        _waiting[key] = context


@receiver(request_finished, dispatch_uid="connection_pools.request_end.finished")
def _request_finished(**kwargs: Any) -> None:
    if not _waiting and not _busy:  # WSGI, and ASGI requests that used no other thread: nothing to do
        return
    key = _thread_sensitive_context()
    if key is None:
        return
    with _lock:
        context = _waiting.pop(key, None)
    if context is not None:
        release_other_threads(context)
    elif _busy:
        _release(_take_busy(), label="a request")


def _idle(wrapper: Any) -> bool:
    raw = wrapper.connection
    if raw is None or wrapper.in_atomic_block or getattr(raw, "closed", True):
        return False
    return raw.info.transaction_status == TransactionStatus.IDLE  # type: ignore[no-any-return]


def release_other_threads(context: RequestContext) -> int:
    """Give back the idle pooled connections ``context`` opened on threads other than this one
    (and those kept aside busy by earlier requests). Returns how many went back.

    The calling thread's connections are Django's to return (``close_old_connections`` at
    ``request_finished``).
    """
    entries = list(context.connections.values())
    context.connections.clear()
    if _busy:
        entries.extend(_take_busy())
    return _release(entries, label=context.label)


def _take_busy() -> list[OpenedConnection]:
    with _lock:
        entries = list(_busy.values())
        _busy.clear()
    return entries


def _release(entries: list[OpenedConnection], *, label: str) -> int:
    me = threading.get_ident()
    released = 0
    for entry in entries:
        wrapper = entry.wrapper
        if entry.thread == me or wrapper.connection is None or not is_pooled(wrapper.settings_dict):
            continue
        if not _idle(wrapper):
            logger.debug("%s: a %s connection checked out on another thread is busy at the end of the request; "
                         "it goes back at the end of a later one", label, wrapper.alias)
            with _lock:
                _busy[id(wrapper)] = entry
            continue
        wrapper.inc_thread_sharing()
        try:
            wrapper.close()
        except Exception:  # a broken connection: the pool discards it; nothing more to do here
            logger.debug("closing %s's connection from another thread failed", wrapper.alias, exc_info=True)
        finally:
            wrapper.dec_thread_sharing()
        released += 1
    return released
