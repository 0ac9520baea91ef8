"""The instrumented PostgreSQL pool: psycopg_pool's ``ConnectionPool`` with the guide's settings.

:class:`InstrumentedPool` adds what psycopg's pool lacks and the guide promises:

* LIFO hand-out (psycopg is FIFO only) when ``pool_use_lifo`` is on;
* a pre-ping on every checkout, and a prompt, synchronous replacement of a
  dead or expired idle connection in the caller (psycopg would wait on its
  background reconnection with back-off: 2.8 s after a mass disconnect);
* fail-fast when the server refuses connections (a clear :class:`DatabaseUnavailable`
  instead of waiting the whole ``pool_timeout``);
* exact statistics into :data:`connection_pools.stats.registry` and long-hold detection;
* ``pool_size``/``max_overflow`` never exceeded, even right after a shrinking resize.

The Django engine (``connection_pools.backends.postgresql``) builds one per alias and
per process; :func:`get_pool`, :func:`resize_pool` and :func:`warm_pools` are the API
the rest of the app (replicas, tuner, admin, ``warmpools``) uses.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from psycopg import Cursor, OperationalError
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.pool import AddConnection

from .. import background, conf, stats
from ..stats import PoolStats
from .requestctx import RequestInfo, current_request

if TYPE_CHECKING:
    from psycopg import Connection

logger = logging.getLogger("connection_pools.postgres")

#: The guide's six keys, accepted per alias in ``DATABASES[alias]["OPTIONS"]["pool"]``.
GUIDE_KEYS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "pool_use_lifo")
#: Extra keys we accept per alias (psycopg options the guide has no name for).
EXTRA_KEYS = ("max_idle",)
#: psycopg's own names, refused with a pointer to the guide's name.
_PSYCOPG_NAMES = {"min_size": "pool_size", "max_size": "max_overflow", "timeout": "pool_timeout",
                  "max_lifetime": "pool_recycle", "check": "pool_pre_ping"}
#: Idle overflow connections are closed by psycopg's shrink task every ``max_idle`` seconds.
DEFAULT_MAX_IDLE = 600.0


#: psycopg_pool internals our fast paths and LIFO rely on (tested with psycopg-pool 3.3).
#: :func:`missing_psycopg_pool_internals` names any that an upgrade removed, so the
#: system check and the test suite fail loudly instead of the pool misbehaving.
PSYCOPG_POOL_METHODS = (
    "_add_to_pool", "_check_pool_putconn", "_close_connection", "_connect", "_get_ready_connection",
    "_getconn_unchecked", "_maybe_grow_pool", "_return_connection",
)
PSYCOPG_POOL_ATTRIBUTES = (
    "_closed", "_drained_at", "_lock", "_max_size", "_min_size", "_nconns", "_nconns_min", "_pool", "_reset",
    "_waiting",
)
PSYCOPG_CONNECTION_ATTRIBUTES = ("_created_at", "_expire_at", "_pool")


def missing_psycopg_pool_internals(pool: ConnectionPool | None = None, conn: Any = None) -> list[str]:
    """The psycopg_pool internals we use that are missing: methods on the class, and the
    attributes of ``pool`` (an instance, opened or not) and of ``conn`` (one of its connections)."""
    missing = [f"ConnectionPool.{name}" for name in PSYCOPG_POOL_METHODS
               if not callable(getattr(ConnectionPool, name, None))]
    if pool is not None:
        missing += [f"pool.{name}" for name in PSYCOPG_POOL_ATTRIBUTES if not hasattr(pool, name)]
    if conn is not None:
        missing += [f"connection.{name}" for name in PSYCOPG_CONNECTION_ATTRIBUTES if not hasattr(conn, name)]
    return missing


class DatabaseUnavailable(OperationalError):
    """A checkout failed because the server refused or dropped new connections."""


@dataclass(frozen=True)
class PoolConfig:
    """The effective settings of one alias's pool (guide names)."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: float
    pool_pre_ping: bool
    pool_use_lifo: bool
    max_idle: float = DEFAULT_MAX_IDLE

    @property
    def max_size(self) -> int:
        return self.pool_size + self.max_overflow

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bad(alias: str, key: str, value: Any, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"DATABASES[{alias!r}]['OPTIONS']['pool'][{key!r}] is {value!r}: expected {expected}."
    )


