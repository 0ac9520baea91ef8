"""The instrumented pool: psycopg_pool's ``ConnectionPool``, its contract kept, plus the guide.

:class:`InstrumentedPool` is a ``psycopg_pool.ConnectionPool``: every documented method
behaves as psycopg documents it (``getconn``/``putconn``/``connection``, ``open``/``close``,
``wait``, ``resize``, ``check``, ``drain``, ``get_stats``/``pop_stats``, ``reconnect_failed``),
and psycopg's counters stay exact on our paths. On top of that, deliberately:

* **LIFO** (``lifo``): the most recently returned connection is handed out next;
* **pre-ping** (``pre_ping``, or a ``check`` callback, which then *is* the pre-ping): a dead
  idle connection is closed and its successor opened **in the caller**, with no back-off;
  ``pre_ping_window`` skips the round trip for a connection proved alive that recently;
* **recycle at checkout**: a connection past ``max_lifetime`` is replaced before it is
  handed out (psycopg checks only on return);
* **fail fast**: while the server refuses connections and nothing is idle or out, a
  checkout raises :class:`DatabaseUnavailable` (a ``PoolTimeout``) after one attempt
  instead of waiting the whole ``timeout`` behind the background back-off;
* **shrinking resize**: surplus connections are closed at once (idle) or on return;
* its own counters (:class:`~connection_pools.core.counters.PoolCounters`, read by the
  source :mod:`connection_pools.sources.postgres`) and long-hold detection.

Every psycopg_pool private name it relies on lives in :mod:`.compat`.
"""

from __future__ import annotations

import logging
import os
import threading
from time import monotonic
from typing import TYPE_CHECKING, Any

from psycopg import Cursor
from psycopg.pq import ConnStatus
from psycopg_pool import PoolTimeout

from ...conf.aliases import pool_name_for_alias
from ...conf.pool_options import PoolConfig
from ...core.context import RequestContext, current_request
from ...core.counters import PoolCounters
from ...core.snapshots import Gauges, Hold
from . import compat
from .leases import BACKEND_PID, QUERY_SECONDS, Leases, backend_pid_of

if TYPE_CHECKING:
    from psycopg import Connection

logger = logging.getLogger("connection_pools.postgres")


class DatabaseUnavailable(PoolTimeout):
    """A checkout failed at once because the server refused (or dropped) new connections.

    A ``PoolTimeout`` (and so a psycopg ``OperationalError``): code written for psycopg's
    pool that catches ``PoolTimeout`` catches it too.
    """


class _Refused(Exception):
    """Carries a :class:`DatabaseUnavailable` through psycopg's ``getconn``, which would turn
    any ``PoolTimeout`` raised inside it into a plain one with a generic message."""

    def __init__(self, error: DatabaseUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class Process:
    """This process's pid, kept current by ``os.register_at_fork`` (cheaper than os.getpid() per call)."""

    pid = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=Process.refresh)

#: Attribute names we set on psycopg connections (psycopg's own are underscored).
ALIVE_AT = "cp_alive_at"
COUNTED_CLOSED = "cp_counted_closed"


def ping(conn: Connection[Any]) -> None:
    """Our pre-ping: one round trip (an empty query), raising if the connection is dead.

    A plain ``Cursor`` so the connection's ``cursor_factory`` (the user's, maybe metered)
    is not involved; autocommit as psycopg's ``check_connection`` does, so no transaction
    is left open.
    """
    if conn.pgconn.status != ConnStatus.OK:
        raise ConnectionError("the connection is closed")
    if conn.autocommit:
        Cursor(conn).execute("")
        return
    conn.autocommit = True
    try:
        Cursor(conn).execute("")
    finally:
        if not conn.closed:
            conn.autocommit = False


