"""``OPTIONS["pool"]``: the two vocabularies, their validation, and the resolved :class:`PoolConfig`.

psycopg's keyword names are the native vocabulary (what Django's own pooled engine
passes to ``psycopg_pool.ConnectionPool``); the guide's six names map onto them:

============================  ===========================  ==============================
the guide                     psycopg                      note
============================  ===========================  ==============================
``pool_size``                 ``min_size``
``max_overflow``              ``max_size``                 ``max_size = pool_size + max_overflow``
``pool_timeout``              ``timeout``
``pool_recycle``              ``max_lifetime``
``pool_pre_ping``             ``check``                    a ``check`` callable is the pre-ping
``pool_use_lifo``             --                           ours: psycopg is FIFO only
``pool_pre_ping_window``      --                           ours: skip the ping of a connection
                                                           proved alive that recently
``release``                   --                           ours: ``"request"`` (Django's: a connection
                                                           stays out until the request ends) or
                                                           ``"transaction"`` (back after each statement
                                                           outside a transaction)
============================  ===========================  ==============================

The same setting given in both vocabularies, an unknown key, or a value of the wrong
type is one :class:`~django.core.exceptions.ImproperlyConfigured` naming the key. The
same validation runs in ``manage.py check`` (``connection_pools.E004``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, TypedDict

from django.core.exceptions import ImproperlyConfigured

from . import MAX_POOL_CONNECTIONS as _MAX_POOL_CONNECTIONS

#: psycopg's name for each of the guide's settings that psycopg has.
GUIDE_TO_PSYCOPG: dict[str, str] = {
    "pool_size": "min_size",
    "max_overflow": "max_size",
    "pool_timeout": "timeout",
    "pool_recycle": "max_lifetime",
    "pool_pre_ping": "check",
}
#: The guide's settings (and ours) that psycopg has no name for.
OUR_KEYS = ("pool_use_lifo", "pool_pre_ping_window", "release")
GUIDE_KEYS = (*GUIDE_TO_PSYCOPG, *OUR_KEYS)
#: psycopg_pool.ConnectionPool keywords a user may set in OPTIONS["pool"].
PSYCOPG_KEYS = (
    "min_size", "max_size", "timeout", "max_lifetime", "max_idle", "max_waiting", "reconnect_timeout",
    "reconnect_failed", "num_workers", "check", "configure", "reset", "name", "connection_class", "close_returns",
)
#: ConnectionPool keywords the engine sets itself (as Django's own engine does).
ENGINE_KEYS = ("kwargs", "conninfo", "open")
ACCEPTED_KEYS = (*PSYCOPG_KEYS, *GUIDE_KEYS)

#: Most connections one pool may hold in one process (the same bound as the env vars').
MAX_POOL_CONNECTIONS = _MAX_POOL_CONNECTIONS
#: psycopg_pool's defaults for the keywords the guide has no name for.
DEFAULT_MAX_IDLE = 600.0
DEFAULT_MAX_WAITING = 0
DEFAULT_RECONNECT_TIMEOUT = 300.0
DEFAULT_NUM_WORKERS = 3

#: When a checked-out connection goes back to its pool (``OPTIONS["pool"]["release"]``): at the end of
#: the request, as with Django's pool, or as soon as no transaction, atomic() block or cursor holds it
#: (:mod:`connection_pools.backends.postgresql.release`).
RELEASE_REQUEST = "request"
RELEASE_TRANSACTION = "transaction"
RELEASE_MODES = (RELEASE_REQUEST, RELEASE_TRANSACTION)

Check = Callable[[Any], object]

_MISSING = object()


class GuideSettings(TypedDict):
    """A pool's settings in the guide's vocabulary (what statistics and the API show)."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: float
    pool_pre_ping: bool
    pool_use_lifo: bool
    pool_pre_ping_window: float
    max_idle: float
    release: str