def resolve_config(alias: str, overrides: Any) -> PoolConfig:
    """Merge ``CONNECTION_POOLS['DATABASE_POOL']`` with the alias's ``OPTIONS['pool']`` and validate."""
    if overrides is True or overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]['OPTIONS']['pool'] is {overrides!r}: expected a dict of "
            f"{', '.join(GUIDE_KEYS)} (may be empty)."
        )
    for key in overrides:
        if key in _PSYCOPG_NAMES:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['OPTIONS']['pool'] uses psycopg's {key!r}: use the guide's "
                f"{_PSYCOPG_NAMES[key]!r} instead (see docs/postgresql-pools.md)."
            )
        if key not in GUIDE_KEYS and key not in EXTRA_KEYS:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['OPTIONS']['pool'] has an unknown key {key!r}: accepted keys are "
                f"{', '.join(GUIDE_KEYS + EXTRA_KEYS)}."
            )
    merged = {**conf.get("DATABASE_POOL"), **overrides}
    for key in ("pool_size", "max_overflow"):
        value = merged[key]
        minimum = 1 if key == "pool_size" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _bad(alias, key, value, f"a whole number >= {minimum}")
    for key in ("pool_timeout", "pool_recycle", "max_idle"):
        value = merged.get(key, DEFAULT_MAX_IDLE)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise _bad(alias, key, value, "a number of seconds > 0")
    for key in ("pool_pre_ping", "pool_use_lifo"):
        if not isinstance(merged[key], bool):
            raise _bad(alias, key, merged[key], "True or False")
    return PoolConfig(
        pool_size=merged["pool_size"],
        max_overflow=merged["max_overflow"],
        pool_timeout=float(merged["pool_timeout"]),
        pool_recycle=float(merged["pool_recycle"]),
        pool_pre_ping=merged["pool_pre_ping"],
        pool_use_lifo=merged["pool_use_lifo"],
        max_idle=float(merged.get("max_idle", DEFAULT_MAX_IDLE)),
    )


#: A checked-out connection: (checked out at, request or None, the connection).
Lease = tuple[float, "RequestInfo | None", "Connection[Any]"]

_report_lock = threading.Lock()


class Process:
    """This process's pid, kept current by ``os.register_at_fork`` (cheaper than os.getpid() per call)."""

    pid = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=Process.refresh)
monotonic = time.monotonic
_threshold: list[float] = []


def long_hold_threshold() -> float:
    """``LONG_HOLD_SECONDS``, cached (read on every return) until the setting changes."""
    if not _threshold:
        _threshold.append(float(conf.get("LONG_HOLD_SECONDS")))
    return _threshold[0]


