"""Recommendations from the server tier: the census of each server, and each PgBouncer's pools.

Pure functions of the reports and the merged pools, like :mod:`.advisor`'s rules, each with
its evidence:

* ``idle_in_transaction``: a session idle in a transaction longer than
  ``CENSUS["IDLE_IN_TRANSACTION_SECONDS"]``, named with its owner (and its request and view
  when the pool's long-hold tracking knows them); suggests ``idle_in_transaction_session_timeout``;
* ``server_headroom``: what every process's pools may open exceeds what the server accepts once
  the other clients' connections are counted; suggests a concrete ``max_overflow``, or PgBouncer;
* ``other_clients``: other clients hold more than ``CENSUS["OTHERS_SHARE"]`` of the server;
* ``blocked_backends``: backends waiting on a lock for more than :data:`BLOCKED_SECONDS`, and who blocks them;
* ``leaked_connections``: server connections of ours that no pool holds;
* ``pgbouncer_waiting``: clients queue in PgBouncer (``cl_waiting > 0``): raise ``default_pool_size``
  or lower the app's ``max_size``;
* ``pgbouncer_client_limit``: the apps' total ``max_size`` through a PgBouncer above its ``max_client_conn``;
* ``login_storm``: many clients logged in to PgBouncer in the last seconds (connecting per request).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ..conf.aliases import AliasSpec, pool_name_for_alias
from ..core.census import ServerCensus
from ..core.pooler import LOGIN_WINDOW_SECONDS, PgBouncerReport
from ..core.reports import Recommendation, ServerBudget, Severity
from ..core.snapshots import PoolSnapshot

BLOCKED_SECONDS = 5.0
LOGIN_STORM_MIN = 20
LOGIN_STORM_SHARE = 0.5
#: ``idle_in_transaction_session_timeout`` we suggest, at least (milliseconds).
MIN_IDLE_TIMEOUT_MS = 60_000


def _rec(pool: str, rule: str, issue: str, suggestion: str, severity: Severity, setting: str = "",
         current: int | float | str | None = None, suggested: int | float | str | None = None) -> Recommendation:
    return Recommendation(pool=pool, rule=rule, issue=issue, suggestion=suggestion, severity=severity,
                          setting=setting, current_value=current, suggested_value=suggested)


def _pool_of(census: ServerCensus) -> str:
    return pool_name_for_alias(census.alias)


def idle_in_transaction(census: ServerCensus, threshold: float) -> Recommendation | None:
    """The longest session idle in a transaction past ``threshold`` seconds."""
    longest = census.longest_idle_in_transaction
    if longest is None or longest.seconds < threshold:
        return None
    over = [s for s in census.idle_in_transaction if s.seconds >= threshold]
    holder = longest.owner
    if longest.request:
        holder += f", request {longest.request}"
    elif longest.view:
        holder += f", view {longest.view}"
    current = census.idle_in_transaction_timeout_ms
    suggested = max(MIN_IDLE_TIMEOUT_MS, math.ceil(threshold * 2) * 1000)
    if current and current <= suggested:
        setting_advice = f"idle_in_transaction_session_timeout is {current} ms: find why the code waits"
    else:
        setting_advice = f"set idle_in_transaction_session_timeout = {suggested} ms on {census.server}"
    others = f" ({len(over)} sessions over {threshold:g} s)" if len(over) > 1 else ""
    severity: Severity = "high" if longest.seconds >= threshold * 5 else "medium"
    return _rec(_pool_of(census), "idle_in_transaction", "Session idle in transaction",
                f"pid {longest.pid} ({holder}) has kept a transaction open for {longest.seconds:.0f} s without a "
                f"statement{others}, holding its connection and its locks: commit or roll back sooner, and "
                f"{setting_advice}", severity, "idle_in_transaction_session_timeout", current or 0,
                suggested if not current or current > suggested else current)


def _others(census: ServerCensus) -> int:
    return census.by_kind.get("other", 0)


def server_headroom(census: ServerCensus, budget: ServerBudget) -> Recommendation | None:
    """The pools may open more than the server accepts once other clients' connections are counted."""
    available = census.available
    if available is None or not census.ok or budget.configured_total > available:
        return None  # unknown, or exceeded outright: the budget rule (budget_overrun) speaks
    others = _others(census) + census.by_kind.get("probe", 0)
    room = available - others
    if budget.configured_total <= room:
        return None
    allowance = max(room, 0) // max(budget.pairs, 1)
    if allowance >= budget.pool_size:
        suggested = allowance - budget.pool_size
        advice = f"reduce max_overflow to {suggested}, or put PgBouncer in front"
    else:
        suggested = 0
        advice = f"reduce pool_size to {max(allowance, 1)} and max_overflow to 0, or put PgBouncer in front"
    return _rec(budget.pool, "server_headroom", "Server headroom exceeded by other clients",
                f"{budget.processes} processes may open {budget.configured_total} connections to {census.server}; "
                f"it accepts {available} and other clients hold {others}: {advice}", "high", "max_overflow",
                budget.max_overflow, suggested)


def other_clients(census: ServerCensus, share: float) -> Recommendation | None:
    """Other clients hold more than ``share`` of what the server accepts."""
    available = census.available
    others = _others(census)
    if available is None or available <= 0 or others <= share * available:
        return None
    top = ", ".join(f"{o.label} ({o.total})" for o in census.owners_of("other")[:3])
    return _rec(_pool_of(census), "other_clients", "Other clients use the server's connections",
                f"{others} of the {available} connections {census.server} accepts are held by other clients "
                f"({top}): give them a pool or PgBouncer, or raise max_connections", "medium",
                "max_connections", census.max_connections, None)


