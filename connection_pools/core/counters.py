"""The counters a pool owns: counts, the in-use peak and wait/hold/query histograms, thread-safe.

A pool records into its own :class:`PoolCounters` (as psycopg_pool owns its ``_stats``);
its source reads them with :meth:`PoolCounters.read`. Updates take a short lock around
a few integer operations and never around I/O; memory is bounded whatever the traffic
(fixed histogram buckets).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .snapshots import BUCKET_BOUNDS, CounterName, Counters, HistogramSnapshot, bucket_index


class Histogram:
    """A mutable fixed-bucket histogram of seconds (guarded by its owner's lock)."""

    __slots__ = ("buckets", "max", "sum")  # the count is the buckets' sum (one update less per observation)

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKET_BOUNDS)
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        self.add(bucket_index(seconds), seconds)

    def add(self, bucket: int, seconds: float) -> None:
        """:meth:`observe` with the bucket found already (outside the owner's lock)."""
        self.buckets[bucket] += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def read(self) -> HistogramSnapshot:
        return HistogramSnapshot(tuple(self.buckets), sum(self.buckets), self.sum, self.max)


@dataclass(frozen=True, slots=True)
class CountersReading:
    """What :meth:`PoolCounters.read` returns: a consistent copy taken under the lock."""

    counters: Counters
    active: int
    peak_active: int
    wait: HistogramSnapshot
    hold: HistogramSnapshot
    reset_at: float
    #: Per hold that ran statements, the seconds its connection spent executing them (pools that measure it).
    query: HistogramSnapshot = field(default_factory=HistogramSnapshot)


class PoolCounters:
    """Counts, peak and histograms of one pool in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(Counters.NAMES, 0)
        self._active = 0
        self._peak = 0
        self._wait = Histogram()
        self._hold = Histogram()
        self._query = Histogram()
        self.reset_at = time.time()

    # -- the hot path ---------------------------------------------------------------------------
    def checkout(self, wait_seconds: float) -> None:
        """A connection was handed out after waiting ``wait_seconds``."""
        bucket = bucket_index(wait_seconds)  # (outside the lock: every checkout and return take it)
        with self._lock:
            self._counts["checkouts"] += 1
            active = self._active = self._active + 1
            if active > self._peak:
                self._peak = active
            self._wait.add(bucket, wait_seconds)

    def checkin(self, hold_seconds: float | None, query_seconds: float = 0.0) -> None:
        """A connection came back after ``hold_seconds`` (None: unknown, e.g. dropped by a reset), of
        which it spent ``query_seconds`` executing statements (0: none, or not measured: not observed)."""
        bucket = -1 if hold_seconds is None else bucket_index(hold_seconds)
        if query_seconds:  # (a second histogram only for holds that ran statements: every return comes here)
            self._checkin_with_query(bucket, hold_seconds, query_seconds)
            return
        with self._lock:
            if self._active > 0:
                self._active -= 1
            if hold_seconds is not None:
                self._hold.add(bucket, hold_seconds)

    def _checkin_with_query(self, bucket: int, hold_seconds: float | None, query_seconds: float) -> None:
        query_bucket = bucket_index(query_seconds)
        with self._lock:
            if self._active > 0:
                self._active -= 1
            if hold_seconds is not None:
                self._hold.add(bucket, hold_seconds)
            self._query.add(query_bucket, query_seconds)

    def incr(self, name: CounterName, amount: int = 1) -> None:
        """Add ``amount`` to one counter."""
        with self._lock:
            self._counts[name] += amount

    def waited(self, seconds: float) -> None:
        """A wait that ended without a connection (a timeout): in the wait histogram only."""
        with self._lock:
            self._wait.observe(seconds)

    def set_active(self, active: int) -> None:
        """The in-use count, for pools whose owner knows it directly."""
        with self._lock:
            self._active = max(active, 0)
            if self._active > self._peak:
                self._peak = self._active

    # -- reading and resetting ------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return self._active

    def count(self, name: CounterName) -> int:
        return self._counts[name]

    def read(self) -> CountersReading:
        """A consistent copy of everything."""
        with self._lock:
            return CountersReading(Counters(**self._counts), self._active, self._peak, self._wait.read(),
                                   self._hold.read(), self.reset_at, self._query.read())

    def reset(self) -> None:
        """Zero counts, histograms and the peak (to what is in use now); what is in use stays."""
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)
            self._peak = self._active
            self._wait = Histogram()
            self._hold = Histogram()
            self._query = Histogram()
            self.reset_at = time.time()
