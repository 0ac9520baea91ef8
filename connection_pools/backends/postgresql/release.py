"""Per-transaction release (``OPTIONS["pool"]["release"] = "transaction"``): a connection goes back
to its pool as soon as nothing holds it, not at the end of the request.

Django's pool (and ours in the default mode, ``"request"``) keeps a connection checked out from a
thread's first query until the request ends (``close_old_connections`` at ``request_finished``): a
view that runs one ``SELECT`` and then waits 200 ms on an HTTP call pins a server connection for all
of it. With ``"transaction"`` the wrapper gives its connection back whenever it *settles*: at the
close of a cursor, at the end of an outer ``atomic()`` block (after its ``on_commit`` callbacks),
and after ``commit()`` / ``rollback()`` / ``set_autocommit()`` -- as long as nothing still holds it:

* an ``atomic()`` block, savepoints and ``durable`` blocks included, until the outer block has
  committed or rolled back and its ``on_commit`` callbacks have run;
* a manual transaction: autocommit switched away from the alias's ``AUTOCOMMIT`` (usually
  ``set_autocommit(False)``), until it is switched back;
* a transaction open on the server (a raw ``BEGIN``; with ``AUTOCOMMIT = False``, everything from
  the first statement to ``commit()`` or ``rollback()``);
* an open cursor of the wrapper: a server-side cursor (``.iterator()``: Django's named cursors
  are ``WITH HOLD`` outside ``atomic()``) until it is exhausted or closed, a client-side cursor
  until it is closed (its rows are already in the client). A cursor dropped without ``close()``
  stops holding once it is garbage-collected; the next settling point gives the connection back.

The next statement checks a connection out again (``connect()``: one checkout, with the
pre-ping unless ``pool_pre_ping_window`` says it was proved alive recently). A connection that
broke outside a transaction is given back like any other (the pool discards it), so the next
statement gets a working one. Session state cannot follow a connection that comes and goes: the
engine refuses ``SET``, ``LISTEN``, ``PREPARE``, ``DECLARE ... WITH HOLD`` and session advisory
locks for such an alias with one clear error, as behind PgBouncer
(:mod:`.transaction_pooling`). ``connection.connection`` is ``None`` between statements: code that
keeps the driver connection across statements must hold it with ``atomic()``.

:class:`ReleasePerTransaction` is the wrapper's side (a mixin of the engine's ``DatabaseWrapper``);
cursors report their ``close()`` through :func:`cursor_closed`. In the default mode every hook
returns after one attribute test.
"""

from __future__ import annotations

import weakref
from typing import Any

from django.db.backends.postgresql.base import DatabaseWrapper as DjangoDatabaseWrapper
from psycopg.pq import TransactionStatus

#: Server transaction states in which a connection may go back: idle, or broken (the pool discards it).
_RELEASABLE = (TransactionStatus.IDLE, TransactionStatus.UNKNOWN)


class ReleasePerTransaction(DjangoDatabaseWrapper):
    """The wrapper's side of per-transaction release (see the module docstring)."""

    #: True while this wrapper's alias releases per transaction (known at each connect).
    releases_per_transaction = False
    #: The cursors open on the current connection (only tracked while releasing per transaction).
    _open_cursors: weakref.WeakSet[Any] | None = None
    #: > 0 while the commit hooks of an outer atomic() block run: the connection stays for them.
    _running_commit_hooks = 0

    def pool_releases_per_transaction(self) -> bool:
        """True when this wrapper's connections come from a pool with ``release = "transaction"`` (the engine
        answers from its own pool; cheap: it runs at every connect)."""
        return False

    def connect(self) -> None:
        # Not while connecting: Django's connect() calls set_autocommit(), which would settle.
        self.releases_per_transaction = False
        super().connect()
        if self.pool_releases_per_transaction():
            self.releases_per_transaction = True
            cursors = self._open_cursors
            if cursors is None:
                self._open_cursors = weakref.WeakSet()
            elif cursors:
                cursors.clear()  # cursors of a connection closed under them (request end): not this one's

    def track_cursor(self, cursor: Any) -> None:
        """Note a cursor opened on the current connection: it holds the connection until closed."""
        if self.releases_per_transaction and self._open_cursors is not None:
            self._open_cursors.add(cursor)

    def settle(self) -> bool:
        """Give the connection back to its pool if nothing holds it (see the module docstring).

        True when it went back. No I/O besides the return itself (status flags only).
        """
        connection = self.connection
        if (connection is None or self.in_atomic_block or self._running_commit_hooks or self._open_cursors
                or self.autocommit != self.settings_dict["AUTOCOMMIT"]
                or connection.pgconn.transaction_status not in _RELEASABLE):
            return False
        self.close()
        return True

    # -- the points where a wrapper may settle -------------------------------------------------------
    def set_autocommit(self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False) -> None:
        super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
        if self.releases_per_transaction:
            self.settle()  # the end of an outer atomic() block (after its commit hooks) or of a manual transaction

    def commit(self) -> None:
        super().commit()
        if self.releases_per_transaction:
            self.settle()

    def rollback(self) -> None:
        super().rollback()
        if self.releases_per_transaction:
            self.settle()

    def run_and_clear_commit_hooks(self) -> None:
        # The on_commit callbacks of an outer block run on the connection that committed, before it goes back.
        self._running_commit_hooks += 1
        try:
            super().run_and_clear_commit_hooks()
        finally:
            self._running_commit_hooks -= 1

    def get_autocommit(self) -> bool:
        # Django connects to answer; between statements the answer is known without a checkout (the next
        # connect sets AUTOCOMMIT), so on_commit() outside atomic() does not check a connection out for nothing.
        if self.connection is None and self.releases_per_transaction and not self.in_atomic_block:
            return bool(self.settings_dict["AUTOCOMMIT"])
        return bool(super().get_autocommit())


def cursor_closed(db: ReleasePerTransaction, cursor: Any) -> None:
    """``cursor`` (a cursor wrapper of ``db``) was closed: settle ``db`` if it was the connection's last."""
    cursors = db._open_cursors
    if cursors is None or cursor not in cursors:
        return  # a cursor of an earlier connection (or untracked): it held nothing of this one
    cursors.discard(cursor)
    db.settle()
