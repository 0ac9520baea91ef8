"""The one per-request context: what a web request did with the pools, and where its reads go.

:class:`~connection_pools.middleware.RequestContextMiddleware` starts a :class:`RequestContext`
for each request with :func:`begin` and ends it with :func:`end`. Everything that keeps
per-request state reads it from here, never from the thread:

* the pool, at checkout (one ``ContextVar.get``), keeps a reference on the lease, so wait,
  hold and a long hold are booked to the request -- with its path and view -- even when the
  connection goes back after the middleware has finished (Django returns pooled connections
  on ``request_finished``);
* routing keeps the request's read-your-writes state in :attr:`RequestContext.route`;
* the persistent-connection tracker and the end-of-request release book the connections a
  request opened, on whatever thread opened them, into :attr:`RequestContext.connections`.

It lives in a :class:`~contextvars.ContextVar`, so it follows the request, not the thread:
under ASGI the view runs in the event loop and its ORM work on a per-request thread
(``sync_to_async``), and both see the same object (mutated in place). A plain new
``threading.Thread`` starts without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("connection_pools.context")


@dataclass(slots=True, eq=False)
class RouteState:
    """Read-your-writes state of one request (or, outside requests, of one context or task).

    Mutated in place, so every thread and task sharing the request's context (``sync_to_async``
    hops included) sees the same flags. Routing (:mod:`connection_pools.routing.scopes`) owns
    its meaning; it lives here because a request's state is part of its :class:`RequestContext`.
    """

    in_request: bool = False
    pinned: bool = False  # the whole request reads from the primary
    wrote: bool = False  # a write was routed in this request/context
    pinned_until: float = 0.0  # monotonic deadline of a pin outside requests
    replicas_used: set[str] = field(default_factory=set)
    retried: bool = False
    #: The request this state was started in (a ``task()`` inside a request), or None.
    request: RequestContext | None = None

    def is_pinned(self) -> bool:
        """True when reads must go to the primary now."""
        if self.pinned or (self.in_request and self.wrote):
            return True
        return self.pinned_until > time.monotonic()


@dataclass(slots=True, eq=False)
class OpenedConnection:
    """A database wrapper that connected during a request, and the thread it belongs to."""

    wrapper: Any
    thread: int


@dataclass(slots=True, eq=False)
class RequestContext:
    """What one request did with the database pools, and its routing state."""

    path: str
    method: str = "GET"
    view: str | None = None
    #: Total seconds this request waited for pooled connections.
    wait_seconds: float = 0.0
    checkouts: int = 0
    #: Total seconds the request held pooled connections (known once they are returned).
    hold_seconds: float = 0.0
    #: ``"timeout"`` or ``"unavailable"`` when a checkout failed in this request.
    db_failure: str | None = None
    failed_aliases: list[str] = field(default_factory=list)
    #: Read-your-writes state of the request.
    route: RouteState = field(default_factory=lambda: RouteState(in_request=True))
    #: Wrappers that connected during the request, on any thread (one entry per wrapper).
    connections: dict[int, OpenedConnection] = field(default_factory=dict)
    #: Called by :func:`end`, in order (bookkeeping that must close with the request).
    finishers: list[Callable[[RequestContext], None]] = field(default_factory=list)
    #: True once :func:`end` ran.
    ended: bool = False

    @property
    def label(self) -> str:
        """``GET /path (view)``: how log lines name the request."""
        view = f" (view {self.view})" if self.view else ""
        return f"{self.method} {self.path}{view}"

    def opened(self, wrapper: Any) -> None:
        """Note that ``wrapper`` connected during this request, on the calling thread."""
        self.connections[id(wrapper)] = OpenedConnection(wrapper, threading.get_ident())

    def at_end(self, finisher: Callable[[RequestContext], None]) -> None:
        """Run ``finisher(self)`` when the request ends (at once if it already has)."""
        if self.ended:
            finisher(self)
        else:
            self.finishers.append(finisher)


#: The old name of :class:`RequestContext`.
RequestInfo = RequestContext

current_request: ContextVar[RequestContext | None] = ContextVar("connection_pools_request", default=None)


def begin(path: str, method: str = "GET", *, pinned: bool = False) -> tuple[RequestContext, Token[Any]]:
    """Start the context of one request; pass both to :func:`end` when it is over.

    ``pinned``: the whole request reads from the primary (an unsafe method, a pin cookie).
    Plain calls rather than a context manager: the middleware runs this pair on every request.
    """
    context = RequestContext(path=path, method=method)
    context.route.pinned = pinned
    return context, current_request.set(context)


def end(context: RequestContext, token: Token[Any]) -> None:
    """End the request started by :func:`begin`: unbind it, then run its finishers."""
    current_request.reset(token)
    context.ended = True
    finishers, context.finishers = context.finishers, []
    for finisher in finishers:
        try:
            finisher(context)
        except Exception:  # bookkeeping must never turn a served request into an error
            logger.exception("ending the request context of %s failed", context.label)
