"""The statistics contract: one typed vocabulary from a pool to the presenter.

Every pool source returns a :class:`PoolSnapshot`; a process publishes a
:class:`ProcessSnapshot` of all of them; the cluster merges them into the same
:class:`PoolSnapshot` type (``processes`` > 1). Names are the same everywhere
(``active``, ``connections_created``, ``peak_active``...); only the presenter at the API
edge renames them into the guide's response shape (``active_connections`` for a
database pool, ``in_use_connections`` for a Redis pool).

All types are frozen dataclasses with a JSON wire form (``to_wire`` / ``from_wire``)
used by the cluster store; decoding is strict about types and tolerant of missing keys
(an older process publishing an older shape shows zeros, not a crash).
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypeAlias

Scalar: TypeAlias = int | float | bool | str | None
#: A pool's effective settings, as shown (the guide's names for PostgreSQL pools).
Config: TypeAlias = Mapping[str, Scalar]
Role: TypeAlias = Literal["primary", "replica", "main", "cache", "pooler"]
Kind: TypeAlias = Literal["postgresql", "persistent", "redis"]

DATABASE_KINDS: frozenset[str] = frozenset({"postgresql", "persistent"})

#: Upper bounds (seconds) of the histogram buckets; the last bucket is +Inf.
BUCKET_BOUNDS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf,
)  # fmt: skip


# Decoding runs for every pool of every process in a direct merge and in the rollup job (half a
# million values at 2,048 processes): the exact types json.loads makes take a fast path first.
_NUMBERS = (int, float)
_SCALARS = (int, float, bool, str)


def _int(value: Any) -> int:
    if type(value) is int:  # not a bool: type() is exact
        return value
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and _finite(value):
        return int(value)
    return 0


def _float(value: Any) -> float:
    if type(value) is float:
        return value if math.isfinite(value) else 0.0
    if isinstance(value, _NUMBERS) and not isinstance(value, bool) and _finite(value):
        return float(value)
    return 0.0


def _optional_float(value: Any) -> float | None:
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


def _scalars(value: Any) -> dict[str, Scalar]:
    if not isinstance(value, Mapping):
        return {}
    return {k if type(k) is str else str(k): v for k, v in value.items() if v is None or isinstance(v, _SCALARS)}


# --- histograms --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DurationSummary:
    """count, mean, max and p50/p95/p99 of a histogram, in seconds."""

    count: int
    mean: float
    max: float
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A fixed-bucket histogram of seconds (bounds: :data:`BUCKET_BOUNDS`), mergeable across processes."""

    buckets: tuple[int, ...] = (0,) * len(BUCKET_BOUNDS)
    count: int = 0
    sum: float = 0.0
    max: float = 0.0

    def __add__(self, other: HistogramSnapshot) -> HistogramSnapshot:
        return HistogramSnapshot(
            buckets=tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            count=self.count + other.count, sum=self.sum + other.sum, max=max(self.max, other.max),
        )

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """Estimate the ``q`` quantile (0..1) by linear interpolation within its bucket (never above ``max``)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for index, in_bucket in enumerate(self.buckets):
            if not in_bucket:
                continue
            if seen + in_bucket >= rank:
                lower = BUCKET_BOUNDS[index - 1] if index else 0.0
                upper = BUCKET_BOUNDS[index]
                if math.isinf(upper):
                    return self.max
                return min(lower + (upper - lower) * max(rank - seen, 0) / in_bucket, self.max)
            seen += in_bucket
        return self.max

    def summary(self) -> DurationSummary:
        return DurationSummary(self.count, self.mean, self.max, self.quantile(0.50), self.quantile(0.95),
                               self.quantile(0.99))

    def to_wire(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "count": self.count, "sum": self.sum, "max": self.max}

    @classmethod
    def from_wire(cls, data: Any) -> HistogramSnapshot:
        if not isinstance(data, Mapping):
            return cls()
        buckets = data.get("buckets")
        if not isinstance(buckets, list) or len(buckets) != len(BUCKET_BOUNDS):
            return cls()
        return cls(tuple(map(_int, buckets)), _int(data.get("count")), _float(data.get("sum")),
                   _float(data.get("max")))

    @classmethod
    def total(cls, parts: Sequence[HistogramSnapshot]) -> HistogramSnapshot:
        """The sum of ``parts`` (at least one), as ``+`` would make it, bucket by bucket in one pass."""
        # The seconds are added left to right, as ``+`` does: since Python 3.12, sum() of floats
        # compensates rounding, so its last digit can differ from the pairwise merge's.
        return cls(tuple(map(sum, zip(*(part.buckets for part in parts), strict=True))),
                   sum(part.count for part in parts), functools.reduce(operator.add, (part.sum for part in parts)),
                   max(part.max for part in parts))


def bucket_index(seconds: float) -> int:
    """The bucket a duration falls in."""
    return bisect.bisect_left(BUCKET_BOUNDS, seconds)


# --- counters and gauges --------------------------------------------------------------------------
CounterName: TypeAlias = Literal[
    "checkouts", "connections_created", "connections_closed", "recycled", "connection_errors", "timeouts",
    "pre_ping_failures", "fallbacks", "long_holds", "socket_timeouts", "rotation_exits",
]


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic counts since the last reset (summed across processes)."""

    checkouts: int = 0
    connections_created: int = 0
    connections_closed: int = 0
    #: Closed because older than ``pool_recycle``.
    recycled: int = 0
    connection_errors: int = 0
    timeouts: int = 0
    pre_ping_failures: int = 0
    #: Reads meant for this replica served elsewhere.
    fallbacks: int = 0
    long_holds: int = 0
    #: Redis: a command that got no answer within ``socket_timeout``.
    socket_timeouts: int = 0
    #: Replicas: times it left the rotation.
    rotation_exits: int = 0

    NAMES: ClassVar[tuple[str, ...]] = ()

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, n) + getattr(other, n) for n in Counters.NAMES))

    def to_wire(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in Counters.NAMES if getattr(self, name)}

    @classmethod
    def from_wire(cls, data: Any) -> Counters:
        if not isinstance(data, Mapping):
            return cls()
        return cls(*[_int(data.get(name)) for name in cls.NAMES])

    @classmethod
    def total(cls, parts: Sequence[Counters]) -> Counters:
        """The sum of ``parts``, count by count."""
        return cls(*[sum(getattr(part, name) for part in parts) for name in cls.NAMES])


