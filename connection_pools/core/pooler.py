"""PgBouncer as typed data: the rows of its admin console, and the report a PgBouncer source keeps.

The rows (:class:`PgBouncerPool`, :class:`PgBouncerStats`, ...) are what
:func:`connection_pools.sources.pgbouncer_admin.read_admin` parses from ``SHOW POOLS``,
``SHOW STATS``, ``SHOW SERVERS``, ``SHOW CLIENTS``, ``SHOW CONFIG``, ``SHOW DATABASES`` and
``SHOW LISTS``, with PgBouncer's own names. A :class:`PgBouncerReport` is one sample of one
PgBouncer as the cluster store keeps it: its pools keyed by database and user, their
statistics, the settings we reason about, paused databases, client and server counts and
the clients that logged in moments ago. Like the server census it is a report: the freshest
one wins, nothing is summed across processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from . import wire

_D = TypeVar("_D")




@dataclass(frozen=True)
class PgBouncerPool:
    """One row of ``SHOW POOLS``: a pool per (database, user), with PgBouncer's names.

    ``maxwait`` is in seconds and includes the microsecond part (``maxwait_us``).
    The cancel columns are ``None`` on versions that lack them (before 1.18).
    """

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    sv_tested: int
    sv_login: int
    maxwait: float
    pool_mode: str | None
    cl_active_cancel_req: int | None = None
    cl_waiting_cancel_req: int | None = None
    sv_active_cancel: int | None = None
    sv_being_canceled: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(database, user)``, how PgBouncer tells its pools apart."""
        return (self.database, self.user)

    @property
    def sv_total(self) -> int:
        """Server connections this pool holds in any state."""
        return self.sv_active + self.sv_idle + self.sv_used + self.sv_tested + self.sv_login


@dataclass(frozen=True)
class PgBouncerStats:
    """One row of ``SHOW STATS`` (per database). Times are in seconds (PgBouncer reports
    microseconds); ``avg_*`` are PgBouncer's averages over its last ``stats_period``
    (counts per second). Columns of newer versions are ``None`` when missing."""

    database: str
    total_xact_count: int
    total_query_count: int
    total_received: int
    total_sent: int
    total_xact_time: float
    total_query_time: float
    total_wait_time: float
    avg_xact_count: float
    avg_query_count: float
    avg_recv: float
    avg_sent: float
    avg_xact_time: float
    avg_query_time: float
    avg_wait_time: float
    total_server_assignment_count: int | None = None
    avg_server_assignment_count: float | None = None
    total_client_parse_count: int | None = None
    total_server_parse_count: int | None = None
    total_bind_count: int | None = None


@dataclass(frozen=True)
class PgBouncerConnection:
    """One row of ``SHOW SERVERS`` (``type`` ``S``) or ``SHOW CLIENTS`` (``type`` ``C``).

    ``wait`` is how long a waiting client has waited, in seconds (with ``wait_us``);
    ``remote_pid`` of a server is its PostgreSQL backend pid.
    """

    type: str
    user: str
    database: str
    state: str
    addr: str | None
    port: int | None
    wait: float
    remote_pid: int | None
    application_name: str | None = None
    prepared_statements: int | None = None
    #: ``connect_time`` / ``request_time`` as Unix times (PgBouncer's clock, whole seconds), None when absent.
    connect_time: float | None = None
    request_time: float | None = None


@dataclass(frozen=True)
class PgBouncerDatabase:
    """One row of ``SHOW DATABASES``: a configured (or auto-created) database entry."""

    name: str
    host: str | None
    port: int | None
    database: str
    pool_size: int
    min_pool_size: int
    reserve_pool_size: int
    pool_mode: str | None
    max_connections: int
    current_connections: int
    paused: bool
    disabled: bool


def _no_settings() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class PgBouncerConfig:
    """The settings of ``SHOW CONFIG`` we reason about, plus all of them as text in
    ``settings``. A setting this version does not have is ``None``."""

    max_client_conn: int | None = None
    default_pool_size: int | None = None
    min_pool_size: int | None = None
    reserve_pool_size: int | None = None
    max_db_connections: int | None = None
    max_user_connections: int | None = None
    pool_mode: str | None = None
    max_prepared_statements: int | None = None
    query_wait_timeout: int | None = None
    server_lifetime: int | None = None
    server_idle_timeout: int | None = None
    settings: Mapping[str, str] = field(default_factory=_no_settings)


def _no_lists() -> Mapping[str, int]:
    return {}


@dataclass(frozen=True)
class PgBouncerSnapshot:
    """Everything one read of the admin console returned."""

    version: str | None
    pools: tuple[PgBouncerPool, ...]
    stats: tuple[PgBouncerStats, ...]
    servers: tuple[PgBouncerConnection, ...]
    clients: tuple[PgBouncerConnection, ...]
    databases: tuple[PgBouncerDatabase, ...]
    config: PgBouncerConfig
    lists: Mapping[str, int] = field(default_factory=_no_lists)
    taken_at: float = 0.0  # time.time() when the read finished
    duration: float = 0.0  # seconds the read took, connection included

    def pool(self, database: str, user: str) -> PgBouncerPool | None:
        """The pool of ``(database, user)``, or None when PgBouncer has none (yet)."""
        return next((p for p in self.pools if p.key == (database, user)), None)

    def stats_for(self, database: str) -> PgBouncerStats | None:
        """The ``SHOW STATS`` row of ``database``, or None."""
        return next((s for s in self.stats if s.database == database), None)

    @property
    def server_states(self) -> dict[str, int]:
        """Server connections counted by state (``active``, ``idle``, ``used``, ...)."""
        return count_states(self.servers)

    @property
    def client_states(self) -> dict[str, int]:
        """Client connections counted by state (``active``, ``waiting``, ``idle``, ...)."""
        return count_states(self.clients)

    @property
    def paused_databases(self) -> tuple[str, ...]:
        """Names of the database entries that are paused (``PAUSE``) right now."""
        return tuple(d.name for d in self.databases if d.paused)