@dataclass(frozen=True)
class PoolConfig:
    """One alias's pool settings, resolved once: psycopg's keywords plus what psycopg lacks."""

    min_size: int
    max_size: int
    timeout: float
    max_lifetime: float
    max_idle: float = DEFAULT_MAX_IDLE
    max_waiting: int = DEFAULT_MAX_WAITING
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    num_workers: int = DEFAULT_NUM_WORKERS
    name: str | None = None
    #: Hand out the most recently returned connection first.
    lifo: bool = True
    #: Test a connection before handing it out.
    pre_ping: bool = True
    #: Seconds after which a connection proved alive must be pinged again (0: always).
    pre_ping_window: float = 0.0
    #: When a checked-out connection goes back: ``"request"`` or ``"transaction"`` (:data:`RELEASE_MODES`).
    release: str = RELEASE_REQUEST
    #: The pre-ping function when it is not ours (a user's ``check``, or psycopg's
    #: ``check_connection`` when Django's ``CONN_HEALTH_CHECKS`` asks for one).
    check: Check | None = None
    configure: Check | None = None
    reset: Check | None = None
    reconnect_failed: Check | None = None
    connection_class: type | None = None
    close_returns: bool = False

    @property
    def pool_size(self) -> int:
        """The guide's name for ``min_size``."""
        return self.min_size

    @property
    def max_overflow(self) -> int:
        """The guide's name for ``max_size - min_size``."""
        return self.max_size - self.min_size

    def guide_settings(self) -> GuideSettings:
        """These settings in the guide's vocabulary."""
        return GuideSettings(
            pool_size=self.min_size, max_overflow=self.max_overflow, pool_timeout=self.timeout,
            pool_recycle=self.max_lifetime, pool_pre_ping=self.pre_ping, pool_use_lifo=self.lifo,
            pool_pre_ping_window=self.pre_ping_window, max_idle=self.max_idle, release=self.release,
        )

    @property
    def per_transaction(self) -> bool:
        """True when connections go back after each transaction (``release = "transaction"``)."""
        return self.release == RELEASE_TRANSACTION

    def psycopg_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg_pool.ConnectionPool`` (without ``kwargs``/``configure``)."""
        kwargs: dict[str, Any] = {
            "min_size": self.min_size, "max_size": self.max_size, "timeout": self.timeout,
            "max_lifetime": self.max_lifetime, "max_idle": self.max_idle, "max_waiting": self.max_waiting,
            "reconnect_timeout": self.reconnect_timeout, "num_workers": self.num_workers,
            "check": self.check, "reset": self.reset, "reconnect_failed": self.reconnect_failed,
            "close_returns": self.close_returns,
        }
        if self.name:
            kwargs["name"] = self.name
        if self.connection_class is not None:
            kwargs["connection_class"] = self.connection_class
        return kwargs


# --- which aliases are pooled ------------------------------------------------------------------
def is_pooled(settings_dict: Mapping[str, Any]) -> bool:
    """True when ``OPTIONS["pool"]`` asks for a pool (``True`` or a dict, even empty).

    Absent, ``None`` or ``False``: no pool (Django's usual connections, persistent with
    ``CONN_MAX_AGE``). Django's own engine also treats an empty dict as "no pool"; we read
    it as "a pool with the defaults", as our settings always have.
    """
    options = (settings_dict.get("OPTIONS") or {}).get("pool")
    return options is not None and options is not False and options != 0


def role_for(settings_dict: Mapping[str, Any]) -> str:
    """``replica`` for an alias that mirrors another in tests, ``primary`` otherwise."""
    return "replica" if (settings_dict.get("TEST") or {}).get("MIRROR") else "primary"


def target_of(settings_dict: Mapping[str, Any]) -> tuple[Any, ...]:
    """Which server and database a pool connects to (a changed target means a new pool)."""
    return (settings_dict.get("NAME"), settings_dict.get("HOST"), settings_dict.get("PORT"), settings_dict.get("USER"))


# --- validation --------------------------------------------------------------------------------
class _Reader:
    """Reads and checks one value at a time, naming where it came from in every error."""

    def __init__(self, where: str) -> None:
        self.where = where

    def bad(self, key: str, value: Any, expected: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{self.where}[{key!r}] is {_shown(value)}: expected {expected}.")

    def whole(self, key: str, value: Any, minimum: int, maximum: int = MAX_POOL_CONNECTIONS) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.bad(key, value, f"a whole number from {minimum} to {maximum}")
        return value

    def seconds(self, key: str, value: Any, *, zero: bool = False, infinite: bool = False) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
        if ok and (value < 0 or (value == 0 and not zero) or (math.isinf(value) and not infinite)):
            ok = False
        if not ok:
            bound = ">= 0" if zero else "> 0"
            raise self.bad(key, value, f"a number of seconds {bound}" + ("" if infinite else " (finite)"))
        return float(value)

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.bad(key, value, "one of " + ", ".join(repr(choice) for choice in choices))
        return value

    def switch(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.bad(key, value, "True or False")
        return value

    def callable_or_none(self, key: str, value: Any) -> Check | None:
        if isinstance(value, str):
            try:
                value = _import_dotted(value)
            except (ImportError, AttributeError) as exc:
                raise self.bad(key, value, f"a callable or the dotted path of one ({exc})") from None
        if value is not None and not callable(value):
            raise self.bad(key, value, "a callable, its dotted path, or None")
        return value  # type: ignore[no-any-return]


def _import_dotted(path: str) -> Any:
    """The object at ``path``: a module, then attributes (``psycopg_pool.ConnectionPool.check_connection``)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target = import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(f"no module in {path!r} can be imported")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def pool_options(alias: str, settings_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``OPTIONS["pool"]`` of an alias as a dict (``True`` -> ``{}``), its keys checked."""
    where = f"DATABASES[{alias!r}]['OPTIONS']['pool']"
    raw = (settings_dict.get("OPTIONS") or {}).get("pool")
    if raw is True:
        return {}
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"{where} is {_shown(raw)}: expected True, False or a dict of pool options.")
    for key in raw:
        if key in ENGINE_KEYS:
            raise ImproperlyConfigured(
                f"{where}[{key!r}] cannot be set: the engine passes the connection parameters and opens "
                "the pool itself, as Django's own engine does."
            )
        if key not in ACCEPTED_KEYS:
            raise ImproperlyConfigured(
                f"{where} has an unknown key {key!r}: accepted keys are psycopg's {', '.join(PSYCOPG_KEYS)} "
                f"and the guide's {', '.join(GUIDE_KEYS)} (see docs/postgresql-pools.md)."
            )
    for guide, psycopg in GUIDE_TO_PSYCOPG.items():
        if guide in raw and psycopg in raw:
            raise ImproperlyConfigured(
                f"{where} gives the same setting twice, as psycopg's {psycopg!r} and as the guide's {guide!r}: "
                "keep one of them."
            )
    return dict(raw)


def resolve(alias: str, settings_dict: Mapping[str, Any], defaults: Mapping[str, Any]) -> PoolConfig:
    """The :class:`PoolConfig` of a pooled alias: its ``OPTIONS["pool"]`` over ``defaults``.

    ``defaults`` are ``CONNECTION_POOLS["DATABASE_POOL"]`` (the guide's names, from the
    ``DATABASE_POOL_*`` env vars). Raises ``ImproperlyConfigured`` naming the first bad key.
    """
    if settings_dict.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured(
            f"Pooling doesn't support persistent connections. DATABASES[{alias!r}] sets "
            f"CONN_MAX_AGE={settings_dict.get('CONN_MAX_AGE')!r} and a pool: pooled connections go back to the "
            "pool at the end of each request, so set CONN_MAX_AGE to 0 (or remove OPTIONS['pool'])."
        )
    options = pool_options(alias, settings_dict)
    mine = _Reader(f"DATABASES[{alias!r}]['OPTIONS']['pool']")
    base = _Reader("CONNECTION_POOLS['DATABASE_POOL']")

    def pick(guide: str, psycopg: str | None = None) -> tuple[_Reader, str, Any]:
        """(reader, key, value): the alias's own value in either vocabulary, else the default."""
        if psycopg is not None and psycopg in options:
            return mine, psycopg, options[psycopg]
        if guide in options:
            return mine, guide, options[guide]
        return base, guide, defaults.get(guide, _MISSING)

    reader, key, value = pick("pool_size", "min_size")
    min_size = reader.whole(key, value, 0)
    if "max_size" in options:
        max_size = mine.whole("max_size", options["max_size"], 1)
        if "min_size" not in options and "pool_size" not in options:
            min_size = min(min_size, max_size)  # only a maximum given: the default minimum fits under it
    elif "min_size" in options and "max_overflow" not in options:
        max_size = min_size  # psycopg's own rule (and so Django's pool): no max_size means min_size
    else:
        reader, key, value = pick("max_overflow")
        max_size = min_size + reader.whole(key, value, 0)
    if max_size < max(min_size, 1):
        raise mine.bad("max_size", max_size, f"a whole number >= min_size ({min_size}) and >= 1")
    if max_size > MAX_POOL_CONNECTIONS:
        raise mine.bad("max_overflow", max_size - min_size,
                       f"at most {MAX_POOL_CONNECTIONS - min_size}: with pool_size {min_size}, a pool of at most "
                       f"{MAX_POOL_CONNECTIONS} connections in all")

    reader, key, value = pick("pool_timeout", "timeout")
    timeout = reader.seconds(key, value)
    reader, key, value = pick("pool_recycle", "max_lifetime")
    max_lifetime = reader.seconds(key, value, infinite=True)
    reader, key, value = pick("pool_use_lifo")
    lifo = reader.switch(key, value)
    reader, key, value = pick("pool_pre_ping_window")
    window = 0.0 if value is _MISSING else reader.seconds(key, value, zero=True)
    reader, key, value = pick("release")
    release = RELEASE_REQUEST if value is _MISSING else reader.choice(key, value, RELEASE_MODES)

    check: Check | None = None
    if "check" in options:
        check = mine.callable_or_none("check", options["check"])
        pre_ping = check is not None
    else:
        reader, key, value = pick("pool_pre_ping")
        pre_ping = reader.switch(key, value)
        if pre_ping and settings_dict.get("CONN_HEALTH_CHECKS"):
            # Django's own engine checks with psycopg's check_connection when asked to.
            from psycopg_pool import ConnectionPool

            check = ConnectionPool.check_connection

    name = options.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise mine.bad("name", name, "a non-empty string")
    connection_class = options.get("connection_class")
    if isinstance(connection_class, str):
        connection_class = mine.callable_or_none("connection_class", connection_class)
    if connection_class is not None:
        import psycopg

        if not (isinstance(connection_class, type) and issubclass(connection_class, psycopg.Connection)):
            raise mine.bad("connection_class", connection_class, "a subclass of psycopg.Connection")

    return PoolConfig(
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        max_lifetime=max_lifetime,
        max_idle=mine.seconds("max_idle", options.get("max_idle", DEFAULT_MAX_IDLE), infinite=True),
        max_waiting=mine.whole("max_waiting", options.get("max_waiting", DEFAULT_MAX_WAITING), 0, 1_000_000),
        reconnect_timeout=mine.seconds("reconnect_timeout",
                                       options.get("reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT), infinite=True),
        num_workers=mine.whole("num_workers", options.get("num_workers", DEFAULT_NUM_WORKERS), 1, 64),
        name=name,
        lifo=lifo,
        pre_ping=pre_ping,
        pre_ping_window=window,
        release=release,
        check=check,
        configure=mine.callable_or_none("configure", options.get("configure")),
        reset=mine.callable_or_none("reset", options.get("reset")),
        reconnect_failed=mine.callable_or_none("reconnect_failed", options.get("reconnect_failed")),
        connection_class=connection_class,
        close_returns=mine.switch("close_returns", options.get("close_returns", False)),
    )