Counters.NAMES = tuple(f.name for f in fields(Counters))


@dataclass(frozen=True, slots=True)
class Gauges:
    """Point-in-time values. Across processes the counts add up; ages and lag take the worst."""

    active: int = 0
    available: int = 0
    #: Connections open or being opened.
    size: int = 0
    waiting: int = 0
    #: ``pool_size`` (PostgreSQL) or 0; ``max_size`` is ``pool_size + max_overflow`` / ``max_connections``.
    min_size: int = 0
    max_size: int = 0
    overflow_in_use: int = 0
    replica_lag_seconds: float | None = None
    lag_bytes: int | None = None
    #: Replicas: in rotation for reads (across processes: only when in every one).
    in_rotation: bool | None = None
    out_of_rotation_seconds: float = 0.0
    #: Persistent connections: age of the oldest / mean age of the open ones.
    oldest_age_seconds: float = 0.0
    mean_age_seconds: float = 0.0

    SUMMED: ClassVar[tuple[str, ...]] = ("active", "available", "size", "waiting", "min_size", "max_size",
                                         "overflow_in_use")

    def __add__(self, other: Gauges) -> Gauges:
        summed = {name: getattr(self, name) + getattr(other, name) for name in Gauges.SUMMED}
        return Gauges(
            **summed,
            replica_lag_seconds=_worst(self.replica_lag_seconds, other.replica_lag_seconds),
            lag_bytes=None if self.lag_bytes is None and other.lag_bytes is None
            else max(self.lag_bytes or 0, other.lag_bytes or 0),
            in_rotation=None if self.in_rotation is None and other.in_rotation is None
            else bool((self.in_rotation is not False) and (other.in_rotation is not False)),
            out_of_rotation_seconds=max(self.out_of_rotation_seconds, other.out_of_rotation_seconds),
            oldest_age_seconds=max(self.oldest_age_seconds, other.oldest_age_seconds),
            mean_age_seconds=max(self.mean_age_seconds, other.mean_age_seconds),
        )

    @classmethod
    def total(cls, parts: Sequence[Gauges]) -> Gauges:
        """What ``+`` over ``parts`` (at least one) makes, field by field in one pass."""
        lags = [part.replica_lag_seconds for part in parts if part.replica_lag_seconds is not None]
        lag_bytes = [part.lag_bytes for part in parts if part.lag_bytes is not None]
        rotations = [part.in_rotation for part in parts if part.in_rotation is not None]
        return cls(
            **{name: sum(getattr(part, name) for part in parts) for name in cls.SUMMED},
            replica_lag_seconds=max(lags) if lags else None,
            # As ``+``: an unknown byte lag counts as 0 beside a known one.
            lag_bytes=max(lag_bytes if len(lag_bytes) == len(parts) else [*lag_bytes, 0]) if lag_bytes else None,
            in_rotation=False not in rotations if rotations else None,
            out_of_rotation_seconds=max(part.out_of_rotation_seconds for part in parts),
            oldest_age_seconds=max(part.oldest_age_seconds for part in parts),
            mean_age_seconds=max(part.mean_age_seconds for part in parts),
        )

    #: Values that are None when unknown: 0 and False are information for these.
    OPTIONAL: ClassVar[tuple[str, ...]] = ("replica_lag_seconds", "lag_bytes", "in_rotation")

    def to_wire(self) -> dict[str, Any]:
        wire = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name not in Gauges.OPTIONAL and value == 0):
                continue  # compact: absent means 0 (or unknown, for the optional ones)
            wire[f.name] = value
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> Gauges:
        if not isinstance(data, Mapping):
            return cls()
        in_rotation = data.get("in_rotation")
        lag_bytes = data.get("lag_bytes")
        return cls(
            **{name: _int(data.get(name)) for name in cls.SUMMED},
            replica_lag_seconds=_optional_float(data.get("replica_lag_seconds")),
            lag_bytes=_int(lag_bytes) if lag_bytes is not None else None,
            in_rotation=in_rotation if isinstance(in_rotation, bool) else None,
            out_of_rotation_seconds=_float(data.get("out_of_rotation_seconds")),
            oldest_age_seconds=_float(data.get("oldest_age_seconds")),
            mean_age_seconds=_float(data.get("mean_age_seconds")),
        )


