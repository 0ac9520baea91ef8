"""Per-process pool statistics: counters, gauges, bounded histograms, snapshots.

One :class:`PoolStats` per pool, kept in the process-wide :data:`registry`.
Updates take a short lock around a few integer operations and never around I/O.
Memory is bounded whatever the traffic: histograms have fixed buckets.

A snapshot is a plain JSON-able dict, the one shape that every adapter returns,
that is published to Redis, merged across processes and shown everywhere::

    {"name": "db_default", "kind": "postgresql", "alias": "default", "role": "primary",
     "config": {...}, "gauges": {...}, "counters": {...}, "peaks": {...},
     "histograms": {"wait_seconds": {...}, "hold_seconds": {...}}}
"""

from __future__ import annotations

import bisect
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

# --- counter keys (monotonic, reset only by reset()) ------------------------
CHECKOUTS = "checkouts"
CONNECTIONS_CREATED = "connections_created"
CONNECTIONS_CLOSED = "connections_closed"
RECYCLED = "recycled"
CONNECTION_ERRORS = "connection_errors"
TIMEOUTS = "timeouts"
PRE_PING_FAILURES = "pre_ping_failures"
FALLBACKS = "fallbacks"
LONG_HOLDS = "long_holds"
COUNTER_KEYS: tuple[str, ...] = (
    CHECKOUTS,
    CONNECTIONS_CREATED,
    CONNECTIONS_CLOSED,
    RECYCLED,
    CONNECTION_ERRORS,
    TIMEOUTS,
    PRE_PING_FAILURES,
    FALLBACKS,
    LONG_HOLDS,
)

# --- gauge keys (point in time, read from the live pool) --------------------
ACTIVE = "active"
AVAILABLE = "available"
SIZE = "size"
WAITING = "waiting"
OVERFLOW_IN_USE = "overflow_in_use"
MIN_SIZE = "min_size"
MAX_SIZE = "max_size"

WAIT_SECONDS = "wait_seconds"
HOLD_SECONDS = "hold_seconds"

#: Upper bounds (seconds) of the histogram buckets; the last bucket is +Inf.
BUCKET_BOUNDS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf,
)  # fmt: skip


class Histogram:
    """A fixed-bucket histogram of seconds: constant memory, mergeable across processes.

    Not thread-safe on its own; :class:`PoolStats` guards it with its lock.
    """

    __slots__ = ("buckets", "count", "max", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKET_BOUNDS)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(BUCKET_BOUNDS, seconds)] += 1
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def to_dict(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "count": self.count, "sum": self.sum, "max": self.max}


def empty_histogram() -> dict[str, Any]:
    """The snapshot form of a histogram with no observations."""
    return Histogram().to_dict()


