"""Read-your-writes pinning and read failover, as one middleware.

``connection_pools.pinning.ReplicaPinningMiddleware`` (after sessions/auth):

* **Pinning.** A request with an unsafe method (POST, PUT, PATCH, DELETE), or
  one that routes a write, reads from the primary for the rest of the request;
  its response carries a signed cookie (``REPLICAS["PIN_COOKIE"]``) so that the
  same client reads from the primary for ``PIN_SECONDS`` more — longer than the
  replicas may lag, so a user never misses their own write.
* **Failover.** When a view fails because a replica connection broke (server
  stopped, restarted, unreachable), the replica leaves rotation at once and a
  safe request (GET, HEAD, OPTIONS, TRACE) is answered by running the view once
  more on the primary: no read is lost. Unsafe requests are never replayed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.db import connections
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponseBase

from . import replicas, routing

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
COOKIE_SALT = "connection_pools.pinning"
PIN_VALUE = "1"


def is_pinned_by_cookie(request: HttpRequest) -> bool:
    """True when the request carries a valid pin cookie younger than ``PIN_SECONDS``."""
    config = replicas.replica_settings()
    if not config["PIN_SECONDS"]:
        return False
    value = request.get_signed_cookie(
        config["PIN_COOKIE"], default=None, salt=COOKIE_SALT, max_age=float(config["PIN_SECONDS"])
    )
    return value == PIN_VALUE


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


def failed_replicas(aliases: set[str]) -> list[str]:
    """Those of ``aliases`` whose connection in this thread broke (not a mere SQL error)."""
    failed = []
    for alias in sorted(aliases):
        wrapper = getattr(connections._connections, alias, None)
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


class ReplicaPinningMiddleware:
    """Read-your-writes (rest of request + signed cookie) and one retry on the primary for
    safe requests whose replica read failed. Works for sync and async stacks."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        state, token = routing.enter_request(pinned=self._pinned_at_start(request))
        try:
            response = self.get_response(request)
        finally:
            routing.leave_request(token)
        self._finish(request, response, state)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        state, token = routing.enter_request(pinned=self._pinned_at_start(request))
        try:
            response = await self.get_response(request)
        finally:
            routing.leave_request(token)
        self._finish(request, response, state)
        return response

    @staticmethod
    def _pinned_at_start(request: HttpRequest) -> bool:
        return request.method not in SAFE_METHODS or is_pinned_by_cookie(request)

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponseBase, state: routing.RouteState) -> None:
        if state.wrote or request.method not in SAFE_METHODS:
            set_pin_cookie(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """Take a broken replica out of rotation; replay a safe request once on the primary."""
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        state = routing.current_state()
        if state is None:
            return None
        failed = failed_replicas(state.replicas_used)
        if not failed:
            return None
        for alias in failed:
            replicas.mark_failed(alias, exception.__cause__ or exception)
            _close_quietly(alias)
        if request.method not in SAFE_METHODS or state.retried or request.resolver_match is None:
            return None
        state.retried = True
        for alias in failed:
            replicas.note_fallback(alias)
        logger.warning("replica read failed (%s); answering %s %s from the primary", exception, request.method,
                       request.path)
        match = request.resolver_match
        with routing.primary():
            response = match.func(request, *match.args, **match.kwargs)
            if hasattr(response, "__await__"):
                # An async view: process_exception runs in a worker thread, so
                # we can wait for the coroutine on the event loop from here.
                response = async_to_sync(_await)(response)
        return response
