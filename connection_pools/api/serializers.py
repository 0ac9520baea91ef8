"""Serializers of the admin API: query/body parameters (validated, 400 on bad input) and
response shapes for the OpenAPI schema.

The response serializers describe exactly what :mod:`connection_pools.presenter` makes;
``tests/test_api_schema.py`` validates real responses against the generated schema (every
key present, none extra), so the two cannot drift apart silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

#: What these serializers read: JSON-shaped mappings (parameters, the presenter's output); never a model.
Shape = Mapping[str, object]


# --- parameters -------------------------------------------------------------------------------
class StatsQuerySerializer(serializers.Serializer[Shape]):
    """``GET stats?per_process=1``."""

    per_process = serializers.BooleanField(required=False, default=False,
                                           help_text="Add a per-process breakdown (`1`/`0`, `true`/`false`).")


class HealthQuerySerializer(serializers.Serializer[Shape]):
    """``GET health?live=1``."""

    live = serializers.BooleanField(required=False, default=False,
                                    help_text="Check every pool now (`1`/`0`, `true`/`false`).")


class ResetStatsSerializer(serializers.Serializer[Shape]):
    """``POST reset-stats`` body (or query): ``pool`` to reset one pool, absent for all."""

    pool = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=200,
                                 help_text="Pool name, e.g. `db_default` or `redis_cache`; absent: every pool.")


# --- responses --------------------------------------------------------------------------------
class DurationSummarySerializer(serializers.Serializer[Shape]):
    count = serializers.IntegerField()
    mean = serializers.FloatField(help_text="seconds")
    max = serializers.FloatField(help_text="seconds")
    p50 = serializers.FloatField(help_text="seconds")
    p95 = serializers.FloatField(help_text="seconds")
    p99 = serializers.FloatField(help_text="seconds")


class DatabasePoolConfigSerializer(serializers.Serializer[Shape]):
    pool_size = serializers.IntegerField(allow_null=True)
    max_overflow = serializers.IntegerField(allow_null=True)
    pool_timeout = serializers.FloatField(allow_null=True)
    pool_recycle = serializers.FloatField(allow_null=True)
    pool_pre_ping = serializers.BooleanField(allow_null=True)
    pool_use_lifo = serializers.BooleanField(allow_null=True)
    pool_pre_ping_window = serializers.FloatField(allow_null=True, help_text="seconds")
    release = serializers.ChoiceField(choices=["request", "transaction"], allow_null=True,
                                      help_text="When a checked-out connection goes back to its pool.")


class DatabasePoolSerializer(serializers.Serializer[Shape]):
    pool = serializers.CharField(help_text="`db_<alias>`")
    kind = serializers.ChoiceField(choices=["postgresql", "persistent"])
    role = serializers.ChoiceField(choices=["primary", "replica"])
    active_connections = serializers.IntegerField()
    peak_connections = serializers.IntegerField()
    process_peak = serializers.IntegerField(help_text="Largest peak of any one process.")
    connections_created = serializers.IntegerField()
    connections_closed = serializers.IntegerField()
    average_wait_time = serializers.FloatField(help_text="seconds")
    pool_size = serializers.IntegerField(help_text="Sum over processes.")
    overflow = serializers.IntegerField(help_text="Connections open beyond pool_size now.")
    max_overflow = serializers.IntegerField()
    max_size = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Connections open or being opened now.")
    available_connections = serializers.IntegerField()
    waiting = serializers.IntegerField()
    checkouts = serializers.IntegerField()
    connection_errors = serializers.IntegerField()
    timeouts = serializers.IntegerField()
    recycled = serializers.IntegerField()
    recycle_rate_per_minute = serializers.FloatField()
    pre_ping_failures = serializers.IntegerField()
    long_holds = serializers.IntegerField()
    fallbacks = serializers.IntegerField()
    wait_time = DurationSummarySerializer()
    hold_time = DurationSummarySerializer()
    query_time = DurationSummarySerializer(help_text="Per hold that ran statements: the seconds its "
                                                     "connection spent executing them (execute, executemany, commit, "
                                                     "rollback).")
    replica_lag_seconds = serializers.FloatField(allow_null=True)
    in_rotation = serializers.BooleanField(allow_null=True)
    processes = serializers.IntegerField()
    window_seconds = serializers.FloatField()
    config = serializers.DictField(help_text="PostgreSQL pools: the guide's settings (see DatabasePoolConfig); "
                                             "persistent connections: conn_max_age.")


class RedisPoolSerializer(serializers.Serializer[Shape]):
    pool = serializers.CharField(help_text="`redis_<name>`")
    kind = serializers.CharField()
    in_use_connections = serializers.IntegerField()
    available_connections = serializers.IntegerField()
    created_connections = serializers.IntegerField()
    closed_connections = serializers.IntegerField()
    max_connections = serializers.IntegerField(help_text="Sum over processes.")
    peak_in_use = serializers.IntegerField()
    process_peak = serializers.IntegerField(help_text="Largest peak of any one process.")
    waiting = serializers.IntegerField()
    checkouts = serializers.IntegerField()
    connection_errors = serializers.IntegerField()
    socket_timeouts = serializers.IntegerField()
    timeouts = serializers.IntegerField()
    wait_time = DurationSummarySerializer()
    processes = serializers.IntegerField()
    window_seconds = serializers.FloatField()
    config = serializers.DictField()


class RecommendationSerializer(serializers.Serializer[Shape]):
    pool = serializers.CharField()
    rule = serializers.CharField()
    issue = serializers.CharField()
    suggestion = serializers.CharField()
    severity = serializers.ChoiceField(choices=["high", "medium", "low"])
    current_value = serializers.JSONField(allow_null=True)
    suggested_value = serializers.JSONField(allow_null=True)
    setting = serializers.CharField(allow_blank=True)


class ProcessSerializer(serializers.Serializer[Shape]):
    host = serializers.CharField()
    pid = serializers.IntegerField()
    age_seconds = serializers.FloatField()
    epoch = serializers.IntegerField(help_text="The reset epoch the process has honoured.")


class ProcessesSerializer(serializers.Serializer[Shape]):
    count = serializers.IntegerField()
    list = ProcessSerializer(many=True, help_text="At most 64 (all of them with `per_process=1`).")


class PgBouncerPoolSerializer(serializers.Serializer[Any]):
    """One PgBouncer pool (``SHOW POOLS``, PgBouncer's names), summed over the PgBouncers that have it."""

    database = serializers.CharField()
    user = serializers.CharField()
    cl_active = serializers.IntegerField(help_text="Clients linked to a server connection.")
    cl_waiting = serializers.IntegerField(help_text="Clients waiting for a server connection.")
    sv_active = serializers.IntegerField()
    sv_idle = serializers.IntegerField()
    sv_used = serializers.IntegerField()
    sv_tested = serializers.IntegerField()
    sv_login = serializers.IntegerField()
    maxwait = serializers.FloatField(help_text="Seconds the oldest waiting client has waited (the worst PgBouncer).")
    pool_mode = serializers.CharField(allow_null=True)
    avg_wait_time = serializers.FloatField(help_text="Seconds, PgBouncer's average over its stats_period "
                                                     "(SHOW STATS, per database).")
    total_xact_count = serializers.IntegerField(help_text="SHOW STATS, per database.")
    total_query_count = serializers.IntegerField(help_text="SHOW STATS, per database.")
    total_wait_time = serializers.FloatField(help_text="Seconds, SHOW STATS, per database.")
    avg_xact_count = serializers.FloatField(help_text="Transactions per second.")
    avg_query_count = serializers.FloatField(help_text="Queries per second.")
    pgbouncers = serializers.ListField(child=serializers.CharField(), help_text="`pgbouncer_<n>` with this pool.")
    age_seconds = serializers.FloatField(help_text="Age of the oldest report used.")


class StatsSerializer(serializers.Serializer[Shape]):
    database_pools = serializers.DictField(child=DatabasePoolSerializer())
    redis_pools = serializers.DictField(child=RedisPoolSerializer())
    pgbouncer_pools = serializers.DictField(child=PgBouncerPoolSerializer(),
                                            help_text="By `<database>/<user>`; empty without PGBOUNCER_ADMIN_URL.")
    recommendations = RecommendationSerializer(many=True)
    processes = ProcessesSerializer()
    # A declared field may shadow a Field attribute: the metaclass moves fields off the class.
    source = serializers.ChoiceField(choices=["cluster", "local"])  # type: ignore[assignment]
    redis_available = serializers.BooleanField()
    generated_at = serializers.FloatField()
    per_process = serializers.DictField(required=False)


class PoolCheckSerializer(serializers.Serializer[Shape]):
    kind = serializers.CharField()
    alias = serializers.CharField(allow_null=True, required=False, help_text="Database pools.")
    healthy = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    connect_ms = serializers.FloatField(allow_null=True, required=False, help_text="Database pools.")
    error = serializers.CharField(allow_null=True)
    role = serializers.CharField(required=False, help_text="Database pools.")
    replica_lag_seconds = serializers.FloatField(allow_null=True, required=False)
    in_rotation = serializers.BooleanField(allow_null=True, required=False)
    paused = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="PgBouncers: the paused databases.")


