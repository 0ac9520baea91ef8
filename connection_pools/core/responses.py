"""The JSON shapes of the responses, as TypedDicts: the presenter makes them, and the API's
serializers (its OpenAPI schema) are derived from their annotations (:mod:`connection_pools.api.derive`),
so the two cannot drift apart.

``Annotated[T, Doc("...")]`` gives a key its description in the schema; ``NotRequired`` keys are
left out by some pools or modes. A pool's own entry in ``GET stats`` (``database_pools.<alias>``...)
is described by its kind's descriptor instead (:mod:`connection_pools.core.kinds`): a kind the
app does not know in advance brings its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, NotRequired, TypeAlias, TypedDict

#: A setting or recommended value as JSON shows it.
Scalar: TypeAlias = int | float | bool | str | None

#: One pool's entry in ``GET stats``: the keys its kind's descriptor lists, with JSON values.
Entry: TypeAlias = dict[str, object]
#: Entries by group (``database_pools``...) and key (``default``...).
Groups: TypeAlias = dict[str, dict[str, Entry]]


@dataclass(frozen=True, slots=True)
class Doc:
    """The description of a key in the schema: ``Annotated[int, Doc("Sum over processes.")]``."""

    text: str


Seconds = Annotated[float, Doc("seconds")]


class DurationSummaryJSON(TypedDict):
    """count, mean, max and p50/p95/p99 of a histogram of seconds."""

    count: int
    mean: Seconds
    max: Seconds
    p50: Seconds
    p95: Seconds
    p99: Seconds


class PgBouncerPoolJSON(TypedDict):
    """One PgBouncer pool (``SHOW POOLS``, PgBouncer's names), summed over the PgBouncers that have it."""

    database: str
    user: str
    cl_active: Annotated[int, Doc("Clients linked to a server connection.")]
    cl_waiting: Annotated[int, Doc("Clients waiting for a server connection.")]
    sv_active: int
    sv_idle: int
    sv_used: int
    sv_tested: int
    sv_login: int
    maxwait: Annotated[float, Doc("Seconds the oldest waiting client has waited (the worst PgBouncer).")]
    pool_mode: str | None
    avg_wait_time: Annotated[float, Doc("Seconds, PgBouncer's average over its stats_period (SHOW STATS, per "
                                        "database).")]
    total_xact_count: Annotated[int, Doc("SHOW STATS, per database.")]
    total_query_count: Annotated[int, Doc("SHOW STATS, per database.")]
    total_wait_time: Annotated[float, Doc("Seconds, SHOW STATS, per database.")]
    avg_xact_count: Annotated[float, Doc("Transactions per second.")]
    avg_query_count: Annotated[float, Doc("Queries per second.")]
    pgbouncers: Annotated[list[str], Doc("`pgbouncer_<n>` with this pool.")]
    age_seconds: Annotated[float, Doc("Age of the oldest report used.")]


# --- GET stats ------------------------------------------------------------------------------------------
class RecommendationJSON(TypedDict):
    pool: str
    rule: str
    issue: str
    suggestion: str
    severity: Literal["high", "medium", "low"]
    current_value: Scalar
    suggested_value: Scalar
    setting: str


class ProcessJSON(TypedDict):
    host: str
    pid: int
    age_seconds: float
    epoch: Annotated[int, Doc("The reset epoch the process has honoured.")]


class ProcessesJSON(TypedDict):
    count: int
    list: Annotated[list[ProcessJSON], Doc("At most 64 (all of them with `per_process=1`).")]


class StatsJSON(TypedDict):
    """``GET stats`` besides the pool groups (``database_pools``, ``redis_pools``, ``pgbouncer_pools``...), which
    the registered kinds' descriptors describe."""

    recommendations: list[RecommendationJSON]
    processes: ProcessesJSON
    source: Literal["cluster", "local"]
    redis_available: bool
    generated_at: float
    per_process: NotRequired[Annotated[dict[str, Groups], Doc("`host:pid` -> that process's pool groups "
                                                             "(`per_process=1`).")]]


# --- GET health -----------------------------------------------------------------------------------------
class PoolCheckJSON(TypedDict):
    """One pool's health check; which keys it has depends on its kind (its descriptor's ``check_keys``)."""

    kind: str
    alias: NotRequired[Annotated[str | None, Doc("Database pools.")]]
    healthy: bool
    latency_ms: float | None
    connect_ms: NotRequired[Annotated[float | None, Doc("Database pools.")]]
    error: str | None
    role: NotRequired[Annotated[str, Doc("Database pools.")]]
    replica_lag_seconds: NotRequired[float | None]
    in_rotation: NotRequired[bool | None]
    paused: NotRequired[Annotated[list[str], Doc("PgBouncers: the paused databases.")]]


class BudgetJSON(TypedDict):
    server: Annotated[str, Doc("`host:port`")]
    pool: str
    aliases: list[str]
    processes: int
    pairs: Annotated[int, Doc("(process, alias) pairs connecting to the server.")]
    configured_total: Annotated[int, Doc("What they may open: sum of pool_size + max_overflow.")]
    pool_size: int
    max_overflow: int
    max_connections: int | None
    reserved: int | None
    available: int | None
    ok: bool | None


class ServerBudgetJSON(TypedDict):
    server: str | None
    max_connections: int | None
    reserved: int | None
    available: int | None
    configured_total: int
    processes: int
    ok: bool | None
    servers: list[BudgetJSON]


class HealthJSON(TypedDict):
    status: Literal["healthy", "degraded", "unhealthy"]
    checked_at: float
    age_seconds: Annotated[float, Doc("How old the result is (0 with `live=1`).")]
    pools: dict[str, PoolCheckJSON]
    server_budget: ServerBudgetJSON


# --- GET/POST optimize, POST reset-stats, errors --------------------------------------------------------
class SuggestedChangeJSON(TypedDict):
    pool: str
    alias: str
    setting: str
    old: int
    new: int
    reasons: list[str]


#: One setting one process changed (the tuner's ``Performed``, as a dict: the schema is derived from it).
PerformedJSON: TypeAlias = dict[str, str | int]


class OptimizeJSON(TypedDict):
    performed: list[PerformedJSON]
    suggested: list[SuggestedChangeJSON]
    recommendations: list[RecommendationJSON]
    source: str


class ResetResultJSON(TypedDict):
    reset: Annotated[str, Doc("The pool reset, or `all`.")]
    scope: Annotated[str, Doc("`cluster` (every process) or `local` (Redis unavailable).")]
    epoch: int | None
    reset_at: float


class ErrorJSON(TypedDict):
    detail: str


# --- GET history ----------------------------------------------------------------------------------------
#: One sample of one pool or server: ``t`` (Unix time) and the figures of the history's ``HistoryPoint`` /
#: ``ServerPoint`` (the schema is derived from them).
PointJSON: TypeAlias = dict[str, float | int | None]


class HistoryJSON(TypedDict):
    """Points per pool name, oldest first."""

    interval: Annotated[float, Doc("Seconds between two samples.")]
    retention_seconds: Annotated[float, Doc("Seconds of history kept.")]
    series: dict[str, list[PointJSON]]


# --- GET server: the census of each server, each PgBouncer ------------------------------------------------
OwnerKindName = Literal["ours", "pooler", "probe", "other", "replication", "background"]


class StateCountsJSON(TypedDict):
    active: int
    idle: int
    idle_in_transaction: int
    idle_in_transaction_aborted: int
    other: Annotated[int, Doc("fastpath function call, disabled, or not visible to the census role.")]


class OwnerKindsJSON(TypedDict):
    ours: int
    pooler: Annotated[int, Doc("Server connections a PgBouncer holds (its SHOW SERVERS).")]
    probe: int
    other: int
    replication: int
    background: int


class OwnerJSON(TypedDict):
    kind: OwnerKindName
    label: str
    states: StateCountsJSON
    total: int
    host: str
    pid: Annotated[int | None, Doc("Ours: the process id.")]
    alias: str
    application_name: str
    user: str
    address: str
    reporting: Annotated[bool | None, Doc("Ours: publishing statistics (null: never did).")]
    via_pooler: bool


class SessionJSON(TypedDict):
    pid: int
    owner: str
    kind: OwnerKindName
    state: str
    seconds: Annotated[float, Doc("In this state (a query: since it started).")]
    user: str
    application_name: str
    alias: str
    transaction_seconds: float | None
    wait_event: str | None
    query: Annotated[str | None, Doc("Null unless CENSUS['QUERY_TEXT_LENGTH'] > 0; cut.")]
    request: Annotated[str | None, Doc("The request holding it, when the pool knows it.")]
    view: str | None


class BlockedJSON(TypedDict):
    session: SessionJSON
    blocked_by: list[int]
    blockers: list[str]


class LeakJSON(TypedDict):
    reason: Literal["unknown_to_pool", "stopped_reporting"]
    pid: Annotated[int, Doc("The server backend.")]
    host: str
    process_pid: int
    alias: str
    state: str
    age_seconds: float
    state_seconds: float


class CensusJSON(TypedDict):
    name: Annotated[str, Doc("`server_<alias>`")]
    server: Annotated[str, Doc("`host:port`")]
    alias: str
    role: str
    aliases: list[str]
    ok: bool
    error: str | None
    taken_at: float
    age_seconds: float
    stale: Annotated[bool, Doc("Older than three census intervals.")]
    duration_ms: float
    max_connections: int | None
    superuser_reserved: int | None
    reserved: int | None
    available: Annotated[int | None, Doc("max_connections - reserved.")]
    connections: Annotated[int, Doc("Client backends now.")]
    headroom: Annotated[int | None, Doc("available - connections.")]
    idle_in_transaction_timeout_ms: int | None
    states: StateCountsJSON
    by_kind: OwnerKindsJSON
    owners: list[OwnerJSON]
    owners_total: int
    longest_query: SessionJSON | None
    longest_idle_in_transaction: SessionJSON | None
    idle_in_transaction: list[SessionJSON]
    blocked: list[BlockedJSON]
    blocked_total: int
    leaks: list[LeakJSON]
    leaks_total: int
    leaks_checked: bool
    query_text: bool


class PgBouncerSettingsJSON(TypedDict):
    max_client_conn: int | None
    default_pool_size: int | None
    reserve_pool_size: int | None
    max_db_connections: int | None
    pool_mode: str | None


class PgBouncerJSON(TypedDict):
    name: Annotated[str, Doc("`pgbouncer_<n>`")]
    server: str
    reachable: bool
    error: str | None
    version: str | None
    taken_at: float
    age_seconds: float
    paused: list[str]
    clients: int
    client_states: dict[str, int]
    servers: int
    server_states: dict[str, int]
    recent_logins: Annotated[int, Doc("Clients connected in the last 10 s.")]
    config: PgBouncerSettingsJSON
    pools: dict[str, PgBouncerPoolJSON]


class ServerJSON(TypedDict):
    servers: dict[str, CensusJSON]
    pgbouncers: dict[str, PgBouncerJSON]
    recommendations: list[RecommendationJSON]
    history: Annotated[dict[str, list[PointJSON]], Doc("With `minutes` > 0.")]
    source: Literal["cluster", "local"]
    generated_at: float
