"""Every use of a psycopg_pool private name, in this one module (psycopg-pool 3.3).

Our pool keeps psycopg_pool's public contract and adds what its public API cannot
express: LIFO hand-out, a pre-ping that replaces a dead connection in the caller, recycling
checked at checkout, failing fast while the server refuses connections, closing surplus
connections after a shrinking resize, and exact counts of opened and closed connections.
:class:`PoolHooks` turns the private methods psycopg calls into hooks with names of our
own, and offers small verbs over the private state; :class:`~.pool.InstrumentedPool`
uses only those. What each name is for:

======================================  =========================================================
private name                            what we need it for
======================================  =========================================================
``_get_ready_connection`` (override)    LIFO: pop the newest idle connection, not the oldest
``_getconn_unchecked`` (override)       fail fast while the server refuses new connections
``_getconn_with_check_loop`` (override) pre-ping and recycle at checkout, replacing in the caller
``_connect`` (override, call)           count connections opened and failed; open a successor now
``_close_connection`` (override, call)  count every connection closed (expired, shrunk, ...)
``_return_connection`` (override)       count broken returns as closed (no successor if surplus)
``_add_to_pool`` (override, call)       close a connection arriving beyond ``max_size`` after a
                                        shrinking resize; :meth:`check` puts tested ones back
``_maybe_grow_pool``                    :meth:`check` lets the pool grow, as psycopg's does
``_pool`` / ``_nconns_min``             idle connections (LIFO pop keeps psycopg's shrink
                                        bookkeeping), their count, the fork inerting
``_min_size`` / ``_max_size``,          the common-case checkout and return
``_reset``, ``_drained_at``,            (:meth:`checkout_idle`, :meth:`put_idle`): psycopg's
``_pool_full_event``,                   own steps and counts in one call, its full path for
``connection._pool`` / ``_created_at``  anything unusual (getconn/putconn walk ~8 methods each);
                                        ``_pool`` also says which pool a connection is of (:func:`pool_of`)
``_nconns``                             reserve/release a slot for a connection opened in the caller
``_waiting``                            fail queued clients at once when the server refuses
``_lock``                               the pool's own lock around all of the above
``_stats``                              psycopg's counters, kept exact on our paths too
``_check``                              a user's (or Django's) ``check`` callback is our pre-ping
``_putconn``                            a checkout interrupted during its check gives the
                                        connection back, as psycopg's loop does
``_closed``                             make a pool inherited across ``fork()`` inert
``AddConnection``                       give a slot back to psycopg's background reconnection
``connection._expire_at``               recycle (``max_lifetime``) checked at checkout
======================================  =========================================================

``pyproject.toml`` and ``requirements.txt`` pin ``psycopg-pool>=3.3,<3.4``; an upgrade that
removes one of these names is reported by :func:`missing_internals` (system check
``connection_pools.E003``) and by the test suite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool
from psycopg_pool.pool import AddConnection

if TYPE_CHECKING:
    from psycopg import Connection

#: psycopg_pool's logger: the common-case paths write its lines too, when it listens.
psycopg_logger = logging.getLogger("psycopg.pool")

#: psycopg_pool's counter keys (``BasePool._CONNECTIONS_LOST`` and friends are private too).
REQUESTS_NUM = "requests_num"
REQUESTS_ERRORS = "requests_errors"
CONNECTIONS_LOST = "connections_lost"
RETURNS_BAD = "returns_bad"

METHODS = (
    "_get_ready_connection", "_getconn_unchecked", "_getconn_with_check_loop", "_connect", "_close_connection",
    "_return_connection", "_add_to_pool", "_maybe_grow_pool", "_putconn",
)
POOL_ATTRIBUTES = ("_pool", "_nconns_min", "_nconns", "_waiting", "_lock", "_stats", "_check", "_closed",
                   "_pool_full_event", "_min_size", "_max_size", "_reset", "_drained_at")
CONNECTION_ATTRIBUTES = ("_expire_at", "_created_at", "_pool")


def missing_internals(pool: Any = None, conn: Any = None) -> list[str]:
    """The private names above that are missing: methods of ``ConnectionPool``, attributes of
    ``pool`` (an instance, opened or not) and of ``conn`` (one of its connections)."""
    missing = [f"ConnectionPool.{name}" for name in METHODS if not callable(getattr(ConnectionPool, name, None))]
    if pool is not None:
        missing += [f"pool.{name}" for name in POOL_ATTRIBUTES if not hasattr(pool, name)]
    if conn is not None:
        missing += [f"connection.{name}" for name in CONNECTION_ATTRIBUTES if not hasattr(conn, name)]
    return missing


def pool_of(conn: object) -> ConnectionPool | None:
    """The pool a connection came from and goes back to (psycopg's private ``connection._pool``), or None for a
    connection no pool holds (closed by a reset, opened outside one, not a psycopg connection)."""
    pool = getattr(conn, "_pool", None)
    return pool if isinstance(pool, ConnectionPool) else None


def expired(conn: Connection[Any], now: float) -> bool:
    """True when ``conn`` is past its ``max_lifetime`` (psycopg's own jittered deadline)."""
    return bool(conn._expire_at <= now)


class PoolHooks(ConnectionPool):
    """psycopg's ``ConnectionPool`` with its private hooks turned into ours.

    Subclasses set :attr:`lifo` and :attr:`pre_ping` and implement :meth:`serve_while_refused`,
    :meth:`vet`, :meth:`replace_expired`, :meth:`connected`, :meth:`connect_failed` and :meth:`closing`.
    """

    lifo = False
    pre_ping = False

    # -- our hooks (no-ops here) -------------------------------------------------------------
    def serve_while_refused(self, timeout: float) -> Connection[Any] | None:
        """Before queueing a checkout: a connection opened in the caller, or None to queue."""
        return None

    def vet(self, conn: Connection[Any], deadline: float) -> Connection[Any]:
        """With :attr:`pre_ping`, a connection about to be handed out: return it, or a replacement."""
        return conn

    def replace_expired(self, conn: Connection[Any], deadline: float) -> Connection[Any]:
        """An idle connection past ``max_lifetime`` about to be handed out: return its replacement."""
        return conn

    def connected(self, conn: Connection[Any]) -> None:
        """A new server connection was opened (in the background or in a caller)."""

    def connect_failed(self, error: Exception) -> None:
        """Opening a server connection failed."""

    def closing(self, conn: Connection[Any]) -> None:
        """A server connection is going away (closed by the pool, or dropped broken)."""

    # -- psycopg's private hooks -------------------------------------------------------------
    def _get_ready_connection(self, timeout: float | None) -> Any:
        if self.lifo and self._pool and not (timeout is not None and timeout <= 0.0):
            conn = self._pool.pop()  # the newest; psycopg pops the oldest
            if len(self._pool) < self._nconns_min:
                self._nconns_min = len(self._pool)
            return conn
        return super()._get_ready_connection(timeout)

    def _getconn_unchecked(self, timeout: float) -> Any:
        conn = self.serve_while_refused(timeout)
        if conn is not None:
            return conn
        return super()._getconn_unchecked(timeout)

    def _getconn_with_check_loop(self, deadline: float) -> Any:
        # psycopg's loop checks with back-off and waits on its background reconnection
        # (2.8 s after a mass disconnect); ours vets once and replaces in the caller.
        conn = self._getconn_unchecked(deadline - monotonic())
        conn = self._vetted(conn, monotonic(), deadline)
        psycopg_logger.info("connection given by %r", self.name)  # psycopg's loop writes it here
        return conn

    def _vetted(self, conn: Any, now: float, deadline: float) -> Any:
        # Recycle at checkout (psycopg checks the age only on return), then the pre-ping; a check
        # interrupted (Ctrl-C, a cancelled task) gives the connection back, as psycopg's loop does.
        try:
            if expired(conn, now):
                return self.replace_expired(conn, deadline)
            if self.pre_ping:
                return self.vet(conn, deadline)
            return conn
        except Exception:
            raise
        except BaseException:
            if conn._pool is self:  # (not when a replacement already closed it)
                self._putconn(conn, from_getconn=True)
            raise

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            conn = super()._connect(timeout)
        except Exception as exc:
            self.connect_failed(exc)
            raise
        self.connected(conn)
        return conn

    def _close_connection(self, conn: Any) -> None:
        self.closing(conn)
        super()._close_connection(conn)

    def _return_connection(self, conn: Any, from_getconn: bool) -> None:
        if conn.pgconn.transaction_status == TransactionStatus.UNKNOWN:
            if self.take_surplus_slot():
                # psycopg would count it and open a successor; after a shrinking resize the
                # slot is given up instead.
                self.count(CONNECTIONS_LOST if from_getconn else RETURNS_BAD)
                self.closing(conn)
                return
            self.closing(conn)  # psycopg drops it without closing it
        super()._return_connection(conn, from_getconn)

    def _add_to_pool(self, conn: Any) -> None:
        # Every connection arriving in the pool (returned, or just opened) passes here: after a
        # shrinking resize, one beyond max_size is closed instead of kept.
        if self.take_surplus_slot():
            self._close_connection(conn)
            return
        super()._add_to_pool(conn)

    # -- psycopg's checkout and return, the common case in one step --------------------------------
    # getconn() and putconn() walk six to eight small methods each; with a connection idle, no
    # client waiting and nothing to reset, these do the same steps (and counts) in one call.
    # Anything else returns None / False and the caller takes psycopg's full path -- also
    # whenever psycopg.pool logs at INFO: its own code then writes its lines, from its own
    # place and at its own moments (someone is reading them; the speed matters less).
    def checkout_idle(self, now: float, deadline: float) -> Any:
        """psycopg's ``getconn`` (called at ``now``) when a connection is idle: taken out (LIFO or
        FIFO), counted, vetted; None when the full path must run (closed, nothing idle, no
        time left before ``deadline``, psycopg.pool logging at INFO)."""
        if self._closed or deadline <= monotonic() or psycopg_logger.isEnabledFor(logging.INFO):
            return None  # (no time left: psycopg's PoolTimeout, even with a connection idle)
        with self._lock:
            idle = self._pool
            if not idle:
                return None
            conn = idle.pop() if self.lifo else idle.popleft()
            if len(idle) < self._nconns_min:
                self._nconns_min = len(idle)
        self._stats[REQUESTS_NUM] += 1
        conn._pool = self
        if self.pre_ping or conn._expire_at <= now:  # (the call saved when there is nothing to vet)
            conn = self._vetted(conn, now, deadline)
        return conn

    def put_idle(self, conn: Any, now: float) -> bool:
        """Return ``conn`` (at ``now``) to the idle connections as psycopg's ``putconn`` would;
        False (nothing done) when the full path must run: not this pool's, closed, a ``reset``
        callback, not idle on the server, expired or drained, a waiting client, a shrunk pool,
        psycopg.pool logging at INFO."""
        if (getattr(conn, "_pool", None) is not self or self._closed or self._reset is not None
                or psycopg_logger.isEnabledFor(logging.INFO)
                or conn.pgconn.transaction_status != TransactionStatus.IDLE
                or conn._created_at <= self._drained_at or conn._expire_at <= now
                or self._nconns > self._max_size):
            return False
        with self._lock:
            if self._closed or self._waiting:
                return False
            conn._pool = None
            idle = self._pool
            idle.append(conn)
            if self._pool_full_event and len(idle) >= self._min_size:
                self._pool_full_event.set()
        return True

    # -- verbs over psycopg's state ---------------------------------------------------------------
    @property
    def user_check(self) -> Callable[[Any], object] | None:
        """The ``check`` callback the pool was built with (None: none)."""
        return self._check

    def idle_count(self) -> int:
        """Connections ready in the pool."""
        return len(self._pool)

    def idle_connections(self) -> list[Any]:
        """A copy of the idle connections (for fork handling)."""
        return list(self._pool)

    def waiting_count(self) -> int:
        """Clients queued for a connection."""
        return len(self._waiting)

    def slots_taken(self) -> int:
        """Connections open, in use, or being opened (psycopg's ``pool_size`` measure)."""
        return int(self._nconns)

    def count(self, key: str, amount: int = 1) -> None:
        """Add to one of psycopg's own counters (``get_stats()``)."""
        self._stats[key] += amount

    def open_connection(self, timeout: float | None) -> Any:
        """Open a server connection now, in the caller (configured and counted as psycopg does)."""
        return self._connect(timeout)

    def discard(self, conn: Any) -> None:
        """Close a connection the pool holds."""
        self._close_connection(conn)

    def replace_in_background(self) -> None:
        """Let psycopg's workers open a connection into a slot we hold (with their back-off)."""
        self.run_task(AddConnection(self))

    def reserve_slot(self, *, beyond_max: bool = False) -> bool:
        """Claim room for one more connection (False when the pool is at ``max_size``, unless
        ``beyond_max``: the surplus connection then closes when it, or another, arrives in the pool)."""
        with self._lock:
            if self._nconns >= self.max_size and not beyond_max:
                return False
            self._nconns += 1
            return True

    def release_slot(self) -> None:
        """Give back a slot claimed with :meth:`reserve_slot` whose connection never opened."""
        with self._lock:
            self._nconns -= 1

    def take_surplus_slot(self) -> bool:
        """After a shrinking resize: claim one surplus slot (the caller closes its connection)."""
        if self._nconns <= self.max_size:  # unlocked read: the common case costs nothing
            return False
        with self._lock:
            if self._nconns <= self.max_size:
                return False
            self._nconns -= 1
            return True

    def close_surplus_idle(self) -> None:
        """After a shrinking resize: close idle connections beyond ``max_size`` now."""
        surplus = []
        with self._lock:
            while self._nconns > self.max_size and self._pool:
                surplus.append(self._pool.popleft())  # the least recently used
                self._nconns -= 1
        for conn in surplus:
            self._close_connection(conn)

    def fail_waiters(self, make_error: Callable[[], Exception], *, unless_in_use: int) -> int:
        """Fail every queued client with a fresh ``make_error()``, unless a connection is idle or
        ``unless_in_use`` connections are out (one of them may come back); returns how many."""
        with self._lock:
            if self._pool or unless_in_use or not self._waiting:
                return 0
            waiting = list(self._waiting)
            self._waiting.clear()
        return sum(1 for position in waiting if position.fail(make_error()))

    def take_all_idle(self) -> list[Any]:
        """Take every idle connection out (letting the pool grow if it had none), as psycopg's check() does."""
        with self._lock:
            conns = list(self._pool)
            self._pool.clear()
            self._maybe_grow_pool()
        return conns

    def put_back_idle(self, conn: Any) -> None:
        """Return a tested connection to the idle pool (or to a waiting client)."""
        self._add_to_pool(conn)

    def make_inert(self) -> None:
        """In a forked child: mark the inherited pool closed without touching locks or threads."""
        self._closed = True
