"""What kind of database failure an exception is, and the 503 that answers it.

A pool checkout timeout, a database that refuses connections, or a connection lost
mid-request (one the request middleware did not replay) is answered with **HTTP 503 and
``Retry-After``** -- JSON for paths under ``/api/``, a short plain page otherwise -- never a
500 traceback.
"""

from __future__ import annotations

import logging
from html import escape

from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import conf
from ..backends.postgresql.pool import DatabaseUnavailable
from ..core.context import RequestContext

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


def unavailable_response(request: HttpRequest, kind: str) -> HttpResponse:
    """The 503 for a database failure of ``kind`` (JSON under /api/, a short page otherwise)."""
    retry_after = int(conf.get("RETRY_AFTER_SECONDS"))
    message = _MESSAGES.get(kind, _MESSAGES["unavailable"])
    info = getattr(request, "connection_pools", None)
    where = info.label if isinstance(info, RequestContext) else request.path
    logger.warning("503 for %s: database %s", where, kind)
    response: HttpResponse
    if request.path.startswith("/api/"):
        code = "pool_timeout" if kind == "timeout" else "database_unavailable"
        response = JsonResponse({"error": code, "detail": message, "retry_after": retry_after}, status=503)
    else:
        body = (
            "<!doctype html><title>Service unavailable</title>"
            f"<h1>Service unavailable</h1><p>{escape(message)} Please retry in {retry_after} seconds.</p>"
        )
        response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response
