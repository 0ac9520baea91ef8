"""Request middleware: per-request pool accounting, long-hold attribution, and 503s.

``PoolStatsMiddleware`` (near the top of ``MIDDLEWARE``):

* gives the pool the request's path and view, so a long hold or a leak is logged
  with them (the connection often goes back after the response, at ``request_finished``);
* measures each request's total pool wait (``request.connection_pools.wait_seconds``,
  also sent as ``Server-Timing: db-pool-wait``) and, once returned, hold time;
* turns a pool checkout timeout, a database that refuses connections, or a connection
  lost mid-request (one the pinning middleware did not replay) into **HTTP 503 with
  ``Retry-After``** -- JSON for paths under ``/api/``, a short plain page otherwise --
  never a 500 traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import conf
from ..backends.postgresql.pool import DatabaseUnavailable
from ..core.context import RequestInfo, current_request

logger = logging.getLogger("connection_pools.middleware")

_MESSAGES = {
    "timeout": "No database connection became free in time: the service is overloaded.",
    "unavailable": "The database cannot be reached right now.",
    "lost": "The connection to the database was lost while answering.",
}


#: SQLSTATEs that mean "the server went away", not "the query is wrong": class 08
#: (connection exception) and 57P01-57P03 (admin/crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def classify_failure(exception: BaseException) -> str | None:
    """``"timeout"``, ``"unavailable"``, ``"lost"`` or None: what kind of database failure ``exception`` is.

    ``unavailable``: no connection could be had (refused, server down, a failed checkout);
    ``lost``: an established connection broke in the middle of the request (server shut
    down, backend terminated, connection closed: class 08 and 57P01-57P03, or psycopg's
    client-side connection errors without SQLSTATE). Query errors stay errors (None).
    """
    from psycopg import OperationalError
    from psycopg_pool import PoolTimeout

    seen = 0
    current: BaseException | None = exception
    while current is not None and seen < 8:
        if isinstance(current, DatabaseUnavailable):  # a PoolTimeout, but the server is the cause
            return "unavailable"
        if isinstance(current, PoolTimeout):
            return "timeout"
        marked = getattr(current, "connection_pools_failure", None)
        if marked:
            return str(marked)
        if isinstance(current, OperationalError):
            sqlstate = getattr(current, "sqlstate", None)
            if sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
                return "lost"
        current = current.__cause__ or current.__context__
        seen += 1
    return None


class PoolStatsMiddleware:
    """Measures each request's pool wait and hold time and answers 503 when the database cannot serve."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        info = RequestInfo(path=request.path, method=request.method or "GET")
        request.connection_pools = info  # type: ignore[attr-defined]  # our attribute on Django's request
        token = current_request.set(info)
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        if info.db_failure is not None and response.status_code == 500:
            # The failure happened in an inner middleware, already turned into a 500.
            response = self.unavailable_response(request, info.db_failure)
        if info.checkouts:
            timing = f"db-pool-wait;dur={info.wait_seconds * 1000:.3f}"
            existing = response.get("Server-Timing")
            response["Server-Timing"] = f"{existing}, {timing}" if existing else timing
        return response

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple[Any, ...],
                     view_kwargs: dict[str, Any]) -> None:
        info = getattr(request, "connection_pools", None)
        if isinstance(info, RequestInfo):
            target = getattr(view_func, "view_class", view_func)
            info.view = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        kind = classify_failure(exception)
        if kind is None:
            return None
        return self.unavailable_response(request, kind)

    @staticmethod
    def unavailable_response(request: HttpRequest, kind: str) -> HttpResponse:
        """The 503 for a database failure of ``kind`` (JSON under /api/, a short page otherwise)."""
        retry_after = int(conf.get("RETRY_AFTER_SECONDS"))
        message = _MESSAGES.get(kind, _MESSAGES["unavailable"])
        info = getattr(request, "connection_pools", None)
        where = info.label if isinstance(info, RequestInfo) else request.path
        logger.warning("503 for %s: database %s", where, kind)
        response: HttpResponse
        if request.path.startswith("/api/"):
            code = "pool_timeout" if kind == "timeout" else "database_unavailable"
            response = JsonResponse(
                {"error": code, "detail": message, "retry_after": retry_after}, status=503
            )
        else:
            body = (
                "<!doctype html><title>Service unavailable</title>"
                f"<h1>Service unavailable</h1><p>{escape(message)} Please retry in {retry_after} seconds.</p>"
            )
            response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(retry_after)
        response["Cache-Control"] = "no-store"
        return response
