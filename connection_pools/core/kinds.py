r"""A kind of pool's descriptor: what every surface needs to show it, owned by its source module.

Each source module (``sources/postgres.py``, ``redis.py``...) defines ``KIND``, a :class:`PoolKind`:
its kind id, the group and key of its entries in ``GET stats``, the keys of an entry under the
guide's names (:class:`EntryField`\ s reading the statistics catalogue), what its configured size
is (:class:`Capacity`), its ``/metrics`` families, its health checks, its dashboard card and its
``manage.py poolstats`` lines (:mod:`.figures`). The presenter, the metrics collector, the history,
the health checks, the API's serializers, ``poolstats`` and the dashboard's script loop over the
registered descriptors (:mod:`connection_pools.sources.kinds`) and branch on no kind: a kind is one
module and one line in ``CONNECTION_POOLS["SOURCES"]``.

A *report kind* (the census of a server, a PgBouncer) has reports instead of per-process snapshots:
its entries, health and metric samples come from its latest reports (``entries``,
``report_health``, ``samples``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from .figures import ALL_POOL_METRICS, Card, HealthCheck, MetricFamily, Sample, TextBlock
from .reports import PoolHealth, Report
from .responses import DurationSummaryJSON, Entry, PoolCheckJSON
from .snapshots import CATALOGUE, HISTOGRAMS, HistogramSnapshot, PoolSnapshot, Scalar
from .statistics import Statistic

#: (pool, now) -> the value of one key of its entry.
Read: TypeAlias = Callable[[PoolSnapshot, float], object]
#: The keys of ``GET health``'s entry for a check (besides ``kind``, which every entry has).
CheckKey: TypeAlias = Literal["alias", "healthy", "latency_ms", "connect_ms", "error", "role", "replica_lag_seconds",
                              "in_rotation", "paused"]


@dataclass(frozen=True, slots=True)
class EntryField:
    """One key of a pool's entry in ``GET stats``: its public (the guide's) name, its JSON type (an
    annotation, as a TypedDict's: ``int``, ``float | None``, ``Literal[...]``, a TypedDict...) and how it
    reads a snapshot (None for a report kind, whose entries ``PoolKind.entries`` makes)."""

    name: str
    annotation: Any
    read: Read | None = None
    help: str = ""


def _entry(statistic: str) -> Statistic:
    try:
        return CATALOGUE[statistic]
    except KeyError:
        raise ValueError(f"{statistic!r} is no statistic of the catalogue (connection_pools.core.snapshots."
                         f"CATALOGUE: {', '.join(sorted(CATALOGUE))})") from None


def shows(name: str, statistic: str, help: str = "") -> EntryField:
    """``name`` (the public key) shows the catalogue's ``statistic`` as it is."""
    entry = _entry(statistic)
    if entry.type == "histogram":
        raise ValueError(f"{statistic!r} is a histogram: use summary() or mean()")
    annotation = entry.python_type | None if entry.optional else entry.python_type
    return EntryField(name, annotation, lambda pool, now: pool.value(statistic), help or entry.help)


def summary(name: str, histogram: str, help: str = "") -> EntryField:
    """count, mean, max and p50/p95/p99 of a histogram."""
    _entry(histogram)
    return EntryField(name, DurationSummaryJSON, lambda pool, now: duration(pool.histogram(histogram)),
                      help or CATALOGUE[histogram].help)


def mean(name: str, histogram: str, help: str = "seconds") -> EntryField:
    """The mean of a histogram (seconds)."""
    _entry(histogram)
    return EntryField(name, float, lambda pool, now: pool.histogram(histogram).mean, help)


def computed(name: str, annotation: Any, read: Read, help: str = "") -> EntryField:
    """A key computed from the snapshot (its identity, a sum of settings, the configuration shown...)."""
    return EntryField(name, annotation, read, help)


def duration(histogram: HistogramSnapshot) -> DurationSummaryJSON:
    """count, mean, max and p50/p95/p99 of a histogram (seconds)."""
    found = histogram.summary()
    return DurationSummaryJSON(count=found.count, mean=found.mean, max=found.max, p50=found.p50, p95=found.p95,
                               p99=found.p99)


def reading(statistic: str) -> Callable[[PoolSnapshot], int]:
    """A number of connections by its catalogue name (for :class:`Capacity`)."""
    _entry(statistic)
    return lambda pool: int(pool.value(statistic) or 0)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What this kind's configured size and maximum are, where every kind shows one number for them
    (``connection_pool_size`` / ``_max_size``, the history's ``size`` / ``max_size``, the card's bar).
    By default the catalogue's own ``capacity`` (what the pool keeps) and ``max_capacity`` (what it may
    open); a kind without a configured size says what stands for it (persistent connections: what is
    open)."""

    size: Callable[[PoolSnapshot], int] = field(default_factory=lambda: reading("capacity"))
    max: Callable[[PoolSnapshot], int] = field(default_factory=lambda: reading("max_capacity"))


#: The group of the pools whose kind no registered descriptor describes.
OTHER_GROUP = "other_pools"


def response_key(pool: PoolSnapshot) -> str:
    """``<alias>``, else the name after its prefix (``redis_cache`` -> ``cache``): the guide's grouping keys."""
    return pool.alias or pool.name.split("_", 1)[-1]


