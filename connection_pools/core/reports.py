"""Typed results derived from the snapshots: recommendations, server budgets, health, and the
server-tier reports.

Like :mod:`.snapshots`, frozen dataclasses with a JSON wire form; the presenter turns them
into the API's dicts. A :data:`Report` is what a report source samples about a server (the
census of a PostgreSQL server, a PgBouncer's pools): every process would see the same
server, so reports are never summed across processes; for each report key the freshest wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

from .census import ServerCensus
from .pooler import PgBouncerReport
from .snapshots import Scalar

#: A server-tier report (the freshest one of each ``key`` wins across processes).
Report: TypeAlias = ServerCensus | PgBouncerReport


def report_from_wire(data: Any) -> Report | None:
    """A report from its wire form (``type`` says which), or None when it is not one."""
    if isinstance(data, Mapping) and data.get("type") == ServerCensus.kind:
        return ServerCensus.from_wire(data)
    if isinstance(data, Mapping) and data.get("type") == PgBouncerReport.kind:
        return PgBouncerReport.from_wire(data)
    return None


def freshest(reports: Iterable[Report]) -> dict[str, Report]:
    """One report per key: the one taken last."""
    found: dict[str, Report] = {}
    for report in reports:
        current = found.get(report.key)
        if current is None or report.taken_at > current.taken_at:
            found[report.key] = report
    return found

Severity: TypeAlias = Literal["high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}
Status: TypeAlias = Literal["healthy", "degraded", "unhealthy"]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One finding of the advisor: which pool, what is wrong, what to change."""

    pool: str
    rule: str
    issue: str
    suggestion: str
    severity: Severity
    setting: str = ""
    current_value: Scalar = None
    suggested_value: Scalar = None

    @property
    def finding(self) -> str:
        """``<pool>|<rule>``: its identity for alert deduplication."""
        return f"{self.pool}|{self.rule}"

    def sort_key(self) -> tuple[int, str, str]:
        return SEVERITY_ORDER.get(self.severity, 9), self.pool, self.rule

    def to_wire(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ServerBudget:
    """One PostgreSQL server's connection budget against what every process may open on it."""

    server: str
    pool: str
    aliases: tuple[str, ...]
    processes: int
    pairs: int
    configured_total: int
    pool_size: int
    max_overflow: int
    max_connections: int | None = None
    reserved: int | None = None
    available: int | None = None

    @property
    def ok(self) -> bool | None:
        """None while the server's limits are unknown."""
        return None if self.available is None else self.configured_total <= self.available

    def to_wire(self) -> dict[str, object]:
        return {**asdict(self), "aliases": list(self.aliases), "ok": self.ok}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ServerBudget:
        return cls(server=str(data.get("server", "")), pool=str(data.get("pool", "")),
                   aliases=tuple(str(a) for a in data.get("aliases") or ()),
                   processes=_whole(data.get("processes")) or 0,
                   pairs=_whole(data.get("pairs")) or 0, configured_total=_whole(data.get("configured_total")) or 0,
                   pool_size=_whole(data.get("pool_size")) or 0, max_overflow=_whole(data.get("max_overflow")) or 0,
                   max_connections=_whole(data.get("max_connections")), reserved=_whole(data.get("reserved")),
                   available=_whole(data.get("available")))


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """A server's ``max_connections`` and the connections it keeps for superusers and reserved roles."""

    max_connections: int
    superuser_reserved: int
    reserved: int

    @property
    def available(self) -> int:
        return self.max_connections - self.superuser_reserved - self.reserved


@dataclass(frozen=True, slots=True)
class PoolHealth:
    """One pool's health check."""

    name: str
    kind: str
    healthy: bool
    latency_ms: float | None = None
    connect_ms: float | None = None
    error: str | None = None
    role: str | None = None
    alias: str | None = None
    replica_lag_seconds: float | None = None
    in_rotation: bool | None = None
    #: A PgBouncer: its paused databases.
    paused: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, object]:
        return {**asdict(self), "paused": list(self.paused)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PoolHealth:
        in_rotation = data.get("in_rotation")
        error = data.get("error")
        return cls(name=str(data.get("name", "")), kind=str(data.get("kind", "")), healthy=data.get("healthy") is True,
                   latency_ms=_number(data.get("latency_ms")), connect_ms=_number(data.get("connect_ms")),
                   error=str(error) if error is not None else None,
                   role=str(data["role"]) if data.get("role") is not None else None,
                   alias=str(data["alias"]) if data.get("alias") is not None else None,
                   replica_lag_seconds=_number(data.get("replica_lag_seconds")),
                   in_rotation=in_rotation if isinstance(in_rotation, bool) else None)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every pool checked at ``checked_at``, the server budgets, and the overall status."""

    status: Status
    checked_at: float
    pools: tuple[PoolHealth, ...] = ()
    budgets: tuple[ServerBudget, ...] = ()
    limits: Mapping[str, ServerLimits] = field(default_factory=dict)

    def pool(self, name: str) -> PoolHealth | None:
        return next((check for check in self.pools if check.name == name), None)

    def to_wire(self) -> dict[str, object]:
        return {"status": self.status, "checked_at": self.checked_at, "pools": [p.to_wire() for p in self.pools],
                "budgets": [b.to_wire() for b in self.budgets],
                "limits": {server: asdict(limits) for server, limits in self.limits.items()}}

    @classmethod
    def from_wire(cls, data: Any) -> HealthReport | None:
        if not isinstance(data, Mapping) or data.get("status") not in ("healthy", "degraded", "unhealthy"):
            return None
        limits = {}
        for server, values in (data.get("limits") or {}).items():
            if isinstance(values, Mapping):
                limits[str(server)] = ServerLimits(_whole(values.get("max_connections")) or 0,
                                                   _whole(values.get("superuser_reserved")) or 0,
                                                   _whole(values.get("reserved")) or 0)
        return cls(status=data["status"], checked_at=_number(data.get("checked_at")) or 0.0,
                   pools=tuple(PoolHealth.from_wire(p) for p in data.get("pools") or () if isinstance(p, Mapping)),
                   budgets=tuple(ServerBudget.from_wire(b) for b in data.get("budgets") or ()
                                 if isinstance(b, Mapping)),
                   limits=limits)
