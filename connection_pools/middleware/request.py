"""The request middleware: the one place a request's context is started and ended.

``connection_pools.middleware.RequestContextMiddleware`` (near the top of ``MIDDLEWARE``;
``PoolStatsMiddleware`` is the same class under its older name) runs for sync (WSGI) and
async (ASGI) stacks natively -- under ASGI it is a coroutine and costs no thread hop. Per request it:

* starts the request's :class:`~connection_pools.core.context.RequestContext` and ends it after
  the response (the pool books wait, hold and long holds with the request's path and view to
  it; routing keeps read-your-writes state in it; the persistent-connection tracker books the
  connections the request used, on whatever thread);
* measures the request's total pool wait (``request.connection_pools.wait_seconds``, also
  sent as ``Server-Timing: db-pool-wait``);
* pins reads to the primary for a request that writes, and sends the pin cookie
  (:mod:`.replay`);
* replays a safe request whose connection broke, once, and answers a database failure it
  could not serve with **HTTP 503 and ``Retry-After``** (:mod:`.failures`);
* gives back, at the end of the request, pooled connections it checked out on threads other
  than its own (:mod:`connection_pools.backends.request_end`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ..backends import request_end
from ..conf import serving
from ..core import context as request_context
from ..core.context import RequestContext
from .failures import classify_failure, unavailable_response
from .replay import pin_if_wrote, pinned_at_start, replay_after_failure


def view_name(view_func: Callable[..., Any]) -> str:
    """``module.qualname`` of a view (its class for class-based views)."""
    target = getattr(view_func, "view_class", view_func)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _name_view(request: HttpRequest, view_func: Callable[..., Any]) -> None:
    context = getattr(request, "connection_pools", None)
    if isinstance(context, RequestContext):
        context.view = view_name(view_func)


class RequestContextMiddleware:
    """Starts and ends each request's context; accounting, pinning, replay and 503s (see the module)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django runs a sync process_view of an async stack in a thread: give it a coroutine.
            self.process_view = self._process_view_async  # type: ignore[method-assign,assignment]
            # Django's ASGI handler is loading the application: refuse persistent connections now.
            serving.note_asgi_handler()
            serving.refuse_unsafe_asgi()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        context, token = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            request_context.end(context, token)
            request_end.release_other_threads(context)  # this is the request's thread
        return self._finish(request, response, context)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        context, token = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            request_context.end(context, token)
            # The event loop may not close connections: request_finished does, on the request's thread.
            request_end.release_later(context)
        return self._finish(request, response, context)

    @staticmethod
    def _begin(request: HttpRequest) -> tuple[RequestContext, Any]:
        context, token = request_context.begin(request.path, request.method or "GET",
                                               pinned=pinned_at_start(request))
        request.connection_pools = context  # type: ignore[attr-defined]
        return context, token

    def _finish(self, request: HttpRequest, response: HttpResponseBase, context: RequestContext) -> HttpResponseBase:
        if context.db_failure is not None and response.status_code == 500:
            # The failure happened in an inner middleware, already turned into a 500.
            response = unavailable_response(request, context.db_failure)
        if context.checkouts:
            timing = f"db-pool-wait;dur={context.wait_seconds * 1000:.3f}"
            existing = response.get("Server-Timing")
            response["Server-Timing"] = f"{existing}, {timing}" if existing else timing
        pin_if_wrote(request, response, context.route)
        return response

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple[Any, ...],
                     view_kwargs: dict[str, Any]) -> None:
        """Name the view on the request's context (long holds and 503 logs name it)."""
        _name_view(request, view_func)

    async def _process_view_async(self, request: HttpRequest, view_func: Callable[..., Any],
                                  view_args: tuple[Any, ...], view_kwargs: dict[str, Any]) -> None:
        _name_view(request, view_func)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """A database failure: replay a safe request once, else answer 503 (Django calls this in a
        thread under ASGI too, so it may block)."""
        failure = classify_failure(exception)
        if failure is None:
            return None
        context = getattr(request, "connection_pools", None)
        if isinstance(context, RequestContext):
            replayed = replay_after_failure(request, exception, failure, context.route)
            if replayed is not None:
                return replayed
        return unavailable_response(request, failure)

    unavailable_response = staticmethod(unavailable_response)
