"""The statistics catalogue: one entry per statistic a pool reports, under its one internal name.

An entry is a :class:`Statistic` -- its type (counter, gauge, histogram, setting), unit, help and
how it merges across processes -- carried by the dataclass field that holds the value: the fields
of :class:`Counters` and :class:`Gauges` here, and the histograms and peak of
:class:`~connection_pools.core.snapshots.PoolSnapshot`. So the entry *is* the field: adding a
statistic is one line, and merging, the wire form and reading by name follow from it.
:data:`connection_pools.core.snapshots.CATALOGUE` lists them all.

The names are the same from the pool to the presenter. Three of them say what a pool's size
is, which ``size`` used to mean two ways: ``open`` (connections open now, idle or in use),
``capacity`` (configured: what it keeps open and ready, ``pool_size``) and ``max_capacity``
(configured: the most it may open, ``pool_size + max_overflow`` or Redis' ``max_connections``).
The guide's names (``active_connections``, ``in_use_connections``, ``pool_size``...) appear
only at the public edge, in each kind's descriptor (:mod:`connection_pools.core.kinds`).

The wire form keeps the keys of the published form before this catalogue (``size``,
``min_size``, ``max_size``), so that a rolling deploy reads old and new snapshots alike.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

StatType: TypeAlias = Literal["counter", "gauge", "histogram", "setting"]
#: What one unit of the value is; it also says the Python type (seconds and rates: float, flag: bool).
Unit: TypeAlias = Literal["connections", "clients", "events", "bytes", "seconds", "per_minute", "flag"]
#: Across processes: added up, the largest (the worst, for ages and lag), or True only when true in every one.
Merge: TypeAlias = Literal["sum", "max", "all"]

STATISTIC = "connection_pools.statistic"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Statistic:
    """What one statistic is (see the module docstring)."""

    type: StatType
    unit: Unit
    help: str
    merge: Merge
    #: None when unknown (lag before the first sample): then 0 and False are information.
    optional: bool = False
    #: The key in the published wire form, when it is not the name.
    wire_key: str = ""
    #: The field name; :func:`collect` fills it in.
    name: str = ""

    @property
    def wire(self) -> str:
        return self.wire_key or self.name

    @property
    def python_type(self) -> builtins.type[int | float | bool]:
        """int, float or bool (histograms: a HistogramSnapshot, not described here)."""
        found: builtins.type[int | float | bool] = {"seconds": float, "per_minute": float, "flag": bool}.get(
            self.unit, int)
        return found


def statistic(type: StatType, unit: Unit, help: str, *, merge: Merge = "sum", optional: bool = False,
              wire: str = "", default: Any = None, default_factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field holding one statistic (its default: zero of its type, or None when optional)."""
    entry = Statistic(type=type, unit=unit, help=help, merge=merge, optional=optional, wire_key=wire)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={STATISTIC: entry})
    if default is None and not optional:
        default = entry.python_type()
    return field(default=default, metadata={STATISTIC: entry})


def counter(help: str, *, wire: str = "") -> Any:
    """A monotonic count since the last reset (summed across processes)."""
    return statistic("counter", "events", help, wire=wire)


def gauge(unit: Unit, help: str, *, merge: Merge = "sum", optional: bool = False, wire: str = "") -> Any:
    """A point-in-time value."""
    return statistic("gauge", unit, help, merge=merge, optional=optional, wire=wire)


def setting(help: str, *, wire: str = "") -> Any:
    """A configured number of connections, live (after a resize), summed across processes."""
    return statistic("setting", "connections", help, wire=wire)


def histogram(help: str) -> dict[str, Statistic]:
    """The metadata of a histogram field of seconds (merged bucket by bucket):
    ``field(default_factory=HistogramSnapshot, metadata=histogram("..."))``."""
    return {STATISTIC: Statistic(type="histogram", unit="seconds", help=help, merge="sum")}


def entries(cls: type) -> tuple[Statistic, ...]:
    """The statistics held by ``cls``'s fields, named."""
    return tuple(replace(f.metadata[STATISTIC], name=f.name) for f in _fields(cls) if STATISTIC in f.metadata)