def _worst(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


# --- one pool ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hold:
    """A connection checked out longer than ``LONG_HOLD_SECONDS``: its server backend and its request."""

    backend_pid: int
    seconds: float
    #: ``GET /path (view name)``, or None outside a web request.
    request: str | None = None
    view: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"backend_pid": self.backend_pid, "seconds": self.seconds, "request": self.request, "view": self.view}

    @classmethod
    def from_wire(cls, data: Any) -> Hold | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("backend_pid"), int):
            return None
        request, view = data.get("request"), data.get("view")
        return cls(data["backend_pid"], _float(data.get("seconds")), request if isinstance(request, str) else None,
                   view if isinstance(view, str) else None)


#: Holds kept in a merged pool (the longest).
MERGED_HOLDS_MAX = 20


#: A recycle rate over a window shorter than this is noise (seconds).
MIN_RATE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """What one pool measured: in one process, or merged over ``processes`` of them."""

    name: str
    kind: str
    role: str
    alias: str
    config: Config = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    gauges: Gauges = field(default_factory=Gauges)
    #: Most connections in use at once since the reset (merged: the largest of any one process).
    peak_active: int = 0
    wait: HistogramSnapshot = field(default_factory=HistogramSnapshot)
    hold: HistogramSnapshot = field(default_factory=HistogramSnapshot)
    #: Unix time of the last reset (merged: the earliest).
    reset_at: float = 0.0
    processes: int = 1
    #: Merged: connections recycled per minute, summed over processes (each over its own window).
    recycle_rate_per_minute: float = 0.0
    #: One process only (merged: empty): the server backend pids of its open connections.
    backend_pids: tuple[int, ...] = ()
    #: Connections held past ``LONG_HOLD_SECONDS`` now (merged: the longest of every process).
    holds: tuple[Hold, ...] = ()

    @property
    def is_database(self) -> bool:
        return self.kind in DATABASE_KINDS

    @property
    def peak_connections(self) -> int:
        """The cluster's peak: never below the connections in use now."""
        return max(self.peak_active, self.gauges.active)

    def window_seconds(self, now: float) -> float:
        return round(max(now - self.reset_at, 0.0), 3) if self.reset_at else 0.0

    def zeroed(self, now: float) -> PoolSnapshot:
        """This pool as just reset: counters, histograms and peak zeroed, live gauges kept."""
        return replace(self, counters=Counters(), wait=HistogramSnapshot(), hold=HistogramSnapshot(),
                       peak_active=self.gauges.active, reset_at=now, recycle_rate_per_minute=0.0)

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "name": self.name, "kind": self.kind, "role": self.role, "alias": self.alias, "config": dict(self.config),
            "counters": self.counters.to_wire(), "gauges": self.gauges.to_wire(), "peak_active": self.peak_active,
            "wait": self.wait.to_wire(), "hold": self.hold.to_wire(), "reset_at": self.reset_at,
            "processes": self.processes, "recycle_rate_per_minute": self.recycle_rate_per_minute,
        }
        if self.backend_pids:  # compact: absent means none
            wire["backend_pids"] = list(self.backend_pids)
        if self.holds:
            wire["holds"] = [hold.to_wire() for hold in self.holds]
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> PoolSnapshot | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) or not data["name"]:
            return None
        return cls(
            name=data["name"], kind=str(data.get("kind") or ""), role=str(data.get("role") or ""),
            alias=str(data.get("alias") or ""), config=_scalars(data.get("config")),
            counters=Counters.from_wire(data.get("counters")), gauges=Gauges.from_wire(data.get("gauges")),
            peak_active=_int(data.get("peak_active")), wait=HistogramSnapshot.from_wire(data.get("wait")),
            hold=HistogramSnapshot.from_wire(data.get("hold")), reset_at=_float(data.get("reset_at")),
            processes=max(_int(data.get("processes")), 1),
            recycle_rate_per_minute=_float(data.get("recycle_rate_per_minute")),
            backend_pids=tuple(p for p in data.get("backend_pids") or () if isinstance(p, int)
                               and not isinstance(p, bool)) if isinstance(data.get("backend_pids"), list) else (),
            holds=tuple(h for h in (Hold.from_wire(item) for item in data.get("holds") or ()) if h is not None)
            if isinstance(data.get("holds"), list) else (),
        )


