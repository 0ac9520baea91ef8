"""Which SQL a request has sent: a request that may have written is never replayed.

The router knows the writes it routes (``db_for_write``: ORM saves, updates, deletes,
``get_or_create``...). Raw SQL (``connection.cursor().execute("UPDATE ...")``) does not
go through the router, so every statement sent through Django's cursors is looked at
here too, by an execute wrapper installed on each connection (``connection_created``):
a statement whose first keyword is not in :data:`READ_KEYWORDS` marks the current
request as having written (``RouteState.wrote``), *before* it is sent -- a write whose
connection broke before the answer came is in doubt (it may have been applied), and
so is a ``COMMIT`` that was cut: both make the request not replayable. The same flag
pins the rest of the request to the primary, so raw writes get read-your-writes too.

Not seen: SQL sent on the driver connection directly (``connection.connection``), and
writes hidden in a read (a ``SELECT`` calling a function that modifies data,
``nextval()``, ``SELECT ... INTO``). A view doing those in a GET should call
:func:`connection_pools.routing.note_write` first, or carry
:func:`connection_pools.middleware.pinning.no_replay`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db.backends.signals import connection_created

from . import scopes as routing

#: Statements that read or only manage the session/transaction. Anything else counts as a write,
#: including WITH (it may hold INSERT/UPDATE/DELETE), EXPLAIN (ANALYZE runs the statement), COPY, CALL, DO.
READ_KEYWORDS = frozenset({
    "SELECT", "SHOW", "VALUES", "TABLE", "FETCH", "MOVE", "CLOSE", "DECLARE",
    "SAVEPOINT", "RELEASE", "ROLLBACK", "SET", "RESET", "BEGIN", "START", "COMMIT", "END",
})
# Leading blanks, comments and parentheses, then the first keyword.
_FIRST_KEYWORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)


def is_read_statement(sql: Any) -> bool:
    """True when ``sql`` cannot write (by its first keyword); unknown objects count as writes."""
    if isinstance(sql, bytes):
        sql = sql.decode("latin-1")
    if not isinstance(sql, str):
        return False
    if sql.startswith("SELECT "):
        return True  # what Django's ORM sends for every read: no regex on the hot path
    match = _FIRST_KEYWORD.match(sql)
    return match is not None and match.group(1).upper() in READ_KEYWORDS


def observe_statement(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
    """Django execute wrapper: note a possible write in the current request, then run the statement."""
    state = routing.current_state()
    if state is not None and state.in_request and not state.wrote and not is_read_statement(sql):
        state.wrote = True
    return execute(sql, params, many, context)


def _observe_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # First in the list: Django's execute_wrapper() context manager pops the *last* wrapper
    # when its block ends, so ours must never be the last one added.
    if observe_statement not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, observe_statement)


def install() -> None:
    """Observe every new connection's statements (the app does it at start-up). Not at import:
    the engine imports this module for :func:`is_read_statement`, and a project that uses the
    engine without the app (Django's own test suite does) gets no wrapper it did not ask for."""
    connection_created.connect(_observe_connection, dispatch_uid="connection_pools.statements.observe")