def collect(*classes: type, derived: Mapping[str, Statistic] | None = None) -> dict[str, Statistic]:
    """The catalogue: every statistic of ``classes`` (and the ``derived`` ones) by name; a name used twice
    is a mistake this refuses."""
    found: dict[str, Statistic] = {}
    for entry in (*(e for cls in classes for e in entries(cls)),
                  *(replace(e, name=n) for n, e in (derived or {}).items())):
        if entry.name in found:
            raise ValueError(f"statistic {entry.name!r} is defined twice")
        found[entry.name] = entry
    return found


def _fields(cls: type) -> tuple[Field[Any], ...]:
    return fields(cls)


# --- decoding the wire form: strict about types, tolerant of missing keys -----------------------------
# Decoding runs for every pool of every process in a direct merge and in the rollup job (half a
# million values at 2,048 processes): the exact types json.loads makes take a fast path first.
_NUMBERS = (int, float)


def decode_int(value: Any) -> int:
    if type(value) is int:  # not a bool: type() is exact
        return value
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and _finite(value):
        return int(value)
    return 0


def decode_float(value: Any) -> float:
    if type(value) is float:
        return value if math.isfinite(value) else 0.0
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and _finite(value):
        return float(value)
    return 0.0


def decode_optional_float(value: Any) -> float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and _finite(value):
        return float(value)
    return None


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a float's range
        return False


def _decoder(entry: Statistic) -> Callable[[Any], Any]:
    kind = entry.python_type
    if kind is bool:
        return lambda value: value if isinstance(value, bool) else (None if entry.optional else False)
    if kind is float:
        return decode_optional_float if entry.optional else decode_float
    if entry.optional:
        return lambda value: None if value is None else decode_int(value)
    return decode_int


def _merger(entry: Statistic) -> Callable[[Sequence[Any]], Any]:
    if entry.merge == "sum":
        return sum
    if entry.merge == "all":
        def all_known(values: Sequence[Any]) -> bool | None:
            known = [value for value in values if value is not None]
            return (False not in known) if known else None
        return all_known
    if entry.optional:  # the largest known value; None when no process knows it
        return lambda values: max((value for value in values if value is not None), default=None)
    return max


@dataclass(frozen=True)
class Described:
    """How a dataclass of statistics merges and travels, from its fields' entries (see :func:`describe`)."""

    stats: tuple[Statistic, ...]
    #: (name, merge) and (name, wire key, decode) for every field, in order.
    merges: tuple[tuple[str, Callable[[Sequence[Any]], Any]], ...]
    decodes: tuple[tuple[str, str, Callable[[Any], Any]], ...]

    def total(self, cls: Callable[..., _T], parts: Sequence[Any]) -> _T:
        """The merge of ``parts`` (at least one), field by field in one pass."""
        return cls(**{name: merge([getattr(part, name) for part in parts]) for name, merge in self.merges})

    def from_wire(self, cls: Callable[..., _T], data: Any) -> _T:
        if not isinstance(data, Mapping):
            return cls()
        return cls(**{name: decode(data.get(key)) for name, key, decode in self.decodes})

    def to_wire(self, values: object) -> dict[str, int | float | bool]:
        """Compact: a zero is left out (absent means 0), and an unknown optional value too."""
        wire: dict[str, int | float | bool] = {}
        for entry in self.stats:
            value = getattr(values, entry.name)
            if value is None or (not entry.optional and value == 0):
                continue
            wire[entry.wire] = value
        return wire


def describe(cls: type) -> Described:
    stats = entries(cls)
    return Described(stats, tuple((entry.name, _merger(entry)) for entry in stats),
                     tuple((entry.name, entry.wire, _decoder(entry)) for entry in stats))


