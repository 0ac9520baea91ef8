"""Instrumented redis-py connection pools: the ``main`` and ``cache`` Redis pools.

Two pool classes, :class:`InstrumentedConnectionPool` (fails at once when full) and
:class:`InstrumentedBlockingConnectionPool` (a burst beyond ``max_connections``
queues up to ``blocking_timeout`` seconds), count into their own
:class:`~connection_pools.core.counters.PoolCounters` (read by the source
:mod:`connection_pools.sources.redis` as ``redis_<name>``):

* checkouts (one per command or pipeline), wait (blocking pool: seconds queued for
  a free slot) and hold times, ``timeouts`` (a checkout that got no connection);
* ``connections_created`` / ``connections_closed``: real TCP connects and
  disconnects, counted by an instrumented connection class, so reconnects after an
  outage and leaks show up (django-redis' own counter stays 0 on the blocking pool);
* ``connection_errors`` (connect failures, dropped connections) and
  ``socket_timeouts`` (a command that got no answer within ``socket_timeout``);
* gauges read from the live pool through redis-py's public
  ``get_connection_count()``: in use, available, size, ``max_connections``, waiting.

django-redis builds the ``cache`` pool from ``CACHES["default"]`` (see
``connection_pools.conf.env.caches``); :func:`get_redis` gives clients on the shared
per-process pools. Pools are fork-safe: redis-py resets a pool whose pid changed,
and our :meth:`~_InstrumentedPoolMixin.reset` then zeroes the statistics the child
inherited.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from redis.connection import BlockingConnectionPool, Connection, ConnectionPool, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ... import conf
from ...conf import get as conf_get
from ...conf.aliases import pool_name_for_redis
from ...conf.env import redis_url_error
from ...core.counters import PoolCounters
from ...core.masking import mask_text
from ...core.snapshots import CounterName, Gauges, Scalar

logger = logging.getLogger(__name__)

POOL_NAMES: tuple[str, ...] = ("main", "cache")

#: The installed redis-py, as a comparable tuple.
REDIS_PY_VERSION: tuple[int, ...] = tuple(int(p) for p in redis.__version__.split(".")[:2] if p.isdigit())
#: redis-py >= 7 has the public ``ConnectionPool.get_connection_count()`` we read gauges from;
#: without it the gauges come from our own bookkeeping (we read no private attribute).
HAS_CONNECTION_COUNT = REDIS_PY_VERSION >= (7, 0) and hasattr(ConnectionPool, "get_connection_count")
#: The attribute and values get_connection_count() labels its counts with (OpenTelemetry names).
CONNECTION_STATE_ATTRIBUTE = "db.client.connection.state"
_IDLE, _USED = "idle", "used"


# --- connections ------------------------------------------------------------------
class _StatsConnectionMixin:
    """Counts real connects, disconnects and socket errors of one connection into its pool's stats."""

    _cp_pool: _InstrumentedPoolMixin | None = None  # set by the pool in make_connection
    #: True between a counted connect and its counted disconnect.
    _cp_open: bool = False
    #: True while the connection is being established (connect and handshake).
    _cp_connecting: bool = False

    def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
        was_connected = self.is_connected  # type: ignore[attr-defined]
        self._cp_connecting = True
        try:
            result = super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except RedisError as exc:
            # Whatever failed while connecting (the TCP connect, or no answer to the handshake)
            # is a failed connection, not a command's socket timeout.
            self._cp_failed(exc, "connection_errors")
            raise
        finally:
            self._cp_connecting = False
        pool = self._cp_pool
        if pool is not None and not was_connected and self.is_connected:  # type: ignore[attr-defined]
            self._cp_open = True
            pool._cp_connected()
        return result

    def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        with self._cp_counting_errors():
            return super().send_packed_command(*args, **kwargs)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        with self._cp_counting_errors():
            return super().read_response(*args, **kwargs)  # type: ignore[misc]

    @contextmanager
    def _cp_counting_errors(self) -> Iterator[None]:
        """Count a socket timeout or a connection error of the I/O inside, then re-raise it."""
        try:
            yield
        except RedisTimeoutError as exc:
            if not self._cp_connecting:  # a handshake's timeout is the connect's failure
                self._cp_failed(exc, "socket_timeouts")
            raise
        except RedisConnectionError as exc:
            self._cp_failed(exc, "connection_errors")
            raise

    def disconnect(self, *args: Any, **kwargs: Any) -> Any:
        result = super().disconnect(*args, **kwargs)  # type: ignore[misc]
        pool = self._cp_pool
        # Only a connection counted as created is counted as closed: one whose
        # handshake failed (a hung Redis) was never "created" for the statistics.
        if pool is not None and self._cp_open and not self.is_connected:  # type: ignore[attr-defined]
            self._cp_open = False
            pool.counters.incr("connections_closed")
        return result

    def _cp_failed(self, exc: BaseException, key: CounterName) -> None:
        # A connect error surfaces through send_packed_command too: count it once.
        if getattr(exc, "_cp_counted", False) or self._cp_pool is None:
            return
        exc._cp_counted = True  # type: ignore[attr-defined]
        self._cp_pool._cp_failed(exc, key)