class BudgetSerializer(serializers.Serializer[Shape]):
    server = serializers.CharField(help_text="`host:port`")
    pool = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    processes = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="(process, alias) pairs connecting to the server.")
    configured_total = serializers.IntegerField(help_text="What they may open: sum of pool_size + max_overflow.")
    pool_size = serializers.IntegerField()
    max_overflow = serializers.IntegerField()
    max_connections = serializers.IntegerField(allow_null=True)
    reserved = serializers.IntegerField(allow_null=True)
    available = serializers.IntegerField(allow_null=True)
    ok = serializers.BooleanField(allow_null=True)


class ServerBudgetSerializer(serializers.Serializer[Shape]):
    server = serializers.CharField(allow_null=True)
    max_connections = serializers.IntegerField(allow_null=True)
    reserved = serializers.IntegerField(allow_null=True)
    available = serializers.IntegerField(allow_null=True)
    configured_total = serializers.IntegerField()
    processes = serializers.IntegerField()
    ok = serializers.BooleanField(allow_null=True)
    servers = BudgetSerializer(many=True)


class HealthSerializer(serializers.Serializer[Shape]):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    checked_at = serializers.FloatField()
    age_seconds = serializers.FloatField(help_text="How old the result is (0 with `live=1`).")
    pools = serializers.DictField(child=PoolCheckSerializer())
    server_budget = ServerBudgetSerializer()