class InstrumentedPool(compat.PoolHooks):
    """A psycopg ``ConnectionPool`` with the guide's settings and exact statistics (see the module docstring)."""

    def __init__(self, *, alias: str, config: PoolConfig, kwargs: dict[str, Any], configure: Any = None) -> None:
        self.alias = alias
        self.config = config
        #: What this pool counted (read by its source, reset by ``reset-stats``).
        self.counters = PoolCounters()
        self.pid = Process.pid
        self.lifo = config.lifo
        self.pre_ping = config.pre_ping
        self.pre_ping_window = config.pre_ping_window
        #: ``release = "transaction"``: the engine gives connections back after each transaction (:mod:`.release`).
        self.per_transaction = config.per_transaction
        self.leases = Leases(pool_name_for_alias(alias))
        #: Set when opening a server connection failed; cleared by the next success.
        self.refusing = False
        # Set by the engine once built: the (NAME, HOST, PORT, USER) it connects to, and the
        # settings dict and NAME object it was built from (compared by identity, per checkout).
        self.target: tuple[Any, ...] = ()
        self.settings_ref: object = None
        self.name_ref: object = None
        #: Server backend pids of the connections this pool opened and has not closed (the census
        #: compares them with what the server holds under our application_name: leaks).
        self.backend_pids: set[int] = set()
        options = config.psycopg_kwargs()
        options.setdefault("name", pool_name_for_alias(alias))
        super().__init__(kwargs=kwargs, configure=_chain(configure, config.configure), open=False, **options)

    # -- checkout / return (psycopg's public API, recorded) -------------------------------------
    def getconn(self, timeout: float | None = None) -> Connection[Any]:
        """Check a connection out, as :meth:`psycopg_pool.ConnectionPool.getconn`; records the wait.

        Raises ``PoolTimeout`` when none is free in time, :class:`DatabaseUnavailable` at once
        when the server refuses connections and nothing could come back, ``PoolClosed``.
        """
        started = monotonic()
        request = current_request.get()
        try:
            conn: Connection[Any] | None = self.checkout_idle(
                started, started + (self.timeout if timeout is None else timeout))
            if conn is None:
                conn = super().getconn(timeout)
        except _Refused as refused:
            _mark_failure(request, self.alias, "unavailable")
            raise refused.error from refused.error.__cause__
        except PoolTimeout:
            self.counters.incr("timeouts")
            _mark_failure(request, self.alias, "timeout")
            raise
        now = monotonic()
        wait = now - started
        self.counters.checkout(wait)
        if request is not None:
            request.wait_seconds += wait
            request.checkouts += 1
        self.leases[id(conn)] = (now, request, conn)
        return conn

    def putconn(self, conn: Connection[Any]) -> None:
        """Return a connection, as :meth:`psycopg_pool.ConnectionPool.putconn` (``ValueError`` for
        one that is not out of this pool); records how long it was held."""
        now = monotonic()
        ended = self.leases.end(conn, now)
        if ended is None:
            super().putconn(conn)  # not ours (or returned twice): psycopg raises ValueError
            return
        lease, hold, long_hold = ended
        request = lease[1]
        if request is not None:
            request.hold_seconds += hold
        if long_hold:
            self.counters.incr("long_holds")
            self.leases.log_long_hold(lease, hold)
        # Recorded before the connection goes back: another thread may take it at once,
        # and "active" must never count it twice.
        self.counters.checkin(hold, conn.__dict__.pop(QUERY_SECONDS, 0.0))  # (its statements' time, zeroed)
        setattr(conn, ALIVE_AT, now)
        if not self.put_idle(conn, now):
            super().putconn(conn)

    # -- our hooks ---------------------------------------------------------------------------
    def vet(self, conn: Connection[Any], deadline: float) -> Connection[Any]:
        window = self.pre_ping_window
        if window and monotonic() - getattr(conn, ALIVE_AT, 0.0) < window:
            alive = conn.pgconn.status == ConnStatus.OK  # proved alive moments ago: no round trip
        else:
            alive = self._passes_check(conn)
        if alive:
            return conn
        self.count(compat.CONNECTIONS_LOST)
        self.counters.incr("pre_ping_failures")
        logger.info("pool %s: pre-ping found a dead connection; replacing it", self.name)
        return self._replace(conn, deadline)

    def replace_expired(self, conn: Connection[Any], deadline: float) -> Connection[Any]:
        return self._replace(conn, deadline)

    def serve_while_refused(self, timeout: float) -> Connection[Any] | None:
        if not self.refusing or self.closed or self.idle_count() or len(self.leases):
            return None
        # The server refused the last attempt and nothing could come back: rather than
        # queueing behind the background back-off (1 s, 2 s, 4 s...), try once here -- also when
        # every slot is such a background attempt (after reconnect_timeout, a pool of one): a
        # slot beyond max_size, given up when the surplus connection arrives in the pool.
        self.reserve_slot(beyond_max=True)
        try:
            return self.open_connection(timeout=max(timeout, 0.0) or None)  # type: ignore[no-any-return]
        except Exception as exc:
            self.release_slot()
            self.count(compat.REQUESTS_ERRORS)
            raise self._refused(exc) from exc

    def connected(self, conn: Connection[Any]) -> None:
        self.counters.incr("connections_created")
        pid = conn.info.backend_pid
        setattr(conn, BACKEND_PID, pid)
        self.backend_pids.add(pid)
        setattr(conn, ALIVE_AT, monotonic())
        if self.refusing:
            self.refusing = False
            # The server is back after refusing connections: the idle connections opened
            # before the outage are most likely dead. Weed them out now, not at checkout,
            # so the pool is back to min_size working connections by itself.
            threading.Thread(target=self._check_after_outage, name=f"{self.name}-recheck", daemon=True).start()

    def connect_failed(self, error: Exception) -> None:
        self.counters.incr("connection_errors")
        self.refusing = True
        # Clients queued with nothing idle or out would wait out the whole timeout while
        # the server refuses connections: tell them now.
        self.fail_waiters(lambda: self._refused(error), unless_in_use=len(self.leases))

    def closing(self, conn: Connection[Any]) -> None:
        if getattr(conn, COUNTED_CLOSED, False):
            return
        setattr(conn, COUNTED_CLOSED, True)
        self.backend_pids.discard(backend_pid_of(conn))  # (not conn.info: its user may have closed it)
        self.counters.incr("connections_closed")
        if not self.closed and not conn.closed and compat.expired(conn, monotonic()):
            self.counters.incr("recycled")

    # -- the pre-ping and its replacement --------------------------------------------------------
    def _passes_check(self, conn: Connection[Any]) -> bool:
        check = self.user_check
        try:
            if check is not None:
                check(conn)
            else:
                ping(conn)
        except Exception as exc:
            logger.debug("pool %s: connection failed its check: %s", self.name, exc)
            if check is not None:
                compat.psycopg_logger.info("connection failed check: %s", exc)  # as psycopg's check does
            return False
        return True

    def _replace(self, conn: Connection[Any], deadline: float) -> Connection[Any]:
        """Close ``conn`` and open its successor in the caller, keeping its slot."""
        self.discard(conn)
        try:
            return self.open_connection(timeout=max(deadline - monotonic(), 0.0) or None)  # type: ignore[no-any-return]
        except Exception as exc:
            self.replace_in_background()  # the slot goes back to psycopg's reconnection
            self.count(compat.REQUESTS_ERRORS)
            raise self._refused(exc) from exc
        except BaseException:
            self.replace_in_background()  # interrupted (Ctrl-C, a cancelled task): the same, uncounted
            raise

    def _refused(self, error: BaseException) -> _Refused:
        unavailable = DatabaseUnavailable(f"pool {self.name}: cannot open a new connection: {error}")
        unavailable.__cause__ = error
        return _Refused(unavailable)

    # -- psycopg's maintenance, with closes counted -------------------------------------------------
    def resize(self, min_size: int, max_size: int | None = None) -> None:
        """psycopg's ``resize``; when shrinking, idle connections beyond the new ``max_size`` close
        at once and busy ones as they come back, so the total never exceeds it."""
        super().resize(min_size, max_size)
        self.close_surplus_idle()

    def check(self) -> None:
        """psycopg's ``check()``: test every idle connection, replace the broken and expired ones
        (closing them, and counting them, instead of dropping them)."""
        for conn in self.take_all_idle():
            if compat.expired(conn, monotonic()):
                compat.psycopg_logger.info("discarding expired connection")  # psycopg's own line
                self.discard(conn)
                self.replace_in_background()
                continue
            try:
                self.check_connection(conn)
            except Exception:
                self.count(compat.CONNECTIONS_LOST)
                compat.psycopg_logger.warning("discarding broken connection: %s", conn)  # psycopg's own line
                self.discard(conn)
                self.replace_in_background()
            else:
                self.put_back_idle(conn)

    def reconnect_failed(self) -> None:
        """psycopg gave up a reconnection after ``reconnect_timeout``: log it, call the user's
        callback, and start a new attempt, as psycopg documents (its code gives the slot up,
        leaving the pool below ``min_size`` until a client waits)."""
        logger.warning("pool %s: could not connect for %.0f s; still trying", self.name, self.reconnect_timeout)
        try:
            super().reconnect_failed()
        finally:
            if not self.closed and self.slots_taken() < self.min_size and self.reserve_slot():
                self.replace_in_background()

    def _check_after_outage(self) -> None:
        if not self.closed:
            self.check()

    # -- reading -----------------------------------------------------------------------------------
    def gauges(self) -> Gauges:
        """Live gauges (psycopg's ``get_stats()`` omits zero keys; these never do)."""
        size = self.slots_taken()
        return Gauges(active=len(self.leases), available=self.idle_count(), open=size, waiting=self.waiting_count(),
                      capacity=self.min_size, max_capacity=self.max_size, overflow_in_use=max(0, size - self.min_size))

    def known_backends(self) -> tuple[int, ...]:
        """The server backend pids of this pool's open connections, sorted."""
        return tuple(sorted(self.backend_pids.copy()))

    def holds(self) -> tuple[Hold, ...]:
        """Connections out longer than ``LONG_HOLD_SECONDS`` now, longest first (at most 10)."""
        return self.leases.holds(monotonic())

    def open_count(self) -> int:
        """Connections open right now (idle or out)."""
        return self.idle_count() + len(self.leases)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until ``min_size`` connections are open (idle or out); unlike ``wait()``, never closes the pool."""
        import time

        deadline = monotonic() + timeout
        while self.open_count() < self.min_size:
            if monotonic() >= deadline or self.closed:
                return False
            time.sleep(0.005)
        return True

    def report_long_holds(self) -> int:
        """Warn about connections still out longer than the threshold (leaks); return how many."""
        found = self.leases.report_long_holds()
        for lease, hold in found:
            self.counters.incr("long_holds")
            self.leases.log_long_hold(lease, hold)
        return len(found)


def _chain(first: Any, second: Any) -> Any:
    """One ``configure`` callback running Django's, then the user's."""
    if first is None or second is None:
        return first or second

    def configure(conn: Connection[Any]) -> None:
        first(conn)
        second(conn)

    return configure


def _mark_failure(request: RequestContext | None, alias: str, kind: str) -> None:
    if request is not None:
        request.db_failure = request.db_failure or kind
        request.failed_aliases.append(alias)