@functools.cache
def instrumented_connection_class(base: type) -> type:
    """``base`` (``Connection``, ``SSLConnection``, ``UnixDomainSocketConnection``) with statistics."""
    if issubclass(base, _StatsConnectionMixin):
        return base
    return type(f"Instrumented{base.__name__}", (_StatsConnectionMixin, base), {"__module__": __name__})


# --- pools ------------------------------------------------------------------------
class _InstrumentedPoolMixin:
    """What both instrumented pool classes share: checkout/checkin bookkeeping and stats."""

    pool_name: str
    counters: PoolCounters
    base_connection_class: type
    max_connections: int
    pid: int
    connection_kwargs: dict[str, Any]
    connection_class: type

    def _cp_setup(self, pool_name: str, connection_class: type) -> type:
        self.pool_name = pool_name
        #: What this pool counted (read by its source, reset by ``reset-stats``).
        self.counters = PoolCounters()
        self.base_connection_class = connection_class
        self._cp_lock = threading.Lock()
        self._cp_leases: dict[int, float] = {}  # id(connection) -> checkout time
        self._cp_local = threading.local()
        self._cp_waiting = 0
        self._cp_objects = 0
        self._cp_down_since: float | None = None
        return instrumented_connection_class(connection_class)

    # -- redis-py hooks ----------------------------------------------------------------
    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Check out a connection (redis-py's behaviour) and record the checkout."""
        local = self._cp_local
        local.wait = None
        try:
            connection = super().get_connection(*args, **kwargs)  # type: ignore[misc]
        except MaxConnectionsError:
            # The non-blocking pool is full: the checkout fails without waiting.
            self.counters.incr("timeouts")
            raise
        if not getattr(local, "warming", False):
            with self._cp_lock:
                self._cp_leases[id(connection)] = time.monotonic()
            self.counters.checkout(local.wait or 0.0)
        return connection

    def release(self, connection: Any) -> None:
        """Return a connection (redis-py's behaviour) and record how long it was held."""
        with self._cp_lock:
            started = self._cp_leases.pop(id(connection), None)
        super().release(connection)  # type: ignore[misc]
        if started is not None:
            self.counters.checkin(time.monotonic() - started)

    def make_connection(self) -> Any:
        """Create a connection object (redis-py's behaviour) wired to this pool's stats."""
        connection = super().make_connection()  # type: ignore[misc]
        self._cp_objects += 1
        if isinstance(connection, _StatsConnectionMixin):
            connection._cp_pool = self
        return connection

    def reset_counters(self) -> None:
        """Zero this pool's counters (``reset-stats``); the live connections are untouched."""
        self.counters.reset()

    def reset(self) -> None:
        """redis-py's reset; after a fork also start this process's statistics from zero."""
        forked = getattr(self, "pid", None) not in (None, os.getpid())
        if forked:
            # A lock held by a parent thread at fork time would never be released here.
            self._cp_lock = threading.Lock()
        super().reset()  # type: ignore[misc]
        with self._cp_lock:
            dropped = len(self._cp_leases)
            self._cp_leases.clear()
            self._cp_objects = 0
            self._cp_waiting = 0
        if forked:
            self.counters.set_active(0)
            self.counters.reset()
        else:
            for _ in range(dropped):
                self.counters.checkin(None)

    # -- our hooks -----------------------------------------------------------------
    def _cp_waiting_add(self, delta: int) -> None:
        with self._cp_lock:
            self._cp_waiting += delta

    def _cp_waited(self, seconds: float) -> None:
        self._cp_local.wait = seconds

    def _cp_timed_out(self, seconds: float) -> None:
        self.counters.incr("timeouts")
        self.counters.waited(seconds)

    def _cp_failed(self, exc: BaseException, key: CounterName) -> None:
        self.counters.incr(key)
        if self._cp_down_since is None:
            self._cp_down_since = time.monotonic()
            logger.warning("Redis pool %s: %s (errors are counted, not logged, until it answers again)",
                           pool_name_for_redis(self.pool_name), exc)

    def _cp_connected(self) -> None:
        self.counters.incr("connections_created")
        down_since, self._cp_down_since = self._cp_down_since, None
        if down_since is not None:
            logger.warning("Redis pool %s: server reachable again after %.1f s", pool_name_for_redis(self.pool_name),
                           time.monotonic() - down_since)

    # -- reading -----------------------------------------------------------------------
    def connection_counts(self) -> tuple[int, int]:
        """``(in_use, available)`` connection objects, from redis-py's public API when it has one."""
        if self.pid != os.getpid():
            return 0, 0  # inherited from the parent: this process has none yet
        if HAS_CONNECTION_COUNT:
            counts: dict[str, int] = {}
            for count, attributes in self.get_connection_count():  # type: ignore[attr-defined]
                state = attributes.get(CONNECTION_STATE_ATTRIBUTE)
                counts[state] = counts.get(state, 0) + count
            return counts.get(_USED, 0), counts.get(_IDLE, 0)
        with self._cp_lock:
            in_use = len(self._cp_leases)
            return in_use, max(self._cp_objects - in_use, 0)

    def gauges(self) -> Gauges:
        """Point-in-time gauges of the live pool."""
        in_use, available = self.connection_counts()
        # A reset() mid-wait may leave the waiting count briefly negative.
        return Gauges(active=in_use, available=available, open=in_use + available, max_capacity=self.max_connections,
                      waiting=max(self._cp_waiting, 0))

    def config(self) -> dict[str, Scalar]:
        """The effective settings of the live pool, never a password."""
        kwargs = self.connection_kwargs
        return {
            "url": display_url(self),
            "max_connections": self.max_connections,
            "blocking": isinstance(self, BlockingConnectionPool),
            "blocking_timeout": getattr(self, "timeout", None),
            "socket_timeout": kwargs.get("socket_timeout"),
            "socket_connect_timeout": kwargs.get("socket_connect_timeout"),
            "socket_keepalive": bool(kwargs.get("socket_keepalive", False)),
            "retry_on_timeout": bool(kwargs.get("retry_on_timeout", False)),
            "health_check_interval": kwargs.get("health_check_interval", 0),
        }


class InstrumentedConnectionPool(_InstrumentedPoolMixin, ConnectionPool):
    """redis-py's ``ConnectionPool`` (raises at once when ``max_connections`` are in use), with statistics.

    ``pool_name`` (``"main"``, ``"cache"``) names the pool ``redis_<pool_name>`` in every output.
    """

    def __init__(self, *, pool_name: str = "default", connection_class: type = Connection, **kwargs: Any) -> None:
        instrumented = self._cp_setup(pool_name, connection_class)
        super().__init__(connection_class=instrumented, **kwargs)


class _TimedLifoQueue(queue.LifoQueue[Connection | None]):
    """The blocking pool's slot queue, timing how long each checkout waits for a slot."""

    def __init__(self, maxsize: int = 0, *, owner: _InstrumentedPoolMixin) -> None:
        super().__init__(maxsize)
        self._owner = owner

    def get(self, block: bool = True, timeout: float | None = None) -> Connection | None:
        owner = self._owner
        started = time.monotonic()
        owner._cp_waiting_add(1)
        try:
            item = super().get(block, timeout)
        except queue.Empty:
            owner._cp_timed_out(time.monotonic() - started)
            raise
        finally:
            owner._cp_waiting_add(-1)
        owner._cp_waited(time.monotonic() - started)
        return item


class InstrumentedBlockingConnectionPool(_InstrumentedPoolMixin, BlockingConnectionPool):
    """redis-py's ``BlockingConnectionPool`` with statistics: a burst beyond ``max_connections``
    waits up to ``timeout`` seconds for a connection (wait recorded); only then is it an error.
    """

    def __init__(self, *, pool_name: str = "default", connection_class: type = Connection, **kwargs: Any) -> None:
        instrumented = self._cp_setup(pool_name, connection_class)
        kwargs["queue_class"] = functools.partial(_TimedLifoQueue, owner=self)
        # redis-py leaves BlockingConnectionPool.__init__ unannotated.
        super().__init__(connection_class=instrumented, **kwargs)  # type: ignore[no-untyped-call]


InstrumentedPool = InstrumentedConnectionPool | InstrumentedBlockingConnectionPool


def display_url(pool: Any) -> str:
    """The pool's server as a URL without credentials."""
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    base = getattr(pool, "base_connection_class", pool.connection_class)
    scheme = "rediss" if issubclass(base, SSLConnection) else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


# --- the shared per-process pools -----------------------------------------------------------
def pool_settings(name: str) -> dict[str, Any]:
    """The effective settings of Redis pool ``name`` (``CONNECTION_POOLS["REDIS"][name]``)."""
    pools = conf_get("REDIS")
    if name not in pools:
        if name in POOL_NAMES:
            raise ImproperlyConfigured(
                f"The Redis pool {name!r} has no server: set CONNECTION_POOLS['REDIS'][{name!r}]['url'] or make "
                "CACHES['default'] a Redis cache (docs/adopting.md).")
        raise ValueError(f"Unknown Redis pool {name!r}: configured pools are {', '.join(sorted(pools)) or 'none'}.")
    return dict(pools[name])


def configured_names() -> tuple[str, ...]:
    """The Redis pools that have a server (a URL of their own, or the project's Redis cache)."""
    return tuple(conf_get("REDIS"))


def pool_class(blocking: bool) -> type[InstrumentedConnectionPool] | type[InstrumentedBlockingConnectionPool]:
    """The instrumented pool class for a ``blocking`` setting."""
    return InstrumentedBlockingConnectionPool if blocking else InstrumentedConnectionPool


def checked_max_connections(name: str, value: Any) -> int:
    """``max_connections`` of pool ``name``, refused beyond ``conf.MAX_REDIS_CONNECTIONS``: a blocking
    pool fills one queue slot per connection when it is built, so a huge value hangs start-up."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= conf.MAX_REDIS_CONNECTIONS:
        raise ImproperlyConfigured(
            f"CONNECTION_POOLS['REDIS'][{name!r}]['max_connections'] is {value!r}: "
            f"expected a whole number from 1 to {conf.MAX_REDIS_CONNECTIONS}.")
    return value


def pool_kwargs(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments (besides the URL) that give the guide's settings to the pool class."""
    kwargs: dict[str, Any] = {
        "pool_name": name,
        "max_connections": checked_max_connections(name, settings["max_connections"]),
        "socket_keepalive": bool(settings["socket_keepalive"]),
        "retry_on_timeout": bool(settings["retry_on_timeout"]),
        "health_check_interval": int(settings["health_check_interval"]),
        "socket_connect_timeout": settings["socket_connect_timeout"],
        "socket_timeout": settings["socket_timeout"],
    }
    if settings.get("blocking"):
        kwargs["timeout"] = settings["blocking_timeout"]
    return kwargs


def build_pool(name: str, settings: Mapping[str, Any]) -> InstrumentedPool:
    """A new instrumented pool for ``settings`` (no network I/O: connections are made on demand).

    Built with ``from_url`` as django-redis builds the cache pool, so both pools take the
    same path (query-string options in the URL win over the settings).
    """
    problem = url_problem(settings.get("url"))
    if problem is not None:
        raise ImproperlyConfigured(f"CONNECTION_POOLS['REDIS'][{name!r}]['url'] {problem}")
    return pool_class(bool(settings.get("blocking"))).from_url(settings["url"], **pool_kwargs(name, settings))


def url_problem(url: Any) -> str | None:
    """Why redis-py cannot build a pool from ``url`` (one sentence, password masked), or None."""
    if not isinstance(url, str):
        return f"is {type(url).__name__}: expected a Redis URL such as redis://127.0.0.1:6379/0."
    unreadable = redis_url_error(url)
    return None if unreadable is None else f"is {mask_text(url)[:120]!r}: redis-py cannot read it ({unreadable})"


_pools_lock = threading.Lock()
_own_pools: dict[str, tuple[dict[str, Any], InstrumentedPool]] = {}
_clients: dict[str, tuple[Any, redis.Redis]] = {}


def _django_cache_pool() -> InstrumentedPool | None:
    """The pool django-redis built for ``CACHES["default"]``, when it is ours."""
    try:
        from django.core.cache import caches
        from django_redis.cache import RedisCache

        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return None
        pool = backend.client.get_client(write=True).connection_pool  # no network I/O
    except Exception:  # any misconfiguration: fall back to our own pool
        logger.debug("CACHES['default'] gives no Redis pool", exc_info=True)
        return None
    if isinstance(pool, _InstrumentedPoolMixin) and pool.pool_name == "cache":
        return pool  # type: ignore[return-value]
    return None


def get_pool(name: str = "main") -> InstrumentedPool:
    """The shared pool ``name`` of this process (``cache``: the one behind Django's cache).

    Cheap and free of network I/O; a settings change (``override_settings``) builds a new pool.
    """
    settings = pool_settings(name)
    if name == "cache":
        pool = _django_cache_pool()
        if pool is not None:
            return pool
    entry = _own_pools.get(name)
    if entry is not None and entry[0] == settings:
        return entry[1]
    with _pools_lock:
        entry = _own_pools.get(name)
        if entry is None or entry[0] != settings:
            replaced = entry
            entry = (settings, build_pool(name, settings))
            _own_pools[name] = entry
            if replaced is not None:
                # Close the old pool's idle connections now, not whenever the garbage
                # collector gets to them (which would move the counters at a random time).
                _clients.pop(name, None)
                replaced[1].disconnect(inuse_connections=False)
        return entry[1]


def get_redis(name: str = "main") -> redis.Redis:
    """A ``redis.Redis`` client on the shared pool ``name``; never connects, never fails because Redis is down."""
    pool = get_pool(name)
    cached = _clients.get(name)
    if cached is not None and cached[0] is pool:
        return cached[1]
    client = redis.Redis(connection_pool=pool)
    _clients[name] = (pool, client)
    return client


def register_pools() -> None:
    """At start-up (``AppConfig.ready``): create this process's Redis pools so their statistics
    show from the start (no network I/O), and warm them when ``WARM_ON_STARTUP`` is on."""
    for name in configured_names():
        try:
            get_pool(name)
        except Exception:  # a bad setting is reported by whoever uses the pool
            logger.debug("Redis pool %s not created", name, exc_info=True)
    if conf_get("WARM_ON_STARTUP"):
        warm_redis()


def after_fork() -> None:
    """In a forked worker: warm the (already reset) pools when Django was set up before the fork."""
    from django.apps import apps

    if apps.ready and conf_get("WARM_ON_STARTUP"):
        warm_redis()


def close_redis() -> None:
    """Disconnect every connection of this process's Redis pools (at shutdown)."""
    for name in configured_names():
        try:
            get_pool(name).disconnect()
        except Exception:  # shutting down: nothing to report to
            logger.debug("closing Redis pool %s failed", name, exc_info=True)


# --- health -------------------------------------------------------------------------
@dataclass(frozen=True)
class PingResult:
    """The answer of :func:`ping`: whether the pool's server answered, and how fast."""

    name: str
    ok: bool
    latency_seconds: float | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


def ping(name: str = "main", timeout: float | None = None) -> PingResult:
    """PING the server of pool ``name`` within ``timeout`` seconds (default ``HEALTH_CHECK_TIMEOUT``).

    Uses one short-lived connection with the pool's own settings and closes it, so a
    health check neither waits behind an exhausted pool nor takes a slot from the app,
    and repeated checks never leak connections. Never raises.
    """
    try:
        timeout = float(conf_get("HEALTH_CHECK_TIMEOUT") if timeout is None else timeout)
        pool = get_pool(name)
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("retry", "retry_on_error")}
        kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
                      health_check_interval=0)
        connection = pool.base_connection_class(**kwargs)
    except Exception as exc:  # reported, not raised
        return PingResult(name, False, None, f"{type(exc).__name__}: {exc}")
    started = time.monotonic()
    try:
        connection.send_command("PING")
        reply = connection.read_response()
        if reply not in (b"PONG", "PONG", True):
            return PingResult(name, False, None, f"unexpected reply to PING: {reply!r}")
        return PingResult(name, True, time.monotonic() - started)
    except (RedisError, OSError) as exc:
        return PingResult(name, False, None, f"{type(exc).__name__}: {exc}")
    finally:
        connection.disconnect()


# --- warming -------------------------------------------------------------------------
def warm_redis(names: Iterable[str] | None = None, count: int | None = None) -> dict[str, int]:
    """Open up to ``count`` connections (default: each pool's ``warm_connections``) in each pool.

    Warming checkouts are not counted as checkouts. Never raises because a server is
    down: that pool is logged and reported with the number of connections it did open.
    """
    warmed: dict[str, int] = {}
    for name in configured_names() if names is None else names:
        pool = get_pool(name)
        wanted = count if count is not None else int(pool_settings(name).get("warm_connections", 1))
        wanted = min(max(wanted, 0), pool.max_connections)
        held: list[Any] = []
        local = pool._cp_local
        local.warming = True
        try:
            for _ in range(wanted):
                held.append(pool.get_connection())
        except RedisError as exc:
            logger.warning("Warming Redis pool redis_%s: %s (opened %d of %d)", name, exc, len(held), wanted)
        finally:
            local.warming = False
            for connection in held:
                pool.release(connection)
        warmed[name] = len(held)
    return warmed