class SuggestedChangeSerializer(serializers.Serializer[Shape]):
    pool = serializers.CharField()
    alias = serializers.CharField()
    setting = serializers.CharField()
    old = serializers.IntegerField()
    new = serializers.IntegerField()
    reasons = serializers.ListField(child=serializers.CharField())


class PerformedChangeSerializer(serializers.Serializer[Shape]):
    pool = serializers.CharField()
    alias = serializers.CharField()
    setting = serializers.CharField()
    old = serializers.IntegerField()
    new = serializers.IntegerField()
    reason = serializers.CharField()


class OptimizeSerializer(serializers.Serializer[Shape]):
    performed = PerformedChangeSerializer(many=True)
    suggested = SuggestedChangeSerializer(many=True)
    recommendations = RecommendationSerializer(many=True)
    source = serializers.CharField()  # type: ignore[assignment] # a declared field, as above


class ResetResultSerializer(serializers.Serializer[Shape]):
    reset = serializers.CharField(help_text="The pool reset, or `all`.")
    scope = serializers.CharField(help_text="`cluster` (every process) or `local` (Redis unavailable).")
    epoch = serializers.IntegerField(allow_null=True)
    reset_at = serializers.FloatField()


class ErrorSerializer(serializers.Serializer[Shape]):
    detail = serializers.CharField()


# --- the server tier ------------------------------------------------------------------------------------
class StateCountsSerializer(serializers.Serializer[Any]):
    active = serializers.IntegerField()
    idle = serializers.IntegerField()
    idle_in_transaction = serializers.IntegerField()
    idle_in_transaction_aborted = serializers.IntegerField()
    other = serializers.IntegerField(help_text="fastpath function call, disabled, or not visible to the census role.")


class OwnerKindsSerializer(serializers.Serializer[Any]):
    ours = serializers.IntegerField()
    pooler = serializers.IntegerField(help_text="Server connections a PgBouncer holds (its SHOW SERVERS).")
    probe = serializers.IntegerField()
    other = serializers.IntegerField()
    replication = serializers.IntegerField()
    background = serializers.IntegerField()


OWNER_KINDS = ["ours", "pooler", "probe", "other", "replication", "background"]


class OwnerSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=OWNER_KINDS)
    label = serializers.CharField()  # type: ignore[assignment]  # a field: DRF takes it off the class
    states = StateCountsSerializer()
    total = serializers.IntegerField()
    host = serializers.CharField(allow_blank=True)
    pid = serializers.IntegerField(allow_null=True, help_text="Ours: the process id.")
    alias = serializers.CharField(allow_blank=True)
    application_name = serializers.CharField(allow_blank=True)
    user = serializers.CharField(allow_blank=True)
    address = serializers.CharField(allow_blank=True)
    reporting = serializers.BooleanField(allow_null=True, help_text="Ours: publishing statistics (null: never did).")
    via_pooler = serializers.BooleanField()


class SessionSerializer(serializers.Serializer[Any]):
    pid = serializers.IntegerField()
    owner = serializers.CharField()
    kind = serializers.ChoiceField(choices=OWNER_KINDS)
    state = serializers.CharField(allow_blank=True)
    seconds = serializers.FloatField(help_text="In this state (a query: since it started).")
    user = serializers.CharField(allow_blank=True)
    application_name = serializers.CharField(allow_blank=True)
    alias = serializers.CharField(allow_blank=True)
    transaction_seconds = serializers.FloatField(allow_null=True)
    wait_event = serializers.CharField(allow_null=True)
    query = serializers.CharField(allow_null=True, help_text="Null unless CENSUS['QUERY_TEXT_LENGTH'] > 0; cut.")
    request = serializers.CharField(allow_null=True, help_text="The request holding it, when the pool knows it.")
    view = serializers.CharField(allow_null=True)


