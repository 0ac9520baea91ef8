"""The statistics contract: one typed vocabulary from a pool to the presenter.

Every pool source returns a :class:`PoolSnapshot`; a process publishes a
:class:`ProcessSnapshot` of all of them; the cluster merges them into the same
:class:`PoolSnapshot` type (``processes`` > 1). Names are the same everywhere: those of the
statistics catalogue (:mod:`.statistics`, all of it in :data:`CATALOGUE`: ``active``,
``connections_created``, ``peak_active``...); only each kind's descriptor, at the public edge,
gives them the guide's names (``active_connections`` for a database pool, ``in_use_connections``
for a Redis pool).

All types are frozen dataclasses with a JSON wire form (``to_wire`` / ``from_wire``)
used by the cluster store; decoding is strict about types and tolerant of missing keys
(an older process publishing an older shape shows zeros, not a crash).
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, Literal, TypeAlias

from .responses import Scalar
from .statistics import (
    CounterName,
    Counters,
    Gauges,
    Statistic,
    collect,
    decode_float,
    decode_int,
    entries,
    gauge,
    histogram,
    statistic,
)

__all__ = ["BUCKET_BOUNDS", "CATALOGUE", "CounterName", "Counters", "Gauges", "HistogramSnapshot", "PoolSnapshot",
           "ProcessSnapshot", "Scalar", "merge_pool", "merge_pools"]

#: A pool's effective settings, as shown (the guide's names for PostgreSQL pools).
Config: TypeAlias = Mapping[str, Scalar]
Role: TypeAlias = Literal["primary", "replica", "main", "cache", "pooler"]

#: Upper bounds (seconds) of the histogram buckets; the last bucket is +Inf.
BUCKET_BOUNDS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf,
)  # fmt: skip


def _scalars(value: Any) -> dict[str, Scalar]:
    if not isinstance(value, Mapping):
        return {}
    return {k if type(k) is str else str(k): v for k, v in value.items() if v is None or isinstance(v, _SCALARS)}


_SCALARS = (int, float, bool, str)


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

    def to_wire(self) -> dict[str, object]:
        return {"buckets": list(self.buckets), "count": self.count, "sum": self.sum, "max": self.max}

    @classmethod
    def from_wire(cls, data: Any) -> HistogramSnapshot:
        if not isinstance(data, Mapping):
            return cls()
        buckets = data.get("buckets")
        if not isinstance(buckets, list) or len(buckets) != len(BUCKET_BOUNDS):
            return cls()
        return cls(tuple(map(decode_int, buckets)), decode_int(data.get("count")), decode_float(data.get("sum")),
                   decode_float(data.get("max")))

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


# --- one pool ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hold:
    """A connection checked out longer than ``LONG_HOLD_SECONDS``: its server backend and its request."""

    backend_pid: int
    seconds: float
    #: ``GET /path (view name)``, or None outside a web request.
    request: str | None = None
    view: str | None = None

    def to_wire(self) -> dict[str, object]:
        return {"backend_pid": self.backend_pid, "seconds": self.seconds, "request": self.request, "view": self.view}

    @classmethod
    def from_wire(cls, data: Any) -> Hold | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("backend_pid"), int):
            return None
        request, view = data.get("request"), data.get("view")
        return cls(data["backend_pid"], decode_float(data.get("seconds")),
                   request if isinstance(request, str) else None, view if isinstance(view, str) else None)


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
    peak_active: int = gauge("connections", "Most connections in use at once since the reset (merged: the largest "
                             "of any one process).", merge="max")
    wait: HistogramSnapshot = field(default_factory=HistogramSnapshot,
                                    metadata=histogram("Seconds waited for a connection."))
    hold: HistogramSnapshot = field(default_factory=HistogramSnapshot,
                                    metadata=histogram("Seconds a connection was held, checkout to return."))
    query: HistogramSnapshot = field(default_factory=HistogramSnapshot, metadata=histogram(
        "Per hold that ran statements, the seconds its connection spent executing them (our engine's pools)."))
    #: Unix time of the last reset (merged: the earliest).
    reset_at: float = 0.0
    processes: int = 1
    recycle_rate_per_minute: float = statistic(
        "gauge", "per_minute", "Connections recycled per minute (merged: summed over processes, each over its "
        "own window).")
    #: One process only (merged: empty): the server backend pids of its open connections.
    backend_pids: tuple[int, ...] = ()
    #: Connections held past ``LONG_HOLD_SECONDS`` now (merged: the longest of every process).
    holds: tuple[Hold, ...] = ()

    @property
    def peak_connections(self) -> int:
        """The cluster's peak: never below the connections in use now."""
        return max(self.peak_active, self.gauges.active)

    def value(self, name: str) -> int | float | bool | None:
        """A counter, gauge or setting by its catalogue name (``KeyError`` for a name it does not have)."""
        value: int | float | bool | None = _SCALAR_READERS[name](self)
        return value

    def histogram(self, name: str) -> HistogramSnapshot:
        """A histogram by its catalogue name (``wait``, ``hold``)."""
        found: HistogramSnapshot = getattr(self, _HISTOGRAM_NAMES[name])
        return found

    def window_seconds(self, now: float) -> float:
        return round(max(now - self.reset_at, 0.0), 3) if self.reset_at else 0.0

    def zeroed(self, now: float) -> PoolSnapshot:
        """This pool as just reset: counters, histograms and peak zeroed, live gauges kept."""
        return replace(self, counters=Counters(), **_each_histogram(lambda _: HistogramSnapshot()),
                       peak_active=self.gauges.active, reset_at=now, recycle_rate_per_minute=0.0)

    def to_wire(self) -> dict[str, object]:
        wire = {
            "name": self.name, "kind": self.kind, "role": self.role, "alias": self.alias, "config": dict(self.config),
            "counters": self.counters.to_wire(), "gauges": self.gauges.to_wire(), "peak_active": self.peak_active,
            **{name: getattr(self, name).to_wire() for name in HISTOGRAMS}, "reset_at": self.reset_at,
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
            peak_active=decode_int(data.get("peak_active")),
            **_each_histogram(lambda name: HistogramSnapshot.from_wire(data.get(name))),
            reset_at=decode_float(data.get("reset_at")), processes=max(decode_int(data.get("processes")), 1),
            recycle_rate_per_minute=decode_float(data.get("recycle_rate_per_minute")),
            backend_pids=tuple(p for p in data.get("backend_pids") or () if isinstance(p, int)
                               and not isinstance(p, bool)) if isinstance(data.get("backend_pids"), list) else (),
            holds=tuple(h for h in (Hold.from_wire(item) for item in data.get("holds") or ()) if h is not None)
            if isinstance(data.get("holds"), list) else (),
        )