def merge_pool(parts: Sequence[PoolSnapshot], *, now: float) -> PoolSnapshot:
    """One pool's cluster-wide snapshot from its per-process (or per-host) snapshots."""
    first = parts[0]
    # Each total in one pass: adding pairwise made an object per process and field group.
    gauges = Gauges.total([part.gauges for part in parts])
    counters = Counters.total([part.counters for part in parts])
    wait = HistogramSnapshot.total([part.wait for part in parts])
    hold = HistogramSnapshot.total([part.hold for part in parts])
    config = next((part.config for part in parts if part.config), first.config)
    return PoolSnapshot(
        name=first.name, kind=first.kind, role=first.role, alias=first.alias, config=config, counters=counters,
        gauges=gauges, peak_active=max(part.peak_active for part in parts), wait=wait, hold=hold,
        reset_at=min((part.reset_at for part in parts if part.reset_at), default=0.0),
        processes=sum(part.processes for part in parts),
        recycle_rate_per_minute=sum(_recycle_rate(part, now) for part in parts),
        holds=tuple(sorted((hold for part in parts for hold in part.holds), key=lambda h: -h.seconds))[
            :MERGED_HOLDS_MAX],
    )


def _recycle_rate(part: PoolSnapshot, now: float) -> float:
    if part.processes > 1:  # already merged (a host subtotal): its rate is a sum already
        return part.recycle_rate_per_minute
    window = max(now - (part.reset_at or now), MIN_RATE_WINDOW)
    return part.counters.recycled * 60.0 / window


def merge_pools(groups: Iterable[Iterable[PoolSnapshot]], *, now: float) -> tuple[PoolSnapshot, ...]:
    """Merge several groups (processes, or hosts) of pool snapshots, by pool name, sorted by name."""
    by_name: dict[str, list[PoolSnapshot]] = {}
    for group in groups:
        for pool in group:
            by_name.setdefault(pool.name, []).append(pool)
    return tuple(merge_pool(parts, now=now) for _, parts in sorted(by_name.items()))


# --- one process -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """Everything one server process measured, as it publishes it."""

    host: str
    pid: int
    taken_at: float
    #: The reset epoch this process has honoured.
    epoch: int = 0
    pools: tuple[PoolSnapshot, ...] = ()

    @property
    def key(self) -> str:
        """``host:pid``."""
        return f"{self.host}:{self.pid}"

    def reset_since(self, epoch: int, resets: Mapping[int, str], *, now: float) -> ProcessSnapshot:
        """This snapshot with the pools reset in ``(self.epoch, epoch]`` zeroed (a reset it has not honoured yet)."""
        if self.epoch >= epoch:
            return self
        names = {resets.get(number) for number in range(self.epoch + 1, epoch + 1)}
        everything = None in names or "*" in names
        pools = tuple(pool.zeroed(now) if everything or pool.name in names else pool for pool in self.pools)
        return replace(self, pools=pools)

    def to_wire(self) -> dict[str, Any]:
        return {"v": 1, "host": self.host, "pid": self.pid, "taken_at": self.taken_at, "epoch": self.epoch,
                "pools": [pool.to_wire() for pool in self.pools]}

    @classmethod
    def from_wire(cls, data: Any) -> ProcessSnapshot | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("host"), str):
            return None
        pools = tuple(p for p in (PoolSnapshot.from_wire(item) for item in data.get("pools") or []) if p is not None)
        return cls(host=data["host"], pid=_int(data.get("pid")), taken_at=_float(data.get("taken_at")),
                   epoch=_int(data.get("epoch")), pools=pools)