class BlockedSerializer(serializers.Serializer[Any]):
    session = SessionSerializer()
    blocked_by = serializers.ListField(child=serializers.IntegerField())
    blockers = serializers.ListField(child=serializers.CharField())


class LeakSerializer(serializers.Serializer[Any]):
    reason = serializers.ChoiceField(choices=["unknown_to_pool", "stopped_reporting"])
    pid = serializers.IntegerField(help_text="The server backend.")
    host = serializers.CharField(allow_blank=True)
    process_pid = serializers.IntegerField()
    alias = serializers.CharField()
    state = serializers.CharField(allow_blank=True)
    age_seconds = serializers.FloatField()
    state_seconds = serializers.FloatField()


class CensusSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="`server_<alias>`")
    server = serializers.CharField(help_text="`host:port`")
    alias = serializers.CharField()
    role = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    taken_at = serializers.FloatField()
    age_seconds = serializers.FloatField()
    stale = serializers.BooleanField(help_text="Older than three census intervals.")
    duration_ms = serializers.FloatField()
    max_connections = serializers.IntegerField(allow_null=True)
    superuser_reserved = serializers.IntegerField(allow_null=True)
    reserved = serializers.IntegerField(allow_null=True)
    available = serializers.IntegerField(allow_null=True, help_text="max_connections - reserved.")
    connections = serializers.IntegerField(help_text="Client backends now.")
    headroom = serializers.IntegerField(allow_null=True, help_text="available - connections.")
    idle_in_transaction_timeout_ms = serializers.IntegerField(allow_null=True)
    states = StateCountsSerializer()
    by_kind = OwnerKindsSerializer()
    owners = OwnerSerializer(many=True)
    owners_total = serializers.IntegerField()
    longest_query = SessionSerializer(allow_null=True)
    longest_idle_in_transaction = SessionSerializer(allow_null=True)
    idle_in_transaction = SessionSerializer(many=True)
    blocked = BlockedSerializer(many=True)
    blocked_total = serializers.IntegerField()
    leaks = LeakSerializer(many=True)
    leaks_total = serializers.IntegerField()
    leaks_checked = serializers.BooleanField()
    query_text = serializers.BooleanField()


class PgBouncerSettingsSerializer(serializers.Serializer[Any]):
    max_client_conn = serializers.IntegerField(allow_null=True)
    default_pool_size = serializers.IntegerField(allow_null=True)
    reserve_pool_size = serializers.IntegerField(allow_null=True)
    max_db_connections = serializers.IntegerField(allow_null=True)
    pool_mode = serializers.CharField(allow_null=True)


class PgBouncerSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="`pgbouncer_<n>`")
    server = serializers.CharField()
    reachable = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    version = serializers.CharField(allow_null=True)
    taken_at = serializers.FloatField()
    age_seconds = serializers.FloatField()
    paused = serializers.ListField(child=serializers.CharField())
    clients = serializers.IntegerField()
    client_states = serializers.DictField(child=serializers.IntegerField())
    servers = serializers.IntegerField()
    server_states = serializers.DictField(child=serializers.IntegerField())
    recent_logins = serializers.IntegerField(help_text="Clients connected in the last 10 s.")
    config = PgBouncerSettingsSerializer()
    pools = serializers.DictField(child=PgBouncerPoolSerializer())


class ServerPointSerializer(serializers.Serializer[Any]):
    t = serializers.FloatField()
    connections = serializers.IntegerField()
    active = serializers.IntegerField()
    idle = serializers.IntegerField()
    idle_in_transaction = serializers.IntegerField()
    ours = serializers.IntegerField()
    other = serializers.IntegerField()
    probe = serializers.IntegerField()
    max_connections = serializers.IntegerField(allow_null=True)
    headroom = serializers.IntegerField(allow_null=True)
    blocked = serializers.IntegerField()
    leaks = serializers.IntegerField()


class ServerSerializer(serializers.Serializer[Any]):
    servers = serializers.DictField(child=CensusSerializer())
    pgbouncers = serializers.DictField(child=PgBouncerSerializer())
    recommendations = RecommendationSerializer(many=True)
    history = serializers.DictField(child=ServerPointSerializer(many=True), help_text="With `minutes` > 0.")
    source = serializers.ChoiceField(choices=["cluster", "local"])  # type: ignore[assignment]  # a field, as above
    generated_at = serializers.FloatField()
