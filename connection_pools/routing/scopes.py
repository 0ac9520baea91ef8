"""Where ORM queries go: ``read_only()`` / ``primary()`` scopes and read-your-writes state.

Both live in :mod:`contextvars`, so they follow the code that entered them: each
thread, each asyncio task and each ASGI request sees only its own scope, and
``asgiref``'s ``sync_to_async``/``async_to_sync`` (which Django's async ORM uses)
carry the scope across the thread hop. A plain new ``threading.Thread`` starts
with an empty context, so a scope never leaks into unrelated threads; use
``contextvars.copy_context().run(...)`` to take one along on purpose.

Precedence, highest first, for a read (:func:`alias_for_read`):

1. ``primary()``                      -> the primary (or its ``using`` alias)
2. ``read_only(using="replica2")``    -> exactly that alias
3. pinned (this request wrote, is an unsafe HTTP method, carries a fresh pin
   cookie, or this context wrote less than ``PIN_SECONDS`` ago) -> the primary:
   a user never reads a stale copy of their own write
4. ``read_only()``                    -> a healthy replica
5. inside ``transaction.atomic()`` on the primary -> the primary (one transaction sees one database)
6. otherwise                          -> a healthy replica, else the primary

Writes always go to the primary (or a ``primary(using=...)`` alias) and pin the
current request/context.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from django.db import connections

from .. import conf
from ..conf.aliases import PRIMARY
from ..core.context import RouteState, current_request

ScopeKind = Literal["read_only", "primary"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Frame:
    """One entered scope; ``outer`` is the scope it shadows (a linked stack)."""

    kind: ScopeKind
    using: str | None
    outer: _Frame | None


_scope: ContextVar[_Frame | None] = ContextVar("connection_pools_scope", default=None)
#: Read-your-writes state outside requests (a context, a ``task()``); a request's own state is
#: its :class:`~connection_pools.core.context.RequestContext`'s ``route``.
_state: ContextVar[RouteState | None] = ContextVar("connection_pools_route_state", default=None)


def _check_alias(using: str | None) -> None:
    if using is not None and using not in connections.settings:
        known = ", ".join(sorted(connections.settings))
        raise ValueError(f"Unknown database alias {using!r}: expected one of {known}.")


class Scope:
    """A routing scope usable as ``with``/``async with`` block and as a decorator
    of sync or async functions (each call gets its own activation)."""

    def __init__(self, kind: ScopeKind, using: str | None = None) -> None:
        _check_alias(using)
        self.kind: ScopeKind = kind
        self.using = using

    def __repr__(self) -> str:
        return f"<Scope {self.kind} using={self.using!r}>"

    # A linked stack instead of ContextVar tokens: one Scope object can then be
    # entered concurrently from several threads/tasks and nested in itself.
    def __enter__(self) -> Scope:
        _scope.set(_Frame(self.kind, self.using, _scope.get()))
        return self

    def __exit__(self, *exc: object) -> None:
        frame = _scope.get()
        _scope.set(frame.outer if frame is not None else None)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        kind, using = self.kind, self.using
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Scope(kind, using):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Scope(kind, using):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def read_only(using: str | None = None) -> Scope:
    """Reads inside go to a healthy replica (or exactly ``using``); writes still go to the primary.

    A request that has written (or is pinned by its cookie) keeps reading from
    the primary even here, unless ``using`` names an alias explicitly.
    """
    return Scope("read_only", using)


def primary(using: str | None = None) -> Scope:
    """Reads and writes inside go to the primary (or ``using``)."""
    return Scope("primary", using)


def current_scope() -> tuple[ScopeKind, str | None] | None:
    """``(kind, using)`` of the innermost active scope, or None."""
    frame = _scope.get()
    return None if frame is None else (frame.kind, frame.using)


class Session:
    """The guide's ``get_session(read_only=...)``: a scope that yields its alias,
    usable as ``with`` and, as in the guide, ``async with``.

    ``read_only=True`` picks one healthy replica on entry (the primary when none
    is in rotation) and keeps the whole block on it, like a session bound to one
    server; ``read_only=False`` keeps everything on the primary (or ``using``).
    """

    def __init__(self, *, read_only: bool = False, using: str | None = None) -> None:
        _check_alias(using)
        self.read_only = read_only
        self.using = using
        self._scopes: list[Scope] = []

    def __enter__(self) -> str:
        if self.read_only:
            alias = self.using or choose_read_alias(explicit_read_only=True)
            scope = Scope("read_only", alias)
        else:
            alias = self.using or PRIMARY
            scope = Scope("primary", self.using)
        scope.__enter__()
        self._scopes.append(scope)
        return alias

    def __exit__(self, *exc: object) -> None:
        self._scopes.pop().__exit__(*exc)

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)


def session(*, read_only: bool = False, using: str | None = None) -> Session:
    """See :class:`Session`."""
    return Session(read_only=read_only, using=using)


# --- read-your-writes state -------------------------------------------------------
def current_state() -> RouteState | None:
    """The read-your-writes state in force: a ``task()`` entered in this request, else the
    request's (set by the middleware), else this context's outside requests, if any."""
    state = _state.get()
    request = current_request.get()
    if request is not None and (state is None or state.request is not request):
        return request.route
    return state


def note_write() -> None:
    """A write is being routed: pin the rest of this request (or this context for PIN_SECONDS)."""
    state = current_state()
    if state is None:
        state = RouteState()
        _state.set(state)
    state.wrote = True
    if not state.in_request:
        state.pinned_until = time.monotonic() + float(conf.get("REPLICAS")["PIN_SECONDS"])


def reset_pinning() -> None:
    """Forget the read-your-writes pin of the current context outside requests.

    Outside requests a write pins the context's reads to the primary for ``PIN_SECONDS``
    (a thread, an asyncio task, a command). Call this where a new unit of work starts in a
    long-lived worker -- or use :func:`task` -- so one write does not pin what follows it.
    Inside a request it does nothing: a request that wrote reads from the primary to its end.
    """
    state = current_state()
    if state is not None and not state.in_request:
        state.wrote = False
        state.pinned = False
        state.pinned_until = 0.0


class Task:
    """A unit of work outside requests with its own read-your-writes state (see :func:`task`)."""

    def __init__(self) -> None:
        self._tokens: list[Token[RouteState | None]] = []

    def __enter__(self) -> RouteState:
        state = RouteState(request=current_request.get())
        self._tokens.append(_state.set(state))
        return state

    def __exit__(self, *exc: object) -> None:
        _state.reset(self._tokens.pop())

    async def __aenter__(self) -> RouteState:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Task():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Task():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def task() -> Task:
    """A block or a function (sync or async) that is one unit of work outside requests, such as
    one job of a worker: it starts unpinned, its writes pin its own later reads to the primary
    (for ``PIN_SECONDS`` at most), and nothing of it carries over to what runs after it.

    ``with task(): ...``, ``async with task(): ...`` or ``@task()``.
    """
    return Task()


# --- the decision -------------------------------------------------------------------
def _in_primary_transaction() -> bool:
    # Only look at a connection this thread already has; never create one.
    # connections._connections: Django's per-thread wrappers (private, not in django-stubs).
    wrapper = getattr(connections._connections, PRIMARY, None)  # type: ignore[attr-defined]
    return bool(wrapper is not None and wrapper.in_atomic_block)


def choose_read_alias(*, explicit_read_only: bool = False) -> str:
    """The alias for a read outside any explicit ``using`` (precedence 3-6 above)."""
    from . import replicas

    state = current_state()
    if state is not None and state.is_pinned():
        return PRIMARY
    if not explicit_read_only and _in_primary_transaction():
        return PRIMARY
    alias = replicas.pick()
    if alias is None:
        return PRIMARY
    if state is not None:
        state.replicas_used.add(alias)
    return alias


def alias_for_read() -> str:
    """Where the next ORM read goes (see the module docstring for the rules)."""
    frame = _scope.get()
    if frame is not None:
        if frame.kind == "primary":
            return frame.using or PRIMARY
        if frame.using is not None:
            state = current_state()
            if state is not None and frame.using != PRIMARY:
                state.replicas_used.add(frame.using)
            return frame.using
        return choose_read_alias(explicit_read_only=True)
    return choose_read_alias()


def alias_for_write() -> str:
    """Where the next ORM write goes: the primary (or a ``primary(using=...)`` alias)."""
    note_write()
    frame = _scope.get()
    if frame is not None and frame.kind == "primary" and frame.using:
        return frame.using
    return PRIMARY
