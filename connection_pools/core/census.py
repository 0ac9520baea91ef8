"""The server census: every connection on one PostgreSQL server, as typed data with a wire form.

A :class:`ServerCensus` is what one sample of ``pg_stat_activity`` and ``pg_settings`` found on
one server: connections by state and by owner (our processes by host, pid and alias; other
clients by application_name, user and address; replication and background workers), the
server's limits and headroom, the longest query and idle-in-transaction session, backends
waiting on locks and who blocks them, and leaked connections. It is a *report*, not a pool
snapshot: every process would see the same server, so reports are never summed across
processes -- the freshest one wins (:mod:`connection_pools.cluster.reports`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypeAlias

from . import wire
from .responses import BlockedJSON, LeakJSON, OwnerJSON, OwnerKindName, SessionJSON, StateCountsJSON

OwnerKind: TypeAlias = OwnerKindName
LeakReason: TypeAlias = Literal["unknown_to_pool", "stopped_reporting"]
OWNER_KINDS: tuple[str, ...] = ("ours", "pooler", "probe", "other", "replication", "background")
#: ``pg_stat_activity.state`` -> our field name.
STATE_FIELDS: Mapping[str, str] = {
    "active": "active", "idle": "idle", "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
}


@dataclass(frozen=True, slots=True)
class StateCounts:
    """Client connections by ``pg_stat_activity.state`` (``other``: fastpath, disabled, not reported)."""

    active: int = 0
    idle: int = 0
    idle_in_transaction: int = 0
    idle_in_transaction_aborted: int = 0
    other: int = 0

    NAMES: ClassVar[tuple[str, ...]] = ()

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in StateCounts.NAMES)

    def add(self, state: str | None) -> StateCounts:
        """These counts with one more connection in ``state``."""
        name = STATE_FIELDS.get(state or "", "other")
        return _replace_count(self, name, getattr(self, name) + 1)

    def to_wire(self) -> StateCountsJSON:
        return StateCountsJSON(active=self.active, idle=self.idle, idle_in_transaction=self.idle_in_transaction,
                               idle_in_transaction_aborted=self.idle_in_transaction_aborted, other=self.other)

    @classmethod
    def from_wire(cls, data: Any) -> StateCounts:
        values = wire.mapping(data)
        return cls(*(wire.count(values.get(name)) for name in cls.NAMES))


StateCounts.NAMES = tuple(f.name for f in fields(StateCounts))


def _replace_count(counts: StateCounts, name: str, value: int) -> StateCounts:
    return replace(counts, **{name: value})


@dataclass(frozen=True, slots=True)
class OwnerCount:
    """The connections of one owner on the server."""

    kind: OwnerKind
    #: How surfaces name it: ``web-1 pid 4242 (default)``, ``psql pools@127.0.0.1``, ``walsender``.
    label: str
    states: StateCounts = field(default_factory=StateCounts)
    host: str = ""
    pid: int | None = None
    alias: str = ""
    application_name: str = ""
    user: str = ""
    address: str = ""
    #: Ours: True while the process publishes statistics, False when it stopped, None when it never did.
    reporting: bool | None = None
    #: Ours: its connections go through a pooler (PgBouncer), so they are the pooler's server connections.
    via_pooler: bool = False

    @property
    def total(self) -> int:
        return self.states.total

    def to_wire(self) -> OwnerJSON:
        return OwnerJSON(kind=self.kind, label=self.label, states=self.states.to_wire(), total=self.total,
                         host=self.host, pid=self.pid, alias=self.alias, application_name=self.application_name,
                         user=self.user, address=self.address, reporting=self.reporting, via_pooler=self.via_pooler)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> OwnerCount:
        kind = data.get("kind")
        return cls(kind=kind if kind in OWNER_KINDS else "other", label=wire.text(data.get("label")),
                   states=StateCounts.from_wire(data.get("states")), host=wire.text(data.get("host")),
                   pid=wire.whole(data.get("pid")), alias=wire.text(data.get("alias")),
                   application_name=wire.text(data.get("application_name")), user=wire.text(data.get("user")),
                   address=wire.text(data.get("address")), reporting=wire.flag(data.get("reporting")),
                   via_pooler=data.get("via_pooler") is True)


@dataclass(frozen=True, slots=True)
class Session:
    """One backend worth naming (the longest query, an idle-in-transaction session, a lock waiter)."""

    pid: int
    owner: str
    kind: OwnerKind
    state: str
    #: Seconds in this state (a query: since it started; idle in transaction: since the last statement).
    seconds: float
    user: str = ""
    application_name: str = ""
    alias: str = ""
    #: The transaction's age in seconds (None outside a transaction).
    transaction_seconds: float | None = None
    wait_event: str | None = None
    #: Only with ``CENSUS["QUERY_TEXT_LENGTH"]`` > 0, cut to that many characters.
    query: str | None = None
    #: The request holding it, when the pool's long-hold tracking knows it (``GET /path (view ...)``).
    request: str | None = None
    view: str | None = None

    def to_wire(self) -> SessionJSON:
        return SessionJSON(pid=self.pid, owner=self.owner, kind=self.kind, state=self.state, seconds=self.seconds,
                           user=self.user, application_name=self.application_name, alias=self.alias,
                           transaction_seconds=self.transaction_seconds, wait_event=self.wait_event,
                           query=self.query, request=self.request, view=self.view)

    @classmethod
    def from_wire(cls, data: Any) -> Session | None:
        values = wire.mapping(data)
        pid = wire.whole(values.get("pid"))
        if pid is None:
            return None
        kind = values.get("kind")
        return cls(pid=pid, owner=wire.text(values.get("owner")), kind=kind if kind in OWNER_KINDS else "other",
                   state=wire.text(values.get("state")), seconds=wire.seconds(values.get("seconds")),
                   user=wire.text(values.get("user")), application_name=wire.text(values.get("application_name")),
                   alias=wire.text(values.get("alias")),
                   transaction_seconds=wire.number(values.get("transaction_seconds")),
                   wait_event=wire.optional_text(values.get("wait_event")),
                   query=wire.optional_text(values.get("query")), request=wire.optional_text(values.get("request")),
                   view=wire.optional_text(values.get("view")))


@dataclass(frozen=True, slots=True)
class BlockedSession:
    """A backend waiting on a lock, and the backends that block it (``pg_blocking_pids``)."""

    session: Session
    blocked_by: tuple[int, ...]
    blockers: tuple[str, ...] = ()

    def to_wire(self) -> BlockedJSON:
        return BlockedJSON(session=self.session.to_wire(), blocked_by=list(self.blocked_by),
                           blockers=list(self.blockers))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> BlockedSession | None:
        session = Session.from_wire(data.get("session"))
        if session is None:
            return None
        pids = data.get("blocked_by")
        names = data.get("blockers")
        return cls(session, tuple(p for p in (wire.whole(x) for x in pids or ()) if p is not None)
                   if isinstance(pids, list) else (),
                   tuple(wire.text(x) for x in names) if isinstance(names, list) else ())


@dataclass(frozen=True, slots=True)
class Leak:
    """A server connection of ours that nobody accounts for.

    ``unknown_to_pool``: its process reports, but its pool does not hold that backend;
    ``stopped_reporting``: its process published statistics before and no longer does.
    """

    reason: LeakReason
    pid: int
    host: str
    process_pid: int
    alias: str
    state: str
    age_seconds: float
    state_seconds: float = 0.0

    def to_wire(self) -> LeakJSON:
        return LeakJSON(reason=self.reason, pid=self.pid, host=self.host, process_pid=self.process_pid,
                        alias=self.alias, state=self.state, age_seconds=self.age_seconds,
                        state_seconds=self.state_seconds)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Leak | None:
        reason = data.get("reason")
        pid = wire.whole(data.get("pid"))
        if reason not in ("unknown_to_pool", "stopped_reporting") or pid is None:
            return None
        return cls(reason=reason, pid=pid, host=wire.text(data.get("host")),
                   process_pid=wire.count(data.get("process_pid")), alias=wire.text(data.get("alias")),
                   state=wire.text(data.get("state")), age_seconds=wire.seconds(data.get("age_seconds")),
                   state_seconds=wire.seconds(data.get("state_seconds")))


@dataclass(frozen=True, slots=True)
class ServerCensus:
    """One sample of one server's connections (see the module docstring)."""

    #: The census source: ``server_<alias>`` of the first alias on the server.
    name: str
    server: str
    alias: str
    role: str
    taken_at: float
    aliases: tuple[str, ...] = ()
    duration_ms: float = 0.0
    #: Why the sample failed (one sentence), None when it succeeded.
    error: str | None = None
    max_connections: int | None = None
    superuser_reserved: int | None = None
    reserved: int | None = None
    #: ``idle_in_transaction_session_timeout`` in milliseconds (0: never).
    idle_in_transaction_timeout_ms: int | None = None
    #: Client backends (what ``max_connections`` limits), by state.
    states: StateCounts = field(default_factory=StateCounts)
    by_kind: Mapping[str, int] = field(default_factory=dict)
    #: The largest owners, most connections first (``CENSUS["TOP_OWNERS"]``); ``owners_total`` counts all.
    owners: tuple[OwnerCount, ...] = ()
    owners_total: int = 0
    longest_query: Session | None = None
    longest_idle_in_transaction: Session | None = None
    #: Idle-in-transaction sessions, longest first (at most 10).
    idle_in_transaction: tuple[Session, ...] = ()
    blocked: tuple[BlockedSession, ...] = ()
    blocked_total: int = 0
    leaks: tuple[Leak, ...] = ()
    leaks_total: int = 0
    #: False when the leak check could not run (the cluster store was unreachable).
    leaks_checked: bool = True
    query_text: bool = False

    kind: ClassVar[str] = "census"

    @property
    def key(self) -> str:
        """The report's identity in the cluster store."""
        return f"census:{self.server}"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def connections(self) -> int:
        """Client backends on the server now."""
        return self.states.total

    @property
    def available(self) -> int | None:
        """``max_connections`` minus the reserved connections (what non-superusers may open)."""
        if self.max_connections is None:
            return None
        return self.max_connections - (self.superuser_reserved or 0) - (self.reserved or 0)

    @property
    def headroom(self) -> int | None:
        """Connections that may still be opened before the server refuses them."""
        return None if self.available is None else self.available - self.connections

    def owners_of(self, kind: OwnerKind) -> tuple[OwnerCount, ...]:
        return tuple(owner for owner in self.owners if owner.kind == kind)

    def to_wire(self) -> dict[str, object]:
        return {
            "type": self.kind, "name": self.name, "server": self.server, "alias": self.alias, "role": self.role,
            "taken_at": self.taken_at, "aliases": list(self.aliases), "duration_ms": self.duration_ms,
            "error": self.error, "max_connections": self.max_connections,
            "superuser_reserved": self.superuser_reserved, "reserved": self.reserved,
            "idle_in_transaction_timeout_ms": self.idle_in_transaction_timeout_ms,
            "states": self.states.to_wire(), "by_kind": dict(self.by_kind),
            "owners": [o.to_wire() for o in self.owners], "owners_total": self.owners_total,
            "longest_query": self.longest_query.to_wire() if self.longest_query else None,
            "longest_idle_in_transaction": (self.longest_idle_in_transaction.to_wire()
                                            if self.longest_idle_in_transaction else None),
            "idle_in_transaction": [s.to_wire() for s in self.idle_in_transaction],
            "blocked": [b.to_wire() for b in self.blocked], "blocked_total": self.blocked_total,
            "leaks": [leak.to_wire() for leak in self.leaks], "leaks_total": self.leaks_total,
            "leaks_checked": self.leaks_checked, "query_text": self.query_text,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ServerCensus | None:
        values = wire.mapping(data)
        if values.get("type") != cls.kind or not wire.text(values.get("server")):
            return None
        aliases = values.get("aliases")
        by_kind = wire.mapping(values.get("by_kind"))
        return cls(
            name=wire.text(values.get("name")), server=wire.text(values.get("server")),
            alias=wire.text(values.get("alias")), role=wire.text(values.get("role")),
            taken_at=wire.seconds(values.get("taken_at")),
            aliases=tuple(wire.text(a) for a in aliases) if isinstance(aliases, list) else (),
            duration_ms=wire.seconds(values.get("duration_ms")), error=wire.optional_text(values.get("error")),
            max_connections=wire.whole(values.get("max_connections")),
            superuser_reserved=wire.whole(values.get("superuser_reserved")),
            reserved=wire.whole(values.get("reserved")),
            idle_in_transaction_timeout_ms=wire.whole(values.get("idle_in_transaction_timeout_ms")),
            states=StateCounts.from_wire(values.get("states")),
            by_kind={str(k): wire.count(v) for k, v in by_kind.items()},
            owners=tuple(OwnerCount.from_wire(o) for o in wire.items(values.get("owners"))),
            owners_total=wire.count(values.get("owners_total")),
            longest_query=Session.from_wire(values.get("longest_query")),
            longest_idle_in_transaction=Session.from_wire(values.get("longest_idle_in_transaction")),
            idle_in_transaction=tuple(s for s in (Session.from_wire(i) for i in
                                                  wire.items(values.get("idle_in_transaction"))) if s is not None),
            blocked=tuple(b for b in (BlockedSession.from_wire(i) for i in wire.items(values.get("blocked")))
                          if b is not None),
            blocked_total=wire.count(values.get("blocked_total")),
            leaks=tuple(x for x in (Leak.from_wire(i) for i in wire.items(values.get("leaks"))) if x is not None),
            leaks_total=wire.count(values.get("leaks_total")),
            leaks_checked=values.get("leaks_checked") is not False, query_text=values.get("query_text") is True,
        )
