"""Read-your-writes cookies and the replay of cut safe requests (used by the request middleware).

* **Pinning.** A request with an unsafe method (POST, PUT, PATCH, DELETE), or one that
  writes (a routed write, or raw SQL that may write: see :mod:`connection_pools.routing.statements`),
  reads from the primary for the rest of the request; its response carries a signed cookie
  (``REPLICAS["PIN_COOKIE"]``) so that the same client reads from the primary for
  ``PIN_SECONDS`` more -- longer than the replicas may lag, so a user never misses their own write.
* **Replay.** When a view fails because a database connection broke -- a replica that
  stopped or refuses connections, an established connection that was cut (admin shutdown,
  ``pg_terminate_backend``, server closed the connection), or a new one that could not be
  opened -- a safe request (GET, HEAD, OPTIONS, TRACE) that has not written is answered by
  running the view once more on fresh connections: on the primary when a replica failed (the
  replica leaves rotation at once), with the usual routing otherwise. A full pool (checkout
  timeout) is not replayed: the replay would wait as long again. Any other request (unsafe,
  or one that wrote, or a second failure) gets the 503 with ``Retry-After``; its transaction
  was rolled back as the exception left ``atomic()`` (or by the server, with the connection).
  A view can opt out with :func:`no_replay`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

from ..core.context import RouteState
from ..routing import replicas
from ..routing import scopes as routing
from .failures import classify_failure, unavailable_response

logger = logging.getLogger("connection_pools.middleware.pinning")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
COOKIE_SALT = "connection_pools.pinning"
PIN_VALUE = "1"
NO_REPLAY_ATTRIBUTE = "connection_pools_no_replay"

V = TypeVar("V", bound=Callable[..., Any])


def no_replay(view: V) -> V:
    """Never replay this view after a cut connection (for a GET that writes in ways SQL does not show)."""
    setattr(view, NO_REPLAY_ATTRIBUTE, True)
    return view


def is_pinned_by_cookie(request: HttpRequest) -> bool:
    """True when the request carries a valid pin cookie younger than ``PIN_SECONDS``."""
    config = replicas.replica_settings()
    if not config["PIN_SECONDS"]:
        return False
    value = request.get_signed_cookie(
        config["PIN_COOKIE"], default=None, salt=COOKIE_SALT, max_age=timedelta(seconds=float(config["PIN_SECONDS"]))
    )
    return value == PIN_VALUE


def pinned_at_start(request: HttpRequest) -> bool:
    """An unsafe method, or a fresh pin cookie: the whole request reads from the primary."""
    return request.method not in SAFE_METHODS or is_pinned_by_cookie(request)


def set_pin_cookie(request: HttpRequest, response: HttpResponseBase) -> None:
    """Pin this client to the primary for ``PIN_SECONDS`` (a signed, timestamped cookie)."""
    config = replicas.replica_settings()
    if not config["PIN_SECONDS"]:
        return
    response.set_signed_cookie(
        config["PIN_COOKIE"],
        PIN_VALUE,
        salt=COOKIE_SALT,
        max_age=max(math.ceil(float(config["PIN_SECONDS"])), 1),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )


def pin_if_wrote(request: HttpRequest, response: HttpResponseBase, state: RouteState) -> None:
    """Set the pin cookie on the response of a request that wrote or used an unsafe method."""
    if state.wrote or request.method not in SAFE_METHODS:
        set_pin_cookie(request, response)


def failed_replicas(aliases: set[str]) -> list[str]:
    """Those of ``aliases`` whose connection in this thread broke (not a mere SQL error)."""
    failed = []
    for alias in sorted(aliases):
        # Only this thread's wrappers (Django's per-thread storage): never open one here.
        wrapper = getattr(connections._connections, alias, None)  # type: ignore[attr-defined]
        if wrapper is None or not wrapper.errors_occurred:
            continue
        raw = wrapper.connection
        # A refused connect leaves no connection; a server that went away leaves a closed (BAD) one.
        if raw is None or getattr(raw, "closed", False):
            failed.append(alias)
    return failed


def _close_quietly(alias: str) -> None:
    try:
        connections[alias].close()
    except Exception:  # it is already broken; we only free it
        logger.debug("closing the broken %s connection failed", alias, exc_info=True)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def replay_after_failure(request: HttpRequest, exception: Exception, failure: str,
                         state: RouteState) -> HttpResponseBase | None:
    """Take a failed replica out of rotation; replay a safe request that has not written, once.

    ``failure`` is :func:`~.failures.classify_failure`'s verdict on ``exception``. None: not replayed.
    """
    failed = failed_replicas(state.replicas_used)
    for alias in failed:
        replicas.mark_failed(alias, exception.__cause__ or exception)
        _close_quietly(alias)
    # A full pool (timeout) would make the replay wait as long again; a server that refuses
    # connections fails it fast, and one that was only cutting connections serves it.
    if (failure == "timeout" and not failed) or not _replayable(request, state):
        return None
    state.retried = True
    for wrapper in connections.all(initialized_only=True):
        if wrapper.errors_occurred:
            _close_quietly(wrapper.alias)
    for alias in failed:
        replicas.note_fallback(alias)
    where = "from the primary" if failed else "on fresh connections"
    logger.warning("database connection %s (%s); answering %s %s again %s", failure,
                   " ".join(str(exception).split()), request.method, request.path, where)
    return _replay(request, on_primary=bool(failed))


def _replayable(request: HttpRequest, state: RouteState) -> bool:
    match = request.resolver_match
    if request.method not in SAFE_METHODS or state.retried or state.wrote or match is None:
        return False
    if getattr(match.func, NO_REPLAY_ATTRIBUTE, False):
        return False
    # A transaction opened outside the view (ATOMIC_REQUESTS, a middleware) is not ours to redo.
    return not any(wrapper.in_atomic_block for wrapper in connections.all(initialized_only=True))


def _replay(request: HttpRequest, *, on_primary: bool) -> HttpResponseBase:
    """Run the view again (rendering a deferred response inside the same scope); a second
    database failure is answered with the 503."""
    match = request.resolver_match
    assert match is not None
    scope = routing.primary() if on_primary else contextlib.nullcontext()
    try:
        with scope:
            response = match.func(request, *match.args, **match.kwargs)
            if hasattr(response, "__await__"):
                # An async view: Django runs process_exception in a worker thread (even under
                # ASGI), so we can wait for the coroutine on the event loop from here.
                response = async_to_sync(_await)(response)
            if not getattr(response, "is_rendered", True):
                response = response.render()
    except Exception as exc:
        kind = classify_failure(exc)
        if kind is None:
            raise
        return unavailable_response(request, kind)
    return response  # type: ignore[no-any-return]  # whatever the view returned