def merge_histograms(histograms: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Add histogram snapshots bucket by bucket (same bounds everywhere)."""
    merged = empty_histogram()
    for h in histograms:
        merged["buckets"] = [a + b for a, b in zip(merged["buckets"], h["buckets"], strict=True)]
        merged["count"] += h["count"]
        merged["sum"] += h["sum"]
        merged["max"] = max(merged["max"], h["max"])
    return merged


def quantile(histogram: dict[str, Any], q: float) -> float:
    """Estimate the ``q`` quantile (0..1) by linear interpolation within its bucket.

    The estimate never exceeds the largest value observed.
    """
    count = histogram["count"]
    if not count:
        return 0.0
    rank = q * count
    seen = 0
    for index, in_bucket in enumerate(histogram["buckets"]):
        if not in_bucket:
            continue
        if seen + in_bucket >= rank:
            lower = BUCKET_BOUNDS[index - 1] if index else 0.0
            upper = BUCKET_BOUNDS[index]
            if math.isinf(upper):
                return float(histogram["max"])
            estimate = lower + (upper - lower) * max(rank - seen, 0) / in_bucket
            return min(estimate, float(histogram["max"]))
        seen += in_bucket
    return float(histogram["max"])


def summarize_histogram(histogram: dict[str, Any]) -> dict[str, float]:
    """count, mean, max and p50/p95/p99 of a histogram snapshot."""
    count = histogram["count"]
    return {
        "count": count,
        "mean": histogram["sum"] / count if count else 0.0,
        "max": histogram["max"],
        "p50": quantile(histogram, 0.50),
        "p95": quantile(histogram, 0.95),
        "p99": quantile(histogram, 0.99),
    }


GaugeSource = Callable[[], dict[str, Any]]


class PoolStats:
    """Counters, peak and histograms of one pool in this process.

    ``gauge_source`` (set by the pool adapter) reads point-in-time gauges from
    the live pool; ``config_source`` returns the pool's effective settings.
    """

    def __init__(self, name: str, kind: str, *, alias: str | None = None, role: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.alias = alias
        self.role = role
        self.gauge_source: GaugeSource | None = None
        self.config_source: GaugeSource | None = None
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(COUNTER_KEYS, 0)
        self._active = 0
        self._peak_active = 0
        self._wait = Histogram()
        self._hold = Histogram()
        self._extra_gauges: dict[str, Any] = {}
        self.reset_at = time.time()

    # -- hot path --------------------------------------------------------------
    def record_checkout(self, wait_seconds: float) -> None:
        """A connection was handed out after waiting ``wait_seconds``."""
        with self._lock:
            self._counters[CHECKOUTS] += 1
            self._active += 1
            if self._active > self._peak_active:
                self._peak_active = self._active
            self._wait.observe(wait_seconds)

    def record_checkin(self, hold_seconds: float | None) -> None:
        """A connection came back after being held ``hold_seconds`` (None: unknown)."""
        with self._lock:
            if self._active > 0:
                self._active -= 1
            if hold_seconds is not None:
                self._hold.observe(hold_seconds)

    def incr(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``key`` (new keys are allowed)."""
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def observe(self, histogram: str, seconds: float) -> None:
        """Record a duration in ``wait_seconds`` or ``hold_seconds`` without touching ``active``."""
        with self._lock:
            (self._wait if histogram == WAIT_SECONDS else self._hold).observe(seconds)

    def set_active(self, active: int) -> None:
        """Set the in-use count directly (for pools whose adapter reads it from the pool)."""
        with self._lock:
            self._active = max(active, 0)
            if self._active > self._peak_active:
                self._peak_active = self._active

    def set_gauge(self, key: str, value: Any) -> None:
        """Set a point-in-time gauge kept outside the pool (e.g. ``replica_lag_seconds``, ``in_rotation``)."""
        self._extra_gauges[key] = value

    # -- reading -----------------------------------------------------------------
    @property
    def active(self) -> int:
        return self._active

    def counter(self, key: str) -> int:
        return self._counters.get(key, 0)

    def reset(self) -> None:
        """Zero counters, histograms and the peak (to what is in use now); the live pool is untouched."""
        with self._lock:
            self._counters = dict.fromkeys(self._counters, 0)
            self._peak_active = self._active
            self._wait = Histogram()
            self._hold = Histogram()
            self.reset_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of everything this pool measured, plus live gauges."""
        gauges: dict[str, Any] = {}
        if self.gauge_source is not None:
            # Read outside our lock: the source may take the pool's own lock.
            gauges = dict(self.gauge_source())
        gauges.update(self._extra_gauges)
        config = dict(self.config_source()) if self.config_source is not None else {}
        with self._lock:
            gauges.setdefault(ACTIVE, self._active)
            peak = max(self._peak_active, gauges[ACTIVE])
            counters = dict(self._counters)
            wait = self._wait.to_dict()
            hold = self._hold.to_dict()
        return {
            "name": self.name,
            "kind": self.kind,
            "alias": self.alias,
            "role": self.role,
            "config": config,
            "gauges": gauges,
            "counters": counters,
            "peaks": {ACTIVE: peak},
            "histograms": {WAIT_SECONDS: wait, HOLD_SECONDS: hold},
            "reset_at": self.reset_at,
        }


class StatsRegistry:
    """Every :class:`PoolStats` of this process, by pool name."""

    def __init__(self) -> None:
        self._pools: dict[str, PoolStats] = {}
        self._lock = threading.Lock()

    def get_or_create(self, name: str, kind: str, *, alias: str | None = None, role: str | None = None) -> PoolStats:
        """Return the stats of pool ``name``, creating them on first use."""
        stats = self._pools.get(name)
        if stats is None:
            with self._lock:
                stats = self._pools.setdefault(name, PoolStats(name, kind, alias=alias, role=role))
        return stats

    def get(self, name: str) -> PoolStats | None:
        return self._pools.get(name)

    def names(self) -> list[str]:
        return sorted(self._pools)

    def all(self) -> list[PoolStats]:
        return [self._pools[name] for name in self.names()]

    def remove(self, name: str) -> None:
        with self._lock:
            self._pools.pop(name, None)

    def reset(self, name: str | None = None) -> None:
        """Reset one pool's statistics, or every pool's."""
        for stats in self.all():
            if name is None or stats.name == name:
                stats.reset()

    def snapshot(self) -> dict[str, Any]:
        """This process's snapshot of every pool."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "taken_at": time.time(),
            "pools": {stats.name: stats.snapshot() for stats in self.all()},
        }


#: The process-wide registry every adapter records into.
registry = StatsRegistry()


def pool_name_for_alias(alias: str) -> str:
    """``db_<alias>``: the name of a database alias's pool in every output."""
    return f"db_{alias}"


def pool_name_for_redis(name: str) -> str:
    """``redis_<name>``: the name of a Redis pool in every output."""
    return f"redis_{name}"
