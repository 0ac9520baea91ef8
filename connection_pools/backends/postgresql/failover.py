"""Replica failover at the connection layer, in every context.

The router picks a replica for a read (:mod:`connection_pools.routing.replicas`); whether that
replica answers is only known when its wrapper opens a connection. This module is what the
engine does then, so failover works wherever Django runs queries -- requests, management
commands, threads, worker processes, ``sync_to_async`` code -- not only where a middleware
can replay a request:

* **Connecting** (:func:`open_replica_connection`): when a replica refuses connections or
  fails its pre-ping and no working connection can be opened, it leaves the rotation at once
  (``COOLDOWN_SECONDS``) and the wrapper gets a connection from the next replica in rotation,
  or from the primary, before any query ran. While it is cooling down its reads go elsewhere
  without trying it; when the cool-down is over one connection attempt (one thread) tries it
  again, and a success brings it back into rotation -- no sampler thread needed.
* **A fallback connection is lent for one statement at a time** (:func:`release_if_lent`): the
  replica's wrapper gives it back before its next cursor once the replica may be tried again
  (never inside a transaction), so a long-lived process does not read from the primary forever.
* **A read cut on a replica** (:class:`ReplicaReadRetry`): outside requests (where the
  middleware replays whole safe requests instead), a read statement whose replica connection
  broke, in autocommit and outside ``atomic()``, runs once more on a fresh connection -- which
  the two points above take from a working server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import OperationalError as DjangoOperationalError
from django.db import connections
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from ...conf.aliases import PRIMARY
from ...core.context import current_request
from ...routing import replicas
from ...routing.scopes import current_state
from ...routing.statements import is_read_statement
from .compat import pool_of
from .metered import MeteredCursorDebugWrapper, MeteredCursorWrapper
from .pool import DatabaseUnavailable

#: Set on a connection that serves a replica's wrapper in place of the replica: the alias it came
#: from, and the replica alias it serves (removed when it goes back).
LENT_BY = "_connection_pools_lent_by"
LENT_TO = "_connection_pools_lent_to"


def is_replica(alias: str) -> bool:
    """True when ``alias`` is one of the configured read replicas."""
    return alias in replicas.replica_aliases()


def _connect_failed(exc: BaseException) -> bool:
    # A server that refused or dropped the connection; a full pool (plain PoolTimeout) is not a dead
    # server, and sending its overflow to the primary would only move the queue there.
    return isinstance(exc, DatabaseUnavailable) or (isinstance(exc, OperationalError)
                                                    and not isinstance(exc, PoolTimeout))


def open_replica_connection(wrapper: Any, conn_params: dict[str, Any],
                            open_own: Callable[[dict[str, Any]], Any]) -> Any:
    """A connection for the replica ``wrapper``: its own, or one lent by a working server.

    ``open_own(conn_params)`` opens the replica's own connection (a pool checkout or a new
    connection). When it fails as a refused or dropped connection, the replica is marked
    failed and the other candidates are tried in order; the last error is raised only when
    the primary fails too.
    """
    alias = wrapper.alias
    request = current_request.get()
    # Each failed attempt marks the request as having met an unavailable database (the 503 path);
    # once one server serves the read, the request did not: the marks of the attempts are undone.
    before = (request.db_failure, len(request.failed_aliases)) if request is not None else None
    if replicas.may_connect(alias):
        try:
            connection = open_own(conn_params)
        except Exception as exc:
            if not _connect_failed(exc):
                raise
            replicas.mark_failed(alias, exc)
            error: BaseException = exc
        else:
            replicas.mark_ok(alias)
            return connection
    else:
        error = DatabaseUnavailable(f"replica {alias} is out of rotation (cooling down)")
    for fallback in replicas.fallback_aliases(alias):
        try:
            connection = _open_for(fallback, wrapper)
        except Exception as exc:
            if not _connect_failed(exc):
                raise
            if fallback != PRIMARY:
                replicas.mark_failed(fallback, exc)
            error = exc
            continue
        if request is not None and before is not None:
            request.db_failure = before[0]
            del request.failed_aliases[before[1]:]
        replicas.note_fallback(alias)
        setattr(connection, LENT_BY, fallback)
        setattr(connection, LENT_TO, alias)
        return connection
    raise error


def _open_for(alias: str, borrower: Any) -> Any:
    """A new connection of ``alias`` (its pool's, when pooled), without its own failover."""
    lender = connections[alias]
    open_plain = getattr(lender, "open_without_failover", None)
    params = lender.get_connection_params()
    connection = open_plain(params) if open_plain is not None else lender.get_new_connection(params)
    # Django sets the isolation level on the wrapper that connected; the borrower runs the queries.
    borrower.isolation_level = getattr(lender, "isolation_level", None)
    return connection


def lent_to(connection: Any) -> str | None:
    """The replica alias ``connection`` was lent to, or None for a server's own connection."""
    return getattr(connection, LENT_TO, None)


def release_if_lent(wrapper: Any) -> None:
    """Before a cursor: give a lent connection back once the replica may be tried again.

    Only outside a transaction, and only when the replica is in rotation or its cool-down
    is over (no I/O here; the next cursor then connects, trying the replica first).
    """
    connection = wrapper.connection
    if (connection is not None and getattr(connection, LENT_TO, None) == wrapper.alias
            and not wrapper.in_atomic_block and replicas.may_connect(wrapper.alias, claim=False)):
        wrapper.close()


def give_back(connection: Any) -> None:
    """Return a lent connection to where it came from (its pool, or close it)."""
    # The marks go first: the lender's pool hands this connection out again, to its own alias.
    for mark in (LENT_BY, LENT_TO):
        if hasattr(connection, mark):
            delattr(connection, mark)
    pool = pool_of(connection)
    if pool is not None:
        pool.putconn(connection)
    else:
        connection.close()


class ReplicaReadRetry:
    """Cursor-wrapper mixin: a read whose replica connection broke runs once more, elsewhere if need be.

    Only for replica aliases, outside web requests (the middleware replays those whole), in
    autocommit outside ``atomic()``, for statements that cannot write (by their first
    keyword), on client-side cursors, and only when the connection itself is gone -- a query
    error on a working connection is the caller's.
    """

    db: Any
    cursor: Any

    def execute(self, sql: Any, params: Any = None) -> Any:
        # executemany is not overridden: a batch is never retried.
        try:
            return super().execute(sql, params)  # type: ignore[misc]
        except DjangoOperationalError:
            if not self._may_retry(sql):
                raise
        self._reconnect()
        return super().execute(sql, params)  # type: ignore[misc]

    def _may_retry(self, sql: Any) -> bool:
        db = self.db
        connection = db.connection
        if connection is None or not connection.closed or db.in_atomic_block or not db.get_autocommit():
            return False
        if getattr(self.cursor, "name", None) or not is_replica(db.alias) or not is_read_statement(sql):
            return False
        state = current_state()
        return state is None or not state.in_request

    def _reconnect(self) -> None:
        db = self.db
        db.close()  # the broken connection goes back (the pool discards it)
        db.ensure_connection()  # the replica again, or a lent one when it is down
        self.cursor = db.create_cursor(None)
        db.track_cursor(self)  # per-transaction release: this cursor now holds the new connection


class ReplicaCursorWrapper(ReplicaReadRetry, MeteredCursorWrapper):
    """The cursor wrapper of a replica alias: metered, and a cut read retried (see :class:`ReplicaReadRetry`)."""


class ReplicaCursorDebugWrapper(ReplicaReadRetry, MeteredCursorDebugWrapper):
    """The debug cursor wrapper of a replica alias."""
