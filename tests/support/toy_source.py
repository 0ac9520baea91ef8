"""A toy kind of pool, added as a project would add its own: this module and one line in
``CONNECTION_POOLS["SOURCES"]`` (``"tests.support.toy_source"``), nothing else.

A :class:`WidgetPool` keeps ``CAPACITY`` widgets ready and hands out up to ``LIMIT``, recording
into the app's own :class:`~connection_pools.core.counters.PoolCounters`. Each process's pool
starts with ``STARTUP_CHECKOUTS`` checkouts made and one widget still out, so that the numbers
every surface shows over several processes are known: ``processes`` times these. Its entries in
``GET stats`` use names of its own (``busy_widgets`` for the catalogue's ``active``...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from connection_pools.core.counters import PoolCounters
from connection_pools.core.figures import ALL_POOL_METRICS, Card, Checked, Figure, HealthCheck, TextBlock, TextLine
from connection_pools.core.kinds import PoolKind, computed, extent, shows, summary
from connection_pools.core.reports import PoolHealth
from connection_pools.core.snapshots import Config, Gauges, PoolSnapshot

CAPACITY, LIMIT = 3, 5
STARTUP_CHECKOUTS = 2
STARTUP_WAIT = 0.002  # seconds each startup checkout waited


class WidgetPool:
    """Widgets handed out and taken back, counted."""

    def __init__(self) -> None:
        self.counters = PoolCounters()
        self._lock = threading.Lock()
        self.out = 0

    def checkout(self, waited: float = 0.0) -> None:
        with self._lock:
            if self.out >= LIMIT:
                raise RuntimeError("no widget left")
            self.out += 1
        self.counters.checkout(waited)

    def checkin(self) -> None:
        with self._lock:
            self.out -= 1
        self.counters.checkin(0.001)

    def gauges(self) -> Gauges:
        with self._lock:
            out = self.out
        idle = max(CAPACITY - out, 0)
        return Gauges(active=out, available=idle, open=out + idle, capacity=CAPACITY, max_capacity=LIMIT)

    def start(self) -> None:
        """What every process has done once its pool is in use: two checkouts, one widget still out."""
        for _ in range(STARTUP_CHECKOUTS):
            self.checkout(STARTUP_WAIT)
        self.checkin()


POOL = WidgetPool()
POOL.start()


class WidgetSource:
    """The source of the widget pool (``toy_widgets``)."""

    kind = "toy"
    name = "toy_widgets"
    role = "widgets"
    alias = "widgets"

    def config(self) -> Config:
        return {"capacity": CAPACITY, "limit": LIMIT}

    def snapshot(self) -> PoolSnapshot:
        reading = POOL.counters.read()
        gauges = POOL.gauges()
        return PoolSnapshot(name=self.name, kind=self.kind, role=self.role, alias=self.alias, config=self.config(),
                            counters=reading.counters, gauges=gauges,
                            peak_active=max(reading.peak_active, gauges.active), wait=reading.wait,
                            hold=reading.hold, reset_at=reading.reset_at)

    def reset(self) -> None:
        POOL.counters.reset()


def discover() -> Iterator[WidgetSource]:
    yield WidgetSource()


def _check(seconds: float) -> Checked:
    started = time.monotonic()
    healthy = POOL.gauges().open > 0
    return PoolHealth(name=WidgetSource.name, kind="toy", healthy=healthy, alias=WidgetSource.alias,
                      latency_ms=round((time.monotonic() - started) * 1000, 3)), None


KIND = PoolKind(
    kind="toy", group="toy_pools", schema_name="ToyPool", help="Widget pools (the toy kind of the tests).",
    fields=(
        computed("pool", str, lambda pool, now: pool.name, "`toy_<name>`"),
        computed("kind", str, lambda pool, now: pool.kind),
        shows("busy_widgets", "active"),
        shows("idle_widgets", "available"),
        shows("widgets", "open"),
        shows("keeps", "capacity"),
        shows("limit", "max_capacity"),
        shows("handed_out", "checkouts"),
        shows("most_busy", "peak_connections"),
        summary("wait_time", "wait"),
        *extent(),
    ),
    metrics=ALL_POOL_METRICS - {"overflow_connections", "connections_recycled", "fallbacks", "replica_lag_seconds"},
    card=Card(
        figures=(Figure("busy_widgets", "Busy"), Figure("idle_widgets", "Idle"), Figure("handed_out", "Handed out"),
                 Figure("wait_p95", "Wait p95", "wait_time.p95", "ms")),
        active=("busy_widgets",), size=("keeps",), max=("limit",), role="",
    ),
    poolstats=TextBlock(lines=(
        TextLine("{key}: {busy_widgets}/{keeps} widgets"),
        TextLine("  {pool}  {kind}  {health}"),
        TextLine("  busy {busy_widgets}  idle {idle_widgets}  handed out {handed_out}  limit {limit}"),
    )),
    health=lambda: [HealthCheck(name=WidgetSource.name, kind="toy", run=_check, alias=WidgetSource.alias)],
    check_keys=("alias", "healthy", "latency_ms", "error"),
)