def _forget_threshold(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONNECTION_POOLS":
        _threshold.clear()


setting_changed.connect(_forget_threshold, dispatch_uid="connection_pools.postgres.threshold")


class InstrumentedPool(ConnectionPool):
    """A psycopg ``ConnectionPool`` that honours the guide's six settings and records exact stats."""

    def __init__(self, *, alias: str, config: PoolConfig, pool_stats: PoolStats, **kwargs: Any) -> None:
        self.alias = alias
        self.config = config
        self.stats = pool_stats
        self.pid = Process.pid
        self.use_lifo = config.pool_use_lifo
        self.pre_ping = config.pool_pre_ping
        self._leases: dict[int, Lease] = {}
        # Leases already reported as long holds while still out (not counted again on return).
        self._reported: set[int] = set()
        # Set when an attempt to open a server connection failed, cleared by the next success.
        self._connect_failing = False
        super().__init__(
            min_size=config.pool_size,
            max_size=config.max_size,
            timeout=config.pool_timeout,
            max_lifetime=config.pool_recycle,
            max_idle=config.max_idle,
            name=stats.pool_name_for_alias(alias),
            open=False,
            check=None,  # pre-ping is done by _getconn_with_check_loop below
            **kwargs,
        )

    # -- checkout / checkin ------------------------------------------------------
    def getconn(self, timeout: float | None = None) -> Connection[Any]:
        """Check a connection out (see :meth:`psycopg_pool.ConnectionPool.getconn`), recording the wait."""
        started = monotonic()
        request = current_request.get()
        conn = None
        if self._pool and not self._closed:
            # Fast path: an idle connection is ready. Same bookkeeping as psycopg's
            # _get_ready_connection, without its layers and log calls (a few us per checkout).
            with self._lock:
                if self._pool:
                    conn = self._pool.pop() if self.use_lifo else self._pool.popleft()
                    if len(self._pool) < self._nconns_min:
                        self._nconns_min = len(self._pool)
        try:
            if conn is None:
                conn = super().getconn(timeout)
            else:
                conn._pool = self
                if conn._expire_at <= started or (self.pre_ping and not self._alive(conn)):
                    deadline = started + (self.timeout if timeout is None else timeout)
                    conn = self._replace(conn, deadline, ping_failed=conn._expire_at > started)
        except PoolTimeout:
            self.stats.incr(stats.TIMEOUTS)
            _mark_failure(request, self.alias, "timeout")
            raise
        except DatabaseUnavailable:
            _mark_failure(request, self.alias, "unavailable")
            raise
        now = monotonic()
        wait = now - started
        self.stats.record_checkout(wait)
        if request is not None:
            request.wait_seconds += wait
            request.checkouts += 1
        self._leases[id(conn)] = (now, request, conn)
        return conn

    def putconn(self, conn: Connection[Any]) -> None:
        """Return a connection, recording how long it was held (and warning on a long hold)."""
        if conn._pool is not self:
            self._check_pool_putconn(conn)  # raises with psycopg's message
        lease = self._leases.pop(id(conn), None)
        now = monotonic()
        hold = None
        if lease is not None:
            hold = now - lease[0]
            if lease[1] is not None:
                lease[1].hold_seconds += hold
            if hold >= long_hold_threshold():
                self._long_hold_returned(id(conn), lease, hold)
        self.stats.record_checkin(hold)
        if (
            not self._closed
            and self._reset is None
            and conn.pgconn.transaction_status == TransactionStatus.IDLE
            and conn._expire_at > now
            and conn._created_at > self._drained_at
            and self._nconns <= self._max_size
        ):
            # Fast path: a healthy, idle, young connection goes straight back (or to a waiter).
            self._add_to_pool(conn)
            return
        super().putconn(conn)

    def _get_ready_connection(self, timeout: float | None) -> Connection[Any] | None:
        # psycopg pops the oldest returned connection (FIFO); LIFO takes the newest,
        # so a small hot set of connections stays warm and the rest can idle out.
        if self.use_lifo and self._pool and not (timeout is not None and timeout <= 0.0):
            conn = self._pool.pop()
            if len(self._pool) < self._nconns_min:
                self._nconns_min = len(self._pool)
            return conn
        return super()._get_ready_connection(timeout)

    def _getconn_unchecked(self, timeout: float) -> Connection[Any]:
        if self._connect_failing and not self._pool and not self._closed:
            # The server refused the last attempt: rather than queueing behind the
            # background back-off (1 s, 2 s, 4 s...), try once here and fail fast.
            conn = self._probe_connect(timeout)
            if conn is not None:
                return conn
        return super()._getconn_unchecked(timeout)

    def _maybe_grow_pool(self) -> None:
        # Called under the lock with the new client already queued. psycopg grows by one
        # even while the initial pool_size connections are still being opened, which
        # opens an overflow connection at start-up; grow only if those on their way
        # cannot serve everybody waiting.
        on_their_way = self._nconns - len(self._pool) - len(self._leases)
        if on_their_way >= len(self._waiting):
            return
        super()._maybe_grow_pool()

    def _getconn_with_check_loop(self, deadline: float) -> Connection[Any]:
        conn = self._getconn_unchecked(deadline - time.monotonic())
        if conn._expire_at <= time.monotonic():
            # psycopg only recycles on return; an idle connection past pool_recycle
            # would otherwise be handed out once more.
            return self._replace(conn, deadline, ping_failed=False)
        if self.pre_ping and not self._alive(conn):
            return self._replace(conn, deadline, ping_failed=True)
        return conn

    @staticmethod
    def _alive(conn: Connection[Any]) -> bool:
        # A real round trip, like SQLAlchemy's pre_ping: a cheaper socket poll would miss
        # a backend that was told to terminate but has not yet said so (measured under
        # load: requests failed right after pg_terminate_backend).
        if conn.pgconn.status != ConnStatus.OK:
            return False
        try:
            if conn.autocommit:
                # A plain cursor: the ping must not count as an application query in
                # django-prometheus' metrics (the connection's cursor_factory is metered).
                Cursor(conn).execute("")
            else:
                ConnectionPool.check_connection(conn)
        except Exception:
            return False
        return True

    def _replace(self, conn: Connection[Any], deadline: float, *, ping_failed: bool) -> Connection[Any]:
        """Close ``conn`` and open its successor synchronously in the caller, keeping its slot."""
        if ping_failed:
            self.stats.incr(stats.PRE_PING_FAILURES)
            logger.info("pool %s: pre-ping found a dead connection; replacing it", self.name)
        self._close_connection(conn)
        try:
            fresh = self._connect(timeout=max(deadline - time.monotonic(), 0.0) or None)
        except Exception as exc:
            # Give the slot back to psycopg's background reconnection, and fail now.
            self.run_task(AddConnection(self))
            raise DatabaseUnavailable(f"pool {self.name}: cannot open a new connection: {exc}") from exc
        fresh._pool = self
        return fresh

    def _probe_connect(self, timeout: float) -> Connection[Any] | None:
        with self._lock:
            if self._nconns >= self._max_size:
                return None
            self._nconns += 1
        try:
            conn = self._connect(timeout=max(timeout, 0.0) or None)
        except Exception as exc:
            with self._lock:
                self._nconns -= 1
            raise DatabaseUnavailable(f"pool {self.name}: cannot open a new connection: {exc}") from exc
        conn._pool = self
        return conn

    # -- server connections --------------------------------------------------------
    def _connect(self, timeout: float | None = None) -> Connection[Any]:
        try:
            conn = super()._connect(timeout)
        except Exception as exc:
            self.stats.incr(stats.CONNECTION_ERRORS)
            self._connect_failing = True
            self._fail_waiters(exc)
            raise
        self.stats.incr(stats.CONNECTIONS_CREATED)
        self._connect_failing = False
        return conn

    def _fail_waiters(self, exc: Exception) -> None:
        # Clients queued with nothing idle would otherwise wait out pool_timeout
        # while the server refuses connections: tell them now.
        with self._lock:
            if self._pool or not self._waiting:
                return
            waiting = list(self._waiting)
            self._waiting.clear()
        for position in waiting:
            position.fail(DatabaseUnavailable(f"pool {self.name}: cannot open a new connection: {exc}"))

    def _close_connection(self, conn: Connection[Any]) -> None:
        recycled = not self._closed and not conn.closed and conn._expire_at <= time.monotonic()
        super()._close_connection(conn)
        self._note_closed(conn, recycled=recycled)

    def _return_connection(self, conn: Connection[Any], from_getconn: bool) -> None:
        if conn.closed:
            super()._return_connection(conn, from_getconn)  # dropped and replaced by psycopg
            self._note_closed(conn, recycled=False)
            return
        if self._nconns > self._max_size:
            # After a shrinking resize: close surplus connections as they come back.
            with self._lock:
                surplus = self._nconns > self._max_size
                if surplus:
                    self._nconns -= 1
            if surplus:
                self._close_connection(conn)
                return
        super()._return_connection(conn, from_getconn)

    def _note_closed(self, conn: Connection[Any], *, recycled: bool) -> None:
        if getattr(conn, "_cp_closed", False):
            return
        conn._cp_closed = True
        self.stats.incr(stats.CONNECTIONS_CLOSED)
        if recycled:
            self.stats.incr(stats.RECYCLED)

    # -- long holds -------------------------------------------------------------------
    def _long_hold_returned(self, key: int, lease: Lease, hold: float) -> None:
        with _report_lock:
            if key in self._reported:  # the background scan already reported it
                self._reported.discard(key)
                return
        self._report_long_hold(lease, hold)

    def _report_long_hold(self, lease: Lease, hold: float) -> None:
        self.stats.incr(stats.LONG_HOLDS)
        request = lease[1]
        who = request.label if request is not None else "code outside a web request"
        logger.warning(
            "pool %s: a connection has been held for %.1f s (threshold %.1f s) by %s",
            self.name, hold, long_hold_threshold(), who,
        )

    def report_long_holds(self) -> int:
        """Warn about connections still checked out longer than the threshold (leaks); return how many."""
        threshold = long_hold_threshold()
        now = monotonic()
        found = 0
        for key, lease in list(self._leases.items()):
            if now - lease[0] < threshold:
                continue
            with _report_lock:
                # Re-checked under the lock: putconn pops the lease before it looks at _reported.
                if key not in self._leases or key in self._reported:
                    continue
                self._reported.add(key)
            self._report_long_hold(lease, now - lease[0])
            found += 1
        return found

    # -- reading ----------------------------------------------------------------------
    def gauges(self) -> dict[str, int]:
        """Live gauges (psycopg's ``get_stats()`` omits zero keys; these never do)."""
        size = self._nconns
        return {
            stats.ACTIVE: len(self._leases),
            stats.AVAILABLE: len(self._pool),
            stats.SIZE: size,
            stats.WAITING: len(self._waiting),
            stats.OVERFLOW_IN_USE: max(0, size - self._min_size),
            stats.MIN_SIZE: self._min_size,
            stats.MAX_SIZE: self._max_size,
        }

    def wait_ready(self, timeout: float) -> bool:
        """Wait until ``pool_size`` connections are open (idle or in use); never closes the pool."""
        deadline = time.monotonic() + timeout
        while len(self._pool) + len(self._leases) < self._min_size:
            if time.monotonic() >= deadline or self._closed:
                return False
            time.sleep(0.005)
        return True

    def orphan(self) -> None:
        """In a forked child: make this inherited pool inert without touching the parent's sessions.

        Closing an inherited connection would send PostgreSQL's Terminate message on the
        socket the parent still uses; we point each socket at /dev/null first.
        """
        self.stats = PoolStats(self.name, "postgresql")  # counts no longer go to this process's registry
        conns = list(self._pool) + [lease[2] for lease in self._leases.values()]
        for conn in conns:
            detach_connection(conn)
        self._closed = True  # any further use fails fast with PoolClosed instead of touching locks


def detach_connection(conn: Any) -> None:
    """Point an inherited connection's socket at /dev/null so closing it cannot reach the server."""
    try:
        fd = conn.pgconn.socket
    except Exception:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _mark_failure(request: RequestInfo | None, alias: str, kind: str) -> None:
    if request is not None:
        request.db_failure = request.db_failure or kind
        request.failed_aliases.append(alias)


# --- building, finding, resizing, warming ------------------------------------------------

def role_for(settings_dict: dict[str, Any], alias: str) -> str:
    """``replica`` for an alias that mirrors another in tests, ``primary`` otherwise."""
    return "replica" if (settings_dict.get("TEST") or {}).get("MIRROR") else "primary"


def target_of(settings_dict: dict[str, Any]) -> tuple[Any, ...]:
    """Which server and database a pool connects to (a changed target means a new pool)."""
    return (settings_dict["NAME"], settings_dict["HOST"], settings_dict["PORT"], settings_dict["USER"])


def build_pool(wrapper: Any) -> InstrumentedPool:
    """Build (not open) the instrumented pool for a ``DatabaseWrapper`` of our engine."""
    alias = wrapper.alias
    settings_dict = wrapper.settings_dict
    config = resolve_config(alias, settings_dict["OPTIONS"].get("pool"))
    if settings_dict.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] sets CONN_MAX_AGE={settings_dict['CONN_MAX_AGE']!r} and a pool: "
            "pooled connections go back to the pool at the end of each request, so set CONN_MAX_AGE to 0 "
            "(or remove OPTIONS['pool'] to use persistent connections)."
        )
    name = stats.pool_name_for_alias(alias)
    pool_stats = stats.registry.get_or_create(name, "postgresql", alias=alias, role=role_for(settings_dict, alias))
    connect_kwargs = wrapper.get_connection_params()
    connect_kwargs["autocommit"] = True  # Django sets the real mode on checkout
    pool = InstrumentedPool(
        alias=alias,
        config=config,
        pool_stats=pool_stats,
        kwargs=connect_kwargs,
        configure=wrapper._configure_connection,
    )
    pool.target = target_of(settings_dict)
    pool.settings_ref = settings_dict
    pool.name_ref = settings_dict["NAME"]
    pool_stats.gauge_source = lambda: _gauges_for(alias)
    pool_stats.config_source = lambda: _config_for(alias)
    return pool