def blocked_backends(census: ServerCensus) -> Recommendation | None:
    """Backends wait on locks longer than :data:`BLOCKED_SECONDS`."""
    waiting = [b for b in census.blocked if b.session.seconds >= BLOCKED_SECONDS]
    if not waiting:
        return None
    first = waiting[0]
    blockers = ", ".join(f"pid {pid} ({name})" for pid, name in zip(first.blocked_by, first.blockers, strict=False))
    severity: Severity = "high" if first.session.seconds >= BLOCKED_SECONDS * 6 else "medium"
    return _rec(_pool_of(census), "blocked_backends", "Backends blocked on locks",
                f"{len(waiting)} backend(s) wait on a lock; pid {first.session.pid} ({first.session.owner}) has "
                f"waited {first.session.seconds:.0f} s for {blockers or 'another backend'}: end the blocking "
                "transaction, and keep transactions that take locks short", severity)


def leaked_connections(census: ServerCensus) -> Recommendation | None:
    """Server connections of ours that no pool holds."""
    if not census.leaks_total:
        return None
    first = census.leaks[0]
    why = ("its pool does not hold it (a connection opened outside the pool)" if first.reason == "unknown_to_pool"
           else "its process stopped reporting but the connection stayed")
    return _rec(pool_name_for_alias(first.alias), "leaked_connections", "Leaked connections",
                f"{census.leaks_total} connection(s) on {census.server} under our application_name are not "
                f"accounted for; pid {first.pid} of {first.host} pid {first.process_pid} ({first.alias}), "
                f"open {first.age_seconds:.0f} s: {why}. Close connections you open yourself, or use the pool",
                "high")


def pgbouncer_waiting(report: PgBouncerReport) -> Recommendation | None:
    """Clients queue in PgBouncer for a server connection."""
    waiting = [p for p in report.pools if p.cl_waiting > 0]
    if not waiting or not report.reachable:
        return None
    worst = max(waiting, key=lambda p: (p.maxwait, p.cl_waiting))
    size = report.config.default_pool_size
    entry = next((d for d in report.databases if d.name == worst.database), None)
    if entry is not None and entry.pool_size:
        size = entry.pool_size
    suggested = (size or 0) + worst.cl_waiting if size else None
    severity: Severity = "high" if worst.maxwait >= 1.0 else "medium"
    return _rec(report.name, "pgbouncer_waiting", "Clients wait in PgBouncer",
                f"{sum(p.cl_waiting for p in waiting)} client(s) wait for a server connection "
                f"({worst.database}/{worst.user}: cl_waiting {worst.cl_waiting}, maxwait {worst.maxwait:.2f} s): "
                f"raise default_pool_size (pool_size {size}) to {suggested}, or lower the app's max_size so "
                "fewer clients compete", severity, "default_pool_size", size, suggested)


def pgbouncer_client_limit(report: PgBouncerReport, demand: int) -> Recommendation | None:
    """The app's pools through this PgBouncer may open more clients than ``max_client_conn``."""
    limit = report.config.max_client_conn
    if limit is None or demand <= limit or not report.reachable:
        return None
    return _rec(report.name, "pgbouncer_client_limit", "PgBouncer client limit below the app's pools",
                f"the app's pools may open {demand} connections to PgBouncer {report.server} but max_client_conn is "
                f"{limit}: raise max_client_conn to at least {demand}, or lower max_overflow", "high",
                "max_client_conn", limit, demand)


def login_storm(report: PgBouncerReport) -> Recommendation | None:
    """Many clients logged in moments ago: something connects per request."""
    recent = report.recent_logins
    if recent < LOGIN_STORM_MIN or recent < LOGIN_STORM_SHARE * max(report.clients, 1):
        return None
    return _rec(report.name, "login_storm", "Login storm on PgBouncer",
                f"{recent} of {report.clients} clients connected to PgBouncer {report.server} in the last "
                f"{LOGIN_WINDOW_SECONDS:g} s: a client connects per request; give it a pool (our engine with "
                "OPTIONS['pool'], DATABASE_POOL_ENABLED=true) or persistent connections", "medium")


def pgbouncer_demand(pools: Iterable[PoolSnapshot], specs: Mapping[str, AliasSpec],
                     report: PgBouncerReport, reports: Sequence[PgBouncerReport]) -> int:
    """Client connections the app's pools may open to ``report``'s PgBouncer (merged ``max_size``)."""
    total = 0
    for pool in pools:
        spec = specs.get(pool.alias)
        if pool.kind != "postgresql" or spec is None or spec.pooler != "pgbouncer":
            continue
        if spec.server == report.server or len(reports) == 1:
            total += pool.gauges.max_capacity
    return total


def advise(census: Iterable[ServerCensus], pgbouncers: Sequence[PgBouncerReport], pools: Sequence[PoolSnapshot],
           budgets: Iterable[ServerBudget], specs: Mapping[str, AliasSpec], *, idle_threshold: float,
           others_share: float) -> list[Recommendation]:
    """Every server-tier recommendation."""
    found: list[Recommendation | None] = []
    by_server = {b.server: b for b in budgets}
    for report in census:
        if not report.ok:
            continue
        found += [idle_in_transaction(report, idle_threshold), other_clients(report, others_share),
                  blocked_backends(report), leaked_connections(report)]
        budget = by_server.get(report.server)
        if budget is not None:
            found.append(server_headroom(report, budget))
    for bouncer in pgbouncers:
        found += [pgbouncer_waiting(bouncer), login_storm(bouncer),
                  pgbouncer_client_limit(bouncer, pgbouncer_demand(pools, specs, bouncer, pgbouncers))]
    return [rec for rec in found if rec is not None]
