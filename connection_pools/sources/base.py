r"""The pool-source protocol, and the one registry of this process's sources.

A source is one pool as the statistics see it, in the spirit of django-debug-toolbar's
``Panel``: it has a ``name`` (``db_default``, ``redis_cache``), a ``kind``, a ``role`` and
an ``alias``, and three methods: :meth:`~PoolSource.snapshot` (a typed
:class:`~connection_pools.core.snapshots.PoolSnapshot` of what the pool itself counted),
:meth:`~PoolSource.config` and :meth:`~PoolSource.reset`. The pool owns its counters; the
source only reads them.

Each kind of source is one module with a ``discover()`` function that yields its sources
for the current settings and ``KIND``, the kind's descriptor (how every surface shows it:
:mod:`connection_pools.core.kinds`); ``CONNECTION_POOLS["SOURCES"]`` lists those modules
(:mod:`.kinds`), so adding a kind of pool is one module plus one line.

Some sources count what a *server* holds rather than what this process holds: the census
of a PostgreSQL server (:mod:`.census`) and a PgBouncer's pools (:mod:`.pgbouncer`). They are
:class:`ReportSource`\ s: the same name, kind, role, alias, ``config()`` and ``reset()``, but
instead of a per-process snapshot (which the cluster would sum) they ``sample()`` a typed
report, which a background job takes in one process of the cluster and the cluster store
keeps, the freshest winning (:mod:`connection_pools.cluster.reports`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.core.signals import setting_changed

from ..core.fleet import Fleet
from ..core.reports import Report
from ..core.runtime import runtime
from ..core.snapshots import Config, PoolSnapshot, ProcessSnapshot


@runtime_checkable
class PoolSource(Protocol):
    """One pool, as every statistics surface sees it."""

    name: str
    kind: str
    role: str
    alias: str

    def snapshot(self) -> PoolSnapshot:
        """What the pool counted and holds right now, in this process."""
        ...

    def config(self) -> Config:
        """The pool's effective settings (never a secret)."""
        ...

    def reset(self) -> None:
        """Zero what the pool counted (its live connections are untouched)."""
        ...


@dataclass(frozen=True, slots=True)
class SampleContext:
    """What a report source's sample may use: our processes, and whether to keep its connection open."""

    fleet: Fleet = field(default_factory=Fleet)
    #: True while this process samples for the whole cluster (it holds the job's lease): a dedicated
    #: connection may stay open for the next sample; otherwise it is closed after this one.
    keep_connection: bool = False
    #: PgBouncers' server connections, from their last reports: ``addr:port`` -> {backend pid: PgBouncer name}.
    pooler_backends: Mapping[str, Mapping[int, str]] = field(default_factory=dict)


@runtime_checkable
class ReportSource(Protocol):
    """A server's connections or pools, sampled by a background job into a typed report."""

    name: str
    kind: str
    role: str
    alias: str

    def sample(self, context: SampleContext) -> Report:
        """Read the server now (bounded by the source's own timeout); a failure is a report with an error."""
        ...

    def interval(self) -> float:
        """Seconds between two samples."""
        ...

    def config(self) -> Config:
        """The source's effective settings (never a secret)."""
        ...

    def reset(self) -> None:
        """Forget what the source remembers between samples (its connection stays)."""
        ...

    def close(self) -> None:
        """Close the source's dedicated connection, if it keeps one."""
        ...


Source = PoolSource | ReportSource
Discover = Callable[[], Iterable[Source]]


def _discoverers() -> list[Discover]:
    from .kinds import registrations

    return [registration.discover for registration in registrations()]


class SourceRegistry:
    """Every source of this process: discovered once per settings object, again after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, PoolSource] | None = None
        self._reports: dict[str, ReportSource] = {}
        self._pid = os.getpid()
        self._extra: dict[str, PoolSource] = {}

    def _current(self) -> dict[str, PoolSource]:
        sources = self._sources
        if sources is not None and self._pid == os.getpid():
            return sources
        with self._lock:
            if self._sources is None or self._pid != os.getpid():
                found: dict[str, PoolSource] = {}
                reports: dict[str, ReportSource] = {}
                for discover in _discoverers():
                    for source in discover():
                        if isinstance(source, PoolSource):
                            found.setdefault(source.name, source)
                        else:
                            reports.setdefault(source.name, source)
                old, self._reports = self._reports, reports
                if self._pid == os.getpid():
                    for source in old.values():
                        source.close()
                self._sources, self._pid = found, os.getpid()
            return self._sources

    def sources(self) -> list[PoolSource]:
        """Every pool source, by name."""
        current = {**self._current(), **self._extra}
        return [current[name] for name in sorted(current)]

    def report_sources(self) -> list[ReportSource]:
        """Every report source (server census, PgBouncer), by name."""
        self._current()
        return [self._reports[name] for name in sorted(self._reports)]

    def get(self, name: str) -> PoolSource | None:
        return {**self._current(), **self._extra}.get(name)

    def names(self) -> list[str]:
        return [source.name for source in self.sources()]

    def add(self, source: PoolSource) -> None:
        """A source that ``discover()`` does not know (tests, a pool built by hand)."""
        self._extra[source.name] = source

    def remove(self, name: str) -> None:
        self._extra.pop(name, None)

    def forget(self) -> None:
        """Discover again at the next read (settings changed)."""
        with self._lock:
            self._sources = None

    def snapshot(self, *, epoch: int = 0) -> ProcessSnapshot:
        """This process's snapshot of every pool."""
        return ProcessSnapshot(host=socket.gethostname(), pid=os.getpid(), taken_at=time.time(), epoch=epoch,
                               pools=tuple(source.snapshot() for source in self.sources()))

    def reset(self, name: str | None = None) -> list[str]:
        """Reset one source, or all; the names reset."""
        reset = []
        for source in self.sources():
            if name is None or source.name == name:
                source.reset()
                reset.append(source.name)
        return reset


#: The registry of this process.
registry = SourceRegistry()


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DATABASES", "CONNECTION_POOLS", "CACHES"):
        registry.forget()


setting_changed.connect(_forget, dispatch_uid="connection_pools.sources.registry")

runtime.register("sources", registry.forget, after_fork=True)
