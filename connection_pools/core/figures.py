"""How a surface shows one kind of pool: its dashboard card, its ``poolstats`` lines, its ``/metrics``
families and its health checks -- the parts of a :class:`~.kinds.PoolKind` that are data for a surface.

A card and the ``poolstats`` lines read the pool's *entry* (the public JSON of ``GET stats``, by its
public keys): the dashboard renders the same entries it fetches, and ``poolstats`` prints them.
The standard ``/metrics`` families (:data:`POOL_METRICS`) read the statistics catalogue: every pool
kind has samples in the ones its descriptor lists, under the same names and labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .reports import PoolHealth, ServerLimits

# --- the dashboard card ----------------------------------------------------------------------------------
Format: TypeAlias = Literal["count", "ms", "seconds", "yes_no"]


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of a card: its ``data-field``, its label, the entry's value it shows (a dotted path:
    ``wait_time.p95``) and how; ``when``: shown only when the entry's ``when[0]`` equals ``when[1]``."""

    field: str
    label: str
    value: str = ""
    format: Format = "count"
    when: tuple[str, str] | None = None

    def to_json(self) -> dict[str, object]:
        return {"field": self.field, "label": self.label, "value": self.value or self.field, "format": self.format,
                "when": list(self.when) if self.when else None}


@dataclass(frozen=True, slots=True)
class Card:
    """A pool's card on the dashboard. ``name``, ``kind``, ``role`` and ``health`` are templates over the
    entry (``{pool}``, ``{pgbouncers.0}``; ``{key}``: its key in the group); the usage bar's ``active``,
    ``size``, ``max`` and ``overflow`` are sums of entry values (dotted paths)."""

    figures: tuple[Figure, ...]
    active: tuple[str, ...]
    size: tuple[str, ...]
    max: tuple[str, ...]
    overflow: tuple[str, ...] = ()
    name: str = "{pool}"
    kind: str = "{kind}"
    role: str = "{role}"
    #: The name of its check in ``GET health``.
    health: str = "{pool}"

    def to_json(self) -> dict[str, object]:
        return {"figures": [figure.to_json() for figure in self.figures], "active": list(self.active),
                "size": list(self.size), "max": list(self.max), "overflow": list(self.overflow), "name": self.name,
                "kind": self.kind, "role": self.role, "health": self.health}


# --- manage.py poolstats ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of a pool's block: a ``str.format`` template over its entry (``{wait_time[p95]:ms}``: ``ms``
    shows seconds as milliseconds; ``{key}``: its key in the group; ``{health}``: its health), then each tail
    whose entry value (``tails[i][0]``) is not null."""

    template: str
    tails: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TextBlock:
    """A group's lines in ``poolstats``: ``lines`` for each entry (by key), under ``heading`` if any; a blank
    line after each entry (``separate``), or after the group."""

    lines: tuple[TextLine, ...]
    heading: str | None = None
    separate: bool = True


# --- /metrics --------------------------------------------------------------------------------------------
MetricType: TypeAlias = Literal["gauge", "counter", "histogram"]
#: (family name, label values, value)
Sample: TypeAlias = tuple[str, tuple[str, ...], float]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A ``/metrics`` family (name without the ``connection_pool_`` prefix; a counter without ``_total``)."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]


POOL_LABELS = ("pool", "kind", "alias")


@dataclass(frozen=True, slots=True)
class PoolMetric:
    """A standard pool family: what it reads of each pool (a statistic of the catalogue, or ``size`` /
    ``max_size``: the kind's :class:`~.kinds.Capacity`)."""

    family: MetricFamily
    reads: str


def _pool(name: str, type: MetricType, help: str, reads: str) -> PoolMetric:
    return PoolMetric(MetricFamily(name, type, help, POOL_LABELS), reads)


POOL_METRICS: tuple[PoolMetric, ...] = (
    _pool("active_connections", "gauge", "Connections checked out right now.", "active"),
    _pool("available_connections", "gauge", "Idle connections ready in the pool.", "available"),
    _pool("waiting_requests", "gauge", "Requests waiting for a connection right now.", "waiting"),
    _pool("size", "gauge", "Configured pool size (pool_size; max_connections for Redis).", "size"),
    _pool("max_size", "gauge", "Most connections the pool may open (pool_size + max_overflow).", "max_size"),
    _pool("overflow_connections", "gauge", "Connections open beyond pool_size right now.", "overflow_in_use"),
    _pool("peak_connections", "gauge", "Most connections in use at once since the last reset.", "peak_connections"),
    _pool("replica_lag_seconds", "gauge", "Replication lag of a read replica, in seconds.", "replica_lag_seconds"),
    _pool("checkouts", "counter", "Connections handed out.", "checkouts"),
    _pool("connections_created", "counter", "Connections opened.", "connections_created"),
    _pool("connections_closed", "counter", "Connections closed.", "connections_closed"),
    _pool("connections_recycled", "counter", "Connections closed for age (pool_recycle).", "recycled"),
    _pool("connection_errors", "counter", "Failed connection attempts and broken connections.", "connection_errors"),
    _pool("timeouts", "counter", "Checkouts that gave up waiting (pool_timeout).", "timeouts"),
    _pool("fallbacks", "counter", "Reads sent elsewhere because this replica could not serve them.", "fallbacks"),
    _pool("wait_seconds", "histogram", "Seconds waited for a connection.", "wait"),
    _pool("hold_seconds", "histogram", "Seconds a connection was held, checkout to return.", "hold"),
    _pool("query_seconds", "histogram", "Per hold that ran statements, the seconds spent executing them.", "query"),
)
ALL_POOL_METRICS: frozenset[str] = frozenset(metric.family.name for metric in POOL_METRICS)


# --- health ---------------------------------------------------------------------------------------------
#: A check's result: the pool's health, and the server's connection limits when the check read them.
Checked: TypeAlias = tuple[PoolHealth, ServerLimits | None]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One health check of a kind: who it checks (for an answer that comes too late) and how."""

    name: str
    kind: str
    run: Callable[[float], Checked]
    role: str | None = None
    alias: str | None = None
    #: The server the check reads limits of (``host:port``), for the connection budgets.
    server: str | None = None


# --- what stands for a kind nobody described ------------------------------------------------------------------
def generic_card() -> Card:
    return Card(
        figures=(Figure("active", "Active"), Figure("available", "Available"), Figure("waiting", "Waiting"),
                 Figure("checkouts", "Checkouts"), Figure("connection_errors", "Errors"),
                 Figure("timeouts", "Timeouts")),
        active=("active",), size=("capacity",), max=("max_capacity",), kind="{kind} (not described)")


def generic_lines() -> TextBlock:
    return TextBlock(lines=(
        TextLine("{key}: {active}/{capacity}  ({kind}: no descriptor registered for this kind)"),
        TextLine("  {pool}  {kind} {role}  {health}"),
        TextLine("  active {active}  available {available}  waiting {waiting}  open {open}  max {max_capacity}"),
        TextLine("  checkouts {checkouts}  errors {connection_errors}  timeouts {timeouts}"),
    ))
