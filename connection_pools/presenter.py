"""The guide's response shape, made in one place from the typed cluster view.

Everything below this module speaks one vocabulary (the statistics catalogue,
:mod:`connection_pools.core.statistics`); here, at the edge, each pool becomes an entry of its
group, made by its kind's descriptor (:mod:`connection_pools.core.kinds`): a database pool
``database_pools.<alias>`` with ``active_connections`` / ``peak_connections``, a Redis pool
``redis_pools.<name>`` with ``in_use_connections`` / ``peak_in_use``, as the guide's example
response has them, and any other registered kind in its own group. The shapes are TypedDicts
(:mod:`connection_pools.core.responses`) from which the API's serializers and OpenAPI schema are
derived, and a test validates real responses against that schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .cluster.view import ClusterView, ProcessInfo
from .core.census import ServerCensus, Session
from .core.pooler import PgBouncerReport
from .core.reports import HealthReport, PoolHealth, Recommendation, ServerBudget, Status
from .core.responses import (
    BudgetJSON,
    CensusJSON,
    Groups,
    HealthJSON,
    OwnerKindsJSON,
    PgBouncerJSON,
    PointJSON,
    PoolCheckJSON,
    ProcessJSON,
    RecommendationJSON,
    ServerBudgetJSON,
    ServerJSON,
    SessionJSON,
    StatsJSON,
)
from .core.snapshots import PoolSnapshot
from .sources import pgbouncer_figures
from .sources.kinds import groups, kind_of, registered


def pools(snapshots: Iterable[PoolSnapshot], *, now: float) -> Groups:
    """Every pool in its kind's group (``{"database_pools": {...}, "redis_pools": {...}}``): each registered
    group, empty or not; a pool of a kind nobody registered in ``other_pools``."""
    found: Groups = {group: {} for group, kinds in groups().items() if not kinds[0].reports}
    for pool in snapshots:
        kind = kind_of(pool.kind)
        assert kind.group is not None  # a pool kind always has one (PoolKind checks it)
        found.setdefault(kind.group, {})[kind.key(pool)] = kind.entry(pool, now)
    return found


def recommendation(rec: Recommendation) -> RecommendationJSON:
    return RecommendationJSON(pool=rec.pool, rule=rec.rule, issue=rec.issue, suggestion=rec.suggestion,
                              severity=rec.severity, current_value=rec.current_value,
                              suggested_value=rec.suggested_value, setting=rec.setting)


def process(info: ProcessInfo) -> ProcessJSON:
    return ProcessJSON(host=info.host, pid=info.pid, age_seconds=info.age_seconds, epoch=info.epoch)


def stats(view: ClusterView, recommendations: Iterable[Recommendation], *, now: float) -> dict[str, object]:
    """The guide's stats response (``GET stats``, ``pool_stats()``): every group of pools (the report kinds'
    too: ``pgbouncer_pools``), then :class:`~connection_pools.core.responses.StatsJSON`."""
    body: dict[str, object] = dict(pools(view.pools, now=now))
    for kind in registered():
        if kind.reports and kind.group is not None and kind.entries is not None:
            body[kind.group] = dict(kind.entries(view.reports, now))
    rest = StatsJSON(recommendations=[recommendation(rec) for rec in recommendations],
                     processes={"count": view.process_count, "list": [process(p) for p in view.processes]},
                     source=view.source, redis_available=view.redis_available, generated_at=now)
    if view.per_process:
        rest["per_process"] = {key: pools(snapshots, now=now) for key, snapshots in sorted(view.per_process.items())}
    body.update(rest)
    return body


def pool_check(check: PoolHealth) -> PoolCheckJSON:
    """One pool's health, as ``GET health`` shows it (the keys its kind's descriptor lists)."""
    return kind_of(check.kind).check(check)


def budget(entry: ServerBudget) -> BudgetJSON:
    return BudgetJSON(server=entry.server, pool=entry.pool, aliases=list(entry.aliases), processes=entry.processes,
                      pairs=entry.pairs, configured_total=entry.configured_total, pool_size=entry.pool_size,
                      max_overflow=entry.max_overflow, max_connections=entry.max_connections, reserved=entry.reserved,
                      available=entry.available, ok=entry.ok)


def health(report: HealthReport, budgets: Iterable[ServerBudget], status: Status, *, now: float,
           primary_server: str | None) -> HealthJSON:
    """The ``GET health`` response: every pool, the primary's budget (and every server's), the status."""
    servers = [budget(b) for b in budgets]
    main = next((b for b in servers if b["server"] == primary_server), servers[0] if servers else None)
    if main is None:
        summary_ = ServerBudgetJSON(server=primary_server, max_connections=None, reserved=None, available=None,
                                    configured_total=0, processes=0, ok=None, servers=servers)
    else:
        summary_ = ServerBudgetJSON(server=main["server"], max_connections=main["max_connections"],
                                    reserved=main["reserved"], available=main["available"],
                                    configured_total=main["configured_total"], processes=main["processes"],
                                    ok=main["ok"], servers=servers)
    return HealthJSON(
        status=status, checked_at=report.checked_at, age_seconds=round(max(now - report.checked_at, 0.0), 3),
        pools={check.name: pool_check(check) for check in report.pools}, server_budget=summary_,
    )


# --- the server tier -------------------------------------------------------------------------------
def pgbouncer(report: PgBouncerReport, *, now: float) -> PgBouncerJSON:
    """One PgBouncer as ``GET server`` shows it."""
    config = report.config
    return PgBouncerJSON(
        name=report.name, server=report.server, reachable=report.reachable, error=report.error,
        version=report.version, taken_at=report.taken_at, age_seconds=round(max(now - report.taken_at, 0), 3),
        paused=list(report.paused), clients=report.clients, client_states=dict(report.client_states),
        servers=report.servers, server_states=dict(report.server_states), recent_logins=report.recent_logins,
        config={"max_client_conn": config.max_client_conn, "default_pool_size": config.default_pool_size,
                "reserve_pool_size": config.reserve_pool_size, "max_db_connections": config.max_db_connections,
                "pool_mode": config.pool_mode},
        pools=pgbouncer_figures.pools([report], now),
    )


def _shown(entry: Session, *, query_text: bool) -> SessionJSON:
    shown = entry.to_wire()
    if not query_text:
        shown["query"] = None  # the reader's setting decides too: never shown when it is off here
    return shown


def _session(entry: Session | None, *, query_text: bool) -> SessionJSON | None:
    return None if entry is None else _shown(entry, query_text=query_text)


def census(report: ServerCensus, *, now: float, query_text: bool, stale_after: float) -> CensusJSON:
    """One server's census as ``GET server`` shows it (query text only when ``query_text``)."""
    age = round(max(now - report.taken_at, 0.0), 3)
    kinds = report.by_kind
    return CensusJSON(
        name=report.name, server=report.server, alias=report.alias, role=report.role or "primary",
        aliases=list(report.aliases), ok=report.ok, error=report.error, taken_at=report.taken_at,
        age_seconds=age, stale=age > stale_after, duration_ms=report.duration_ms,
        max_connections=report.max_connections, superuser_reserved=report.superuser_reserved,
        reserved=report.reserved, available=report.available, connections=report.connections,
        headroom=report.headroom, idle_in_transaction_timeout_ms=report.idle_in_transaction_timeout_ms,
        states=report.states.to_wire(),
        by_kind=OwnerKindsJSON(ours=kinds.get("ours", 0), pooler=kinds.get("pooler", 0), probe=kinds.get("probe", 0),
                               other=kinds.get("other", 0), replication=kinds.get("replication", 0),
                               background=kinds.get("background", 0)),
        owners=[owner.to_wire() for owner in report.owners], owners_total=report.owners_total,
        longest_query=_session(report.longest_query, query_text=query_text),
        longest_idle_in_transaction=_session(report.longest_idle_in_transaction, query_text=query_text),
        idle_in_transaction=[_shown(s, query_text=query_text) for s in report.idle_in_transaction],
        blocked=[{"session": _shown(b.session, query_text=query_text), "blocked_by": list(b.blocked_by),
                  "blockers": list(b.blockers)} for b in report.blocked],
        blocked_total=report.blocked_total, leaks=[leak.to_wire() for leak in report.leaks],
        leaks_total=report.leaks_total, leaks_checked=report.leaks_checked,
        query_text=query_text and report.query_text,
    )


#: The recommendations ``GET server`` shows (the server tier's rules).
SERVER_RULES = frozenset({"idle_in_transaction", "server_headroom", "other_clients", "blocked_backends",
                          "leaked_connections", "pgbouncer_waiting", "pgbouncer_client_limit", "login_storm",
                          "budget_overrun"})


def server(view: ClusterView, recommendations: Iterable[Recommendation], *, now: float, query_text: bool,
           stale_after: float, history: Mapping[str, list[PointJSON]] | None = None) -> ServerJSON:
    """The ``GET server`` response: the census of every server, every PgBouncer, and their recommendations."""
    return ServerJSON(
        servers={r.name: census(r, now=now, query_text=query_text, stale_after=stale_after)
                 for r in sorted(view.census(), key=lambda r: r.name)},
        pgbouncers={r.name: pgbouncer(r, now=now) for r in sorted(view.pgbouncers(), key=lambda r: r.name)},
        recommendations=[recommendation(rec) for rec in recommendations if rec.rule in SERVER_RULES],
        history=dict(history or {}), source=view.source, generated_at=now,
    )