# --- the counters and gauges every pool reports --------------------------------------------------------
CounterName: TypeAlias = Literal[
    "checkouts", "connections_created", "connections_closed", "recycled", "connection_errors", "timeouts",
    "pre_ping_failures", "fallbacks", "long_holds", "socket_timeouts", "rotation_exits",
]


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic counts since the last reset (summed across processes)."""

    checkouts: int = counter("Connections handed out.")
    connections_created: int = counter("Connections opened.")
    connections_closed: int = counter("Connections closed.")
    recycled: int = counter("Connections closed for age (pool_recycle).")
    connection_errors: int = counter("Failed connection attempts and broken connections.")
    timeouts: int = counter("Checkouts that gave up waiting (pool_timeout).")
    pre_ping_failures: int = counter("Dead connections the pre-ping caught (never handed out).")
    fallbacks: int = counter("Reads sent elsewhere because this replica could not serve them.")
    long_holds: int = counter("Checkouts held longer than LONG_HOLD_SECONDS (each counted once).")
    socket_timeouts: int = counter("Redis commands that got no answer within socket_timeout.")
    rotation_exits: int = counter("Times a replica left the rotation for reads.")

    NAMES: ClassVar[tuple[str, ...]] = ()
    #: (name, wire key) of every counter.
    WIRE: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __add__(self, other: Counters) -> Counters:
        return Counters.total([self, other])

    @classmethod
    def total(cls, parts: Sequence[Counters]) -> Counters:
        """The sum of ``parts``, count by count."""
        return cls(*[sum(getattr(part, name) for part in parts) for name in cls.NAMES])

    def to_wire(self) -> dict[str, int]:
        return {key: getattr(self, name) for name, key in Counters.WIRE if getattr(self, name)}

    @classmethod
    def from_wire(cls, data: Any) -> Counters:
        if not isinstance(data, Mapping):
            return cls()
        return cls(*[decode_int(data.get(key)) for _, key in cls.WIRE])


Counters.NAMES = tuple(entry.name for entry in entries(Counters))
Counters.WIRE = tuple((entry.name, entry.wire) for entry in entries(Counters))


@dataclass(frozen=True, slots=True)
class Gauges:
    """Point-in-time values. Across processes the counts add up; ages and lag take the worst."""

    active: int = gauge("connections", "Connections checked out right now.")
    available: int = gauge("connections", "Idle connections ready in the pool.")
    open: int = gauge("connections", "Connections open now, idle or in use (or being opened).", wire="size")
    waiting: int = gauge("clients", "Requests waiting for a connection right now.")
    capacity: int = setting("Connections the pool keeps open and ready: pool_size (psycopg's min_size); 0 for a "
                            "pool that keeps none.", wire="min_size")
    max_capacity: int = setting("The most connections the pool may open: pool_size + max_overflow (psycopg's "
                                "max_size), Redis' max_connections; 0 when unbounded.", wire="max_size")
    overflow_in_use: int = gauge("connections", "Connections open beyond pool_size right now.")
    replica_lag_seconds: float | None = gauge("seconds", "Replication lag of a read replica, in seconds.",
                                              merge="max", optional=True)
    lag_bytes: int | None = gauge("bytes", "Replication lag of a read replica, in bytes of WAL.", merge="max",
                                  optional=True)
    in_rotation: bool | None = gauge("flag", "A replica in rotation for reads (across processes: in every one).",
                                     merge="all", optional=True)
    out_of_rotation_seconds: float = gauge("seconds", "How long a replica has been out of the rotation.",
                                           merge="max")
    oldest_age_seconds: float = gauge("seconds", "Persistent connections: age of the oldest open one.", merge="max")
    mean_age_seconds: float = gauge("seconds", "Persistent connections: mean age of the open ones.", merge="max")

    def __add__(self, other: Gauges) -> Gauges:
        return Gauges.total([self, other])

    @classmethod
    def total(cls, parts: Sequence[Gauges]) -> Gauges:
        """What ``+`` over ``parts`` (at least one) makes, field by field in one pass."""
        return _GAUGES.total(cls, parts)

    def to_wire(self) -> dict[str, int | float | bool]:
        return _GAUGES.to_wire(self)

    @classmethod
    def from_wire(cls, data: Any) -> Gauges:
        return _GAUGES.from_wire(cls, data)


_GAUGES = describe(Gauges)