@dataclass(frozen=True)
class PoolKind:
    """One kind of pool, as every surface shows it (see the module docstring)."""

    #: The kind id every snapshot (and health check) of this kind carries.
    kind: str
    #: Its entries' group in ``GET stats`` (``database_pools``); None: not in ``GET stats``.
    group: str | None = None
    #: The group's entry in the OpenAPI schema (``DatabasePool``), and the group's description there.
    schema_name: str = ""
    help: str = ""
    fields: tuple[EntryField, ...] = ()
    key: Callable[[PoolSnapshot], str] = response_key
    capacity: Capacity = field(default_factory=Capacity)
    #: The standard pool families (:data:`~.figures.POOL_METRICS`) it has samples in.
    metrics: frozenset[str] = ALL_POOL_METRICS
    card: Card | None = None
    poolstats: TextBlock | None = None
    #: This kind's health checks for the current settings (run by the health job, within one deadline).
    health: Callable[[], Iterable[HealthCheck]] | None = None
    #: What ``GET health`` shows of a check of this kind.
    check_keys: tuple[CheckKey, ...] = ("healthy", "latency_ms", "error")
    #: A failed check of a pool in one of these roles makes the whole system unhealthy (not only degraded).
    essential_roles: frozenset[str] = frozenset()
    #: Its pools' ``pool_size + max_overflow`` (their config) count against their server's ``max_connections``
    #: (the connection budget of ``GET health``).
    server_budget: bool = False
    # --- a report kind ---------------------------------------------------------------------------------
    #: True for a report kind: its sources sample a server into reports (no per-process snapshots).
    reports: bool = False
    #: The TypedDict its entries are (a report kind's entries are made whole by ``entries``).
    entry_shape: type | None = None
    #: Its entries in its group, from the latest reports (``now``: for their age).
    entries: Callable[[Sequence[Report], float], Mapping[str, Entry]] | None = None
    #: Its health from the latest reports.
    report_health: Callable[[Sequence[Report], float], Iterable[PoolHealth]] | None = None
    #: Its own ``/metrics`` families and their samples from the latest reports.
    families: tuple[MetricFamily, ...] = ()
    samples: Callable[[Sequence[Report]], Iterable[Sample]] | None = None

    def __post_init__(self) -> None:
        unknown = self.metrics - ALL_POOL_METRICS
        if unknown:
            raise ValueError(f"kind {self.kind!r}: no such pool metric {', '.join(sorted(unknown))}")
        if not self.reports and (self.group is None or not self.fields):
            raise ValueError(f"kind {self.kind!r}: a pool kind needs its group in GET stats and its fields")

    def entry(self, pool: PoolSnapshot, now: float) -> Entry:
        """The pool's entry in its group: every field's value, under the field's name."""
        return {f.name: f.read(pool, now) for f in self.fields if f.read is not None}

    def check(self, check: PoolHealth) -> PoolCheckJSON:
        """A health check as ``GET health`` shows it (``role``: ``primary`` when the check did not say)."""
        values = check.to_wire()
        shown = {key: (check.role or "primary") if key == "role" else values[key] for key in self.check_keys}
        # The keys are PoolCheckJSON's own (CheckKey), with the types PoolHealth gives them.
        return cast(PoolCheckJSON, {"kind": check.kind, **shown})


def config_shown(pool: PoolSnapshot, now: float) -> dict[str, Scalar]:
    """The pool's effective settings, as it reported them."""
    return dict(pool.config)


#: Keys many kinds share.
def identity(help: str) -> tuple[EntryField, ...]:
    """``pool`` (its name) and ``kind``."""
    return (computed("pool", str, lambda pool, now: pool.name, help),
            computed("kind", str, lambda pool, now: pool.kind))


def extent() -> tuple[EntryField, ...]:
    """``processes`` and ``window_seconds`` (since the last reset)."""
    return (computed("processes", int, lambda pool, now: pool.processes, "Processes reporting this pool."),
            computed("window_seconds", float, lambda pool, now: pool.window_seconds(now),
                     "Seconds since the last reset."))


def generic_kind(kind: str) -> PoolKind:
    """What stands for a kind no registered descriptor describes (a newer process publishing a kind this one
    does not know, a source whose module has no ``KIND``): shown, under the catalogue's own names, in
    ``other_pools`` -- never dropped."""
    from .figures import generic_card, generic_lines

    statistics = tuple(shows(name, name) for name, entry in CATALOGUE.items()
                       if entry.type != "histogram" and name not in ("recycle_rate_per_minute",))
    return PoolKind(
        kind=kind, group=OTHER_GROUP, schema_name="OtherPool",
        fields=(*identity("The pool's name."), computed("role", str, lambda pool, now: pool.role),
                computed("alias", str, lambda pool, now: pool.alias), *statistics,
                *(summary(f"{name}_time", name) for name in HISTOGRAMS), *extent(),
                computed("config", dict[str, Scalar], config_shown)),
        key=lambda pool: pool.name, card=generic_card(), poolstats=generic_lines(),
    )