#: The histograms of a pool (``wait``, ``hold``...), by their fields.
HISTOGRAMS: tuple[str, ...] = tuple(entry.name for entry in entries(PoolSnapshot) if entry.type == "histogram")
_HISTOGRAM_NAMES = {name: name for name in HISTOGRAMS}


def _each_histogram(make: Callable[[str], HistogramSnapshot]) -> Mapping[str, Any]:
    """``{name: make(name)}`` for every histogram (typed ``Any``: they are keyword arguments of PoolSnapshot)."""
    return {name: make(name) for name in HISTOGRAMS}

#: Statistics computed from others (read like the rest; never stored).
DERIVED: dict[str, Statistic] = {
    "peak_connections": Statistic("gauge", "connections", "Most connections in use at once since the last reset.",
                                  "max"),
}

#: Every statistic a pool reports, by its one internal name (see :mod:`.statistics`).
CATALOGUE: Mapping[str, Statistic] = collect(Counters, Gauges, PoolSnapshot, derived=DERIVED)

_SCALAR_READERS: dict[str, Callable[[PoolSnapshot], Any]] = {
    **{entry.name: attrgetter(f"counters.{entry.name}") for entry in entries(Counters)},
    **{entry.name: attrgetter(f"gauges.{entry.name}") for entry in entries(Gauges)},
    **{entry.name: attrgetter(entry.name) for entry in entries(PoolSnapshot) if entry.type != "histogram"},
    **{name: attrgetter(name) for name in DERIVED},
}


def merge_pool(parts: Sequence[PoolSnapshot], *, now: float) -> PoolSnapshot:
    """One pool's cluster-wide snapshot from its per-process (or per-host) snapshots."""
    first = parts[0]
    # Each total in one pass: adding pairwise made an object per process and field group.
    gauges = Gauges.total([part.gauges for part in parts])
    counters = Counters.total([part.counters for part in parts])
    config = next((part.config for part in parts if part.config), first.config)
    return PoolSnapshot(
        name=first.name, kind=first.kind, role=first.role, alias=first.alias, config=config, counters=counters,
        gauges=gauges, peak_active=max(part.peak_active for part in parts),
        **_each_histogram(lambda name: HistogramSnapshot.total([getattr(part, name) for part in parts])),
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

    def to_wire(self) -> dict[str, object]:
        return {"v": 1, "host": self.host, "pid": self.pid, "taken_at": self.taken_at, "epoch": self.epoch,
                "pools": [pool.to_wire() for pool in self.pools]}

    @classmethod
    def from_wire(cls, data: Any) -> ProcessSnapshot | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("host"), str):
            return None
        pools = tuple(p for p in (PoolSnapshot.from_wire(item) for item in data.get("pools") or []) if p is not None)
        return cls(host=data["host"], pid=decode_int(data.get("pid")), taken_at=decode_float(data.get("taken_at")),
                   epoch=decode_int(data.get("epoch")), pools=pools)