def _live_pools() -> dict[str, InstrumentedPool]:
    from ..backends.postgresql.base import DatabaseWrapper

    return DatabaseWrapper._connection_pools


def _gauges_for(alias: str) -> dict[str, int]:
    pool = _live_pools().get(alias)
    if pool is None or pool.pid != os.getpid():
        return dict.fromkeys((stats.ACTIVE, stats.AVAILABLE, stats.SIZE, stats.WAITING, stats.OVERFLOW_IN_USE), 0)
    return pool.gauges()


def _config_for(alias: str) -> dict[str, Any]:
    pool = _live_pools().get(alias)
    if pool is None:
        return {}
    return {
        **pool.config.as_dict(),
        "pool_size": pool.min_size,
        "max_overflow": pool.max_size - pool.min_size,
    }


def pooled_aliases() -> list[str]:
    """Aliases of ``DATABASES`` that use our engine with a pool."""
    from django.db import connections

    return [
        alias
        for alias, db in connections.settings.items()
        if db.get("ENGINE") == "connection_pools.backends.postgresql"
        and (db.get("OPTIONS") or {}).get("pool", False) not in (False, None)
    ]


def get_pool(alias: str) -> InstrumentedPool | None:
    """The live pool of ``alias`` in this process (built on first use), or None if it is not pooled."""
    from django.db import connections

    if alias not in connections.settings:
        raise ValueError(f"unknown database alias {alias!r} (configured: {', '.join(connections.settings)})")
    return connections[alias].pool