def count_states(connections: Iterable[PgBouncerConnection]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for conn in connections:
        counts[conn.state] = counts.get(conn.state, 0) + 1
    return counts


def _flat(cls: type[_D], data: Mapping[str, Any]) -> _D | None:
    """A flat dataclass of scalars from its wire form (None when a field is missing or of another kind)."""
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        if item.name in data:
            value = data[item.name]
            if value is not None and not isinstance(value, int | float | str | bool):
                return None
            values[item.name] = value
    try:
        return cls(**values)
    except TypeError:
        return None


def _decoded(cls: type[_D], data: Any) -> tuple[_D, ...]:
    return tuple(row for row in (_flat(cls, item) for item in wire.items(data)) if row is not None)


#: Clients that connected less than this many seconds ago are "logging in now" (login storms).
LOGIN_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class PgBouncerReport:
    """One sample of one PgBouncer's admin console (see the module docstring)."""

    #: The source: ``pgbouncer_<n>``, the n-th URL of ``PGBOUNCER_ADMIN_URL``.
    name: str
    #: ``host:port`` of the console.
    server: str
    taken_at: float
    error: str | None = None
    error_kind: str | None = None
    version: str | None = None
    duration_ms: float = 0.0
    pools: tuple[PgBouncerPool, ...] = ()
    stats: tuple[PgBouncerStats, ...] = ()
    databases: tuple[PgBouncerDatabase, ...] = ()
    config: PgBouncerConfig = field(default_factory=PgBouncerConfig)
    clients: int = 0
    client_states: Mapping[str, int] = field(default_factory=dict)
    servers: int = 0
    server_states: Mapping[str, int] = field(default_factory=dict)
    #: Clients connected less than :data:`LOGIN_WINDOW_SECONDS` ago (by PgBouncer's clock).
    recent_logins: int = 0
    #: PgBouncer's server connections by PostgreSQL server (``addr:port`` -> backend pids, ``SHOW SERVERS``):
    #: the census names these backends as the pooler's.
    server_pids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    kind: ClassVar[str] = "pgbouncer"

    @property
    def key(self) -> str:
        return f"pgbouncer:{self.server}"

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def paused(self) -> tuple[str, ...]:
        """The database entries paused right now."""
        return tuple(d.name for d in self.databases if d.paused)

    def stats_for(self, database: str) -> PgBouncerStats | None:
        return next((s for s in self.stats if s.database == database), None)

    def to_wire(self) -> dict[str, object]:
        config = {key: value for key, value in asdict(self.config).items() if key != "settings"}
        return {
            "type": self.kind, "name": self.name, "server": self.server, "taken_at": self.taken_at,
            "error": self.error, "error_kind": self.error_kind, "version": self.version,
            "duration_ms": self.duration_ms, "pools": [asdict(p) for p in self.pools],
            "stats": [asdict(s) for s in self.stats], "databases": [asdict(d) for d in self.databases],
            "config": config, "clients": self.clients, "client_states": dict(self.client_states),
            "servers": self.servers, "server_states": dict(self.server_states), "recent_logins": self.recent_logins,
            "server_pids": {server: list(pids) for server, pids in self.server_pids.items()},
        }

    @classmethod
    def from_wire(cls, data: Any) -> PgBouncerReport | None:
        values = wire.mapping(data)
        if values.get("type") != cls.kind or not wire.text(values.get("server")):
            return None
        return cls(
            name=wire.text(values.get("name")), server=wire.text(values.get("server")),
            taken_at=wire.seconds(values.get("taken_at")), error=wire.optional_text(values.get("error")),
            error_kind=wire.optional_text(values.get("error_kind")), version=wire.optional_text(values.get("version")),
            duration_ms=wire.seconds(values.get("duration_ms")), pools=_decoded(PgBouncerPool, values.get("pools")),
            stats=_decoded(PgBouncerStats, values.get("stats")),
            databases=_decoded(PgBouncerDatabase, values.get("databases")),
            config=_flat(PgBouncerConfig, wire.mapping(values.get("config"))) or PgBouncerConfig(),
            clients=wire.count(values.get("clients")), client_states=_counts(values.get("client_states")),
            servers=wire.count(values.get("servers")), server_states=_counts(values.get("server_states")),
            recent_logins=wire.count(values.get("recent_logins")),
            server_pids={str(server): tuple(p for p in (wire.whole(x) for x in pids) if p is not None)
                         for server, pids in wire.mapping(values.get("server_pids")).items() if isinstance(pids, list)},
        )


def _counts(data: Any) -> dict[str, int]:
    return {str(key): wire.count(value) for key, value in wire.mapping(data).items()}


def server_pids(servers: Iterable[PgBouncerConnection]) -> dict[str, tuple[int, ...]]:
    """``addr:port`` of each PostgreSQL server -> the backend pids of PgBouncer's connections to it."""
    found: dict[str, list[int]] = {}
    for server in servers:
        if server.remote_pid:
            found.setdefault(f"{server.addr}:{server.port}", []).append(server.remote_pid)
    return {key: tuple(sorted(pids)) for key, pids in found.items()}


def recent_logins(clients: Iterable[PgBouncerConnection], *, now: float | None,
                  window: float = LOGIN_WINDOW_SECONDS) -> int:
    """Clients that connected within ``window`` seconds before ``now`` (PgBouncer's clock; None: unknown)."""
    if now is None:
        return 0
    return sum(1 for c in clients if c.connect_time is not None and now - c.connect_time <= window)
