"""The census's arithmetic: rows of ``pg_stat_activity`` and our fleet in, a :class:`ServerCensus` out.

Pure (no I/O), so every rule is tested with rows made by hand as well as against the real
server. Who owns a connection:

* a client backend that a PgBouncer holds as a server connection (its ``SHOW SERVERS``, from its last
  report) is that **pooler**'s, whatever client name it carries from its last client;
* a client backend whose ``application_name`` carries our token (``django[default:4242@web-1]``,
  :mod:`connection_pools.backends.postgresql.attribution`) is **ours**: that host, pid and alias;
* one named ``connection_pools.*`` is one of our **probes** (health, lag, census);
* any other client backend is an **other** client, by application_name, user and address;
* ``walsender`` backends are **replication**; every other backend type is **background**.

Only client backends count against ``max_connections`` (walsenders have their own slots since
PostgreSQL 12), so ``states`` and the headroom count client backends only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..backends.postgresql.attribution import Attribution, host_matches, parse
from ..core.census import (
    OWNER_KINDS,
    BlockedSession,
    Leak,
    LeakReason,
    OwnerCount,
    OwnerKind,
    ServerCensus,
    Session,
    StateCounts,
)
from ..core.fleet import Fleet, FleetProcess
from ..core.snapshots import Hold

PROBE_PREFIX = "connection_pools."
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
SESSIONS_MAX = 10
BLOCKED_MAX = 20
LEAKS_MAX = 20
#: Seconds of clock difference tolerated between the server and our snapshots.
CLOCK_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class Backend:
    """One row of ``pg_stat_activity`` (ages in seconds, measured by the server's clock)."""

    pid: int
    backend_type: str
    state: str | None = None
    application_name: str = ""
    user: str = ""
    address: str = ""
    backend_seconds: float = 0.0
    #: ``backend_start`` as Unix time (a backend's identity together with its pid).
    backend_start: float = 0.0
    state_seconds: float | None = None
    query_seconds: float | None = None
    transaction_seconds: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    blocked_by: tuple[int, ...] = ()
    query: str | None = None

    @property
    def is_client(self) -> bool:
        return self.backend_type == "client backend"


@dataclass(frozen=True, slots=True)
class Limits:
    """What ``pg_settings`` says about the connection budget."""

    max_connections: int | None = None
    superuser_reserved: int | None = None
    reserved: int | None = None
    idle_in_transaction_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """How to read the rows: our prefix, aliases through a pooler, and the census settings."""

    prefix: str
    pooled_aliases: frozenset[str] = frozenset()
    top_owners: int = 20
    leak_grace: float = 5.0
    query_text: bool = False
    #: Backends PgBouncers hold (pid -> PgBouncer name).
    pooler_pids: Mapping[int, str] = field(default_factory=dict)


#: A leak candidate's identity: (backend pid, backend_start, reason).
Suspect = tuple[int, float, str]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds one backend (before counting)."""

    kind: OwnerKind
    key: tuple[str, ...]
    label: str
    attribution: Attribution | None = None
    process: FleetProcess | None = None
    reporting: bool | None = None
    via_pooler: bool = False


def owner_of(row: Backend, fleet: Fleet, options: Options) -> Owner:
    """The owner of one backend."""
    if not row.is_client:
        if row.backend_type == "walsender":
            label = f"walsender {row.application_name or ''} {row.user}@{row.address or 'local'}".replace("  ", " ")
            return Owner("replication", ("replication", row.application_name, row.user, row.address), label)
        return Owner("background", ("background", row.backend_type), row.backend_type or "background")
    pooler = options.pooler_pids.get(row.pid)
    if pooler is not None:
        return Owner("pooler", ("pooler", pooler), f"PgBouncer {pooler} (last client: {row.application_name or '-'})"
                     .replace(" (last client: -)", ""))
    ours = parse(row.application_name, options.prefix)
    if ours is not None:
        process = find_process(fleet, ours)
        reporting = True if process is not None else (False if gone(fleet, ours) else None)
        label = f"{ours.host} pid {ours.pid} ({ours.alias})"
        return Owner("ours", ("ours", ours.host, str(ours.pid), ours.alias), label, ours, process, reporting,
                     ours.alias in options.pooled_aliases)
    if row.application_name.startswith(PROBE_PREFIX):
        return Owner("probe", ("probe", row.application_name), row.application_name)
    name = row.application_name or "(no application_name)"
    return Owner("other", ("other", row.application_name, row.user, row.address),
                 f"{name} {row.user}@{row.address or 'local'}")


def find_process(fleet: Fleet, ours: Attribution) -> FleetProcess | None:
    return next((p for p in fleet.live if p.pid == ours.pid and host_matches(ours.host, p.host)), None)


def gone(fleet: Fleet, ours: Attribution) -> bool:
    for key in fleet.gone:
        host, _, pid = key.rpartition(":")
        if pid == str(ours.pid) and host_matches(ours.host, host):
            return True
    return False


def leak_reason(row: Backend, owner: Owner, fleet: Fleet, options: Options, *, now: float) -> LeakReason | None:
    """Why this backend of ours is a leak, or None (young, accounted for, or not ours to judge)."""
    ours = owner.attribution
    if ours is None or owner.via_pooler or not fleet.known or row.backend_seconds < options.leak_grace:
        return None
    if owner.reporting is False:
        return "stopped_reporting"
    process = owner.process
    if process is None:
        return None  # a process that never reported (a command, a worker): not ours to judge
    pool = process.pools.get(ours.alias)
    started = now - row.backend_seconds
    if pool is None or started > process.taken_at - CLOCK_SLACK:
        return None  # not pooled there, or opened after the snapshot: its pool may just be adding it
    return None if row.pid in pool.backend_pids else "unknown_to_pool"


def session(row: Backend, owner: Owner, seconds: float, fleet_holds: Mapping[int, tuple[FleetProcess, Hold]],
            options: Options) -> Session:
    """A :class:`Session` of ``row``, with the request and view when the pool's long-hold tracking knows it."""
    found = fleet_holds.get(row.pid) if owner.kind == "ours" and owner.process is not None else None
    hold = found[1] if found is not None and found[0] is owner.process else None
    alias = owner.attribution.alias if owner.attribution is not None else ""
    return Session(pid=row.pid, owner=owner.label, kind=owner.kind, state=row.state or "", seconds=round(seconds, 3),
                   user=row.user, application_name=row.application_name, alias=alias,
                   transaction_seconds=None if row.transaction_seconds is None else round(row.transaction_seconds, 3),
                   wait_event=f"{row.wait_event_type}:{row.wait_event}" if row.wait_event_type else None,
                   query=row.query if options.query_text else None,
                   request=hold.request if hold is not None else None, view=hold.view if hold is not None else None)


def summarise(*, name: str, server: str, alias: str, role: str, aliases: Sequence[str], rows: Iterable[Backend],
              limits: Limits, fleet: Fleet, options: Options, now: float, suspects: set[Suspect],
              duration_ms: float = 0.0) -> tuple[ServerCensus, set[Suspect]]:
    """The census of one sample, and this sample's leak suspects.

    A backend is reported as leaked only when it was a suspect in the previous sample too
    (``suspects``): a connection in transit between pool and caller at one instant is not a leak.
    """
    rows = list(rows)
    holds = fleet.holds()
    owners: dict[tuple[str, ...], OwnerCount] = {}
    by_kind = dict.fromkeys(OWNER_KINDS, 0)
    states = StateCounts()
    idle_tx: list[Session] = []
    active: list[Session] = []
    blocked: list[tuple[Backend, Owner]] = []
    found_suspects: set[Suspect] = set()
    leaks: list[Leak] = []
    labels: dict[int, str] = {}
    for row in rows:
        owner = owner_of(row, fleet, options)
        labels[row.pid] = owner.label
        by_kind[owner.kind] += 1
        count = owners.get(owner.key) or _owner_count(owner, row)
        owners[owner.key] = replace(count, states=count.states.add(row.state))
        if not row.is_client:
            continue
        states = states.add(row.state)
        if row.state in IDLE_IN_TRANSACTION:
            idle_tx.append(session(row, owner, row.state_seconds or 0.0, holds, options))
        elif row.state == "active" and row.query_seconds is not None:
            active.append(session(row, owner, row.query_seconds, holds, options))
        if row.blocked_by:
            blocked.append((row, owner))
        reason = leak_reason(row, owner, fleet, options, now=now)
        if reason is not None:
            suspect = (row.pid, round(row.backend_start, 3), reason)
            found_suspects.add(suspect)
            if suspect in suspects and owner.attribution is not None:
                leaks.append(Leak(reason=reason, pid=row.pid, host=owner.attribution.host,
                                  process_pid=owner.attribution.pid, alias=owner.attribution.alias,
                                  state=row.state or "", age_seconds=round(row.backend_seconds, 3),
                                  state_seconds=round(row.state_seconds or 0.0, 3)))
    idle_tx.sort(key=lambda s: -s.seconds)
    active.sort(key=lambda s: -s.seconds)
    waiting = sorted(blocked, key=lambda item: -(item[0].query_seconds or 0.0))
    census = ServerCensus(
        name=name, server=server, alias=alias, role=role, taken_at=now, aliases=tuple(aliases),
        duration_ms=round(duration_ms, 3), max_connections=limits.max_connections,
        superuser_reserved=limits.superuser_reserved, reserved=limits.reserved,
        idle_in_transaction_timeout_ms=limits.idle_in_transaction_timeout_ms, states=states, by_kind=by_kind,
        owners=tuple(sorted(owners.values(), key=lambda o: (-o.total, o.label)))[: options.top_owners],
        owners_total=len(owners), longest_query=active[0] if active else None,
        longest_idle_in_transaction=idle_tx[0] if idle_tx else None, idle_in_transaction=tuple(idle_tx[:SESSIONS_MAX]),
        blocked=tuple(BlockedSession(session(row, owner, row.query_seconds or 0.0, holds, options), row.blocked_by,
                                     tuple(labels.get(pid, f"pid {pid}") for pid in row.blocked_by))
                      for row, owner in waiting[:BLOCKED_MAX]),
        blocked_total=len(blocked), leaks=tuple(sorted(leaks, key=lambda x: -x.age_seconds)[:LEAKS_MAX]),
        leaks_total=len(leaks), leaks_checked=fleet.known, query_text=options.query_text,
    )
    return census, found_suspects


def _owner_count(owner: Owner, row: Backend) -> OwnerCount:
    ours = owner.attribution
    return OwnerCount(kind=owner.kind, label=owner.label, host=ours.host if ours else "",
                      pid=ours.pid if ours else None, alias=ours.alias if ours else "",
                      application_name=row.application_name if owner.kind != "background" else "",
                      user=row.user, address=row.address, reporting=owner.reporting, via_pooler=owner.via_pooler)