def ping(alias: str, *, timeout: float | None = None) -> float:
    """Check a connection out of ``alias``'s pool, run ``SELECT 1``, return it; the seconds it took.

    Raises ``PoolTimeout`` / :class:`DatabaseUnavailable` / psycopg errors, so health
    checks can report the reason. The checkout is recorded like any other.
    """
    pool = get_pool(alias)
    if pool is None:
        raise ValueError(f"database alias {alias!r} is not pooled")
    pool.open()
    started = monotonic()
    conn = pool.getconn(timeout=timeout)
    try:
        conn.execute("SELECT 1")
    finally:
        pool.putconn(conn)
    return monotonic() - started


def resize_pool(alias: str, *, pool_size: int, max_overflow: int, reason: str = "manual") -> dict[str, Any]:
    """Change ``pool_size``/``max_overflow`` of a live pool (psycopg's ``resize``).

    Growing opens connections in the background; shrinking closes surplus
    connections as they are returned. Sends ``pool_resized`` and returns
    ``{"pool", "old", "new"}``.
    """
    from ..signals import pool_resized

    for key, value, minimum in (("pool_size", pool_size, 1), ("max_overflow", max_overflow, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{key} must be a whole number >= {minimum}, not {value!r}")
    pool = get_pool(alias)
    if pool is None:
        raise ValueError(f"database alias {alias!r} has no pool to resize")
    old = {"pool_size": pool.min_size, "max_overflow": pool.max_size - pool.min_size}
    pool.resize(pool_size, pool_size + max_overflow)
    new = {"pool_size": pool_size, "max_overflow": max_overflow}
    logger.info("pool %s resized from %s to %s (%s)", pool.name, old, new, reason)
    pool_resized.send(sender=InstrumentedPool, pool=pool.name, old=old, new=new, reason=reason)
    return {"pool": pool.name, "old": old, "new": new}


def warm_pools(aliases: list[str] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
    """Open the pools and wait until each holds ``pool_size`` connections.

    Returns one report per alias: ``alias``, ``pool``, ``ready`` (bool), ``open``
    (connections open), ``wanted``, ``seconds`` and ``error`` (or None). A pool
    that is not ready in ``timeout`` (default: its ``pool_timeout``) stays open
    and keeps trying in the background.
    """
    reports = []
    for alias in aliases if aliases is not None else pooled_aliases():
        started = time.monotonic()
        report: dict[str, Any] = {"alias": alias, "pool": stats.pool_name_for_alias(alias), "ready": False,
                                  "open": 0, "wanted": 0, "seconds": 0.0, "error": None}
        try:
            pool = get_pool(alias)
            if pool is None:
                raise ValueError(f"database alias {alias!r} is not pooled")
            pool.open()
            report["wanted"] = pool.min_size
            report["ready"] = pool.wait_ready(pool.config.pool_timeout if timeout is None else timeout)
            report["open"] = len(pool._pool) + len(pool._leases)
            if not report["ready"]:
                report["error"] = "not ready in time (is the server up?)"
        except Exception as exc:
            report["error"] = str(exc)
        report["seconds"] = time.monotonic() - started
        reports.append(report)
    return reports


def after_fork() -> None:
    """In a forked child: drop every pool inherited from the parent, and warm if configured."""
    from django.apps import apps
    from django.db import connections

    if not apps.ready:
        return  # nothing was loaded before the fork (no --preload): no pool to replace
    pools = _live_pools()
    pid = os.getpid()
    inherited = {alias: pool for alias, pool in list(pools.items()) if pool.pid != pid}
    for wrapper in connections.all(initialized_only=True):
        conn = wrapper.connection
        if conn is not None and getattr(conn, "_pool", None) in inherited.values():
            detach_connection(conn)
            wrapper.connection = None
    for alias, pool in inherited.items():
        forget_inherited(alias, pool)
    if conf.get("WARM_ON_STARTUP"):
        warm_pools()


def close_pools(timeout: float = 1.0) -> None:
    """Close this process's pools (at worker exit), so shutdown does not wait on psycopg's threads."""
    pools = _live_pools()
    for alias, pool in list(pools.items()):
        if pool.pid == os.getpid():
            pools.pop(alias, None)
            pool.close(timeout=timeout)


def forget_inherited(alias: str, pool: InstrumentedPool) -> None:
    """Replace an inherited pool: make it inert, drop it, and zero its stats in this process."""
    pool.orphan()
    pools = _live_pools()
    if pools.get(alias) is pool:
        del pools[alias]
    pool_stats = stats.registry.get(stats.pool_name_for_alias(alias))
    if pool_stats is not None:
        pool_stats.set_active(0)
        pool_stats.reset()
    logger.info("pool %s: inherited from pid %s, replaced in pid %s", pool.name, pool.pid, os.getpid())


@background.every(lambda: min(max(conf.get("LONG_HOLD_SECONDS") / 2, 0.5), 5.0), "postgres_long_holds")
def report_long_holds() -> int:
    """Background job: warn about connections held past the threshold and not yet returned."""
    pid = os.getpid()
    return sum(pool.report_long_holds() for pool in list(_live_pools().values()) if pool.pid == pid)
