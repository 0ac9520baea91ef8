"""What the two database kinds (``postgresql``: our engine's pool; ``persistent``: ``CONN_MAX_AGE`` and no
pool) share on the surfaces: the keys of their entries in ``database_pools`` under the guide's names,
their card, their ``poolstats`` lines and their health check. Each kind says only what its size is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

from ..conf.aliases import alias_specs
from ..core.figures import Card, Figure, HealthCheck, TextBlock, TextLine
from ..core.kinds import CheckKey, EntryField, Read, computed, extent, mean, shows, summary
from ..core.snapshots import PoolSnapshot
from .probes import database_check

DatabaseKind = Literal["postgresql", "persistent"]
Size = Callable[[PoolSnapshot], int]


def database_fields(pool_size: Size, max_size: Size, config: Read) -> tuple[EntryField, ...]:
    """One ``database_pools.<alias>`` entry: ``pool_size`` and ``max_size`` as the kind counts them."""
    return (
        computed("pool", str, lambda pool, now: pool.name, "`db_<alias>`"),
        computed("kind", DatabaseKind, lambda pool, now: pool.kind),
        computed("role", Literal["primary", "replica"], lambda pool, now: pool.role or "primary"),
        shows("active_connections", "active"),
        shows("peak_connections", "peak_connections"),
        shows("process_peak", "peak_active", "Largest peak of any one process."),
        shows("connections_created", "connections_created"),
        shows("connections_closed", "connections_closed"),
        mean("average_wait_time", "wait"),
        computed("pool_size", int, lambda pool, now: pool_size(pool), "Sum over processes."),
        shows("overflow", "overflow_in_use", "Connections open beyond pool_size now."),
        computed("max_overflow", int, lambda pool, now: max(max_size(pool) - pool_size(pool), 0),
                 "Sum over processes."),
        computed("max_size", int, lambda pool, now: max_size(pool), "Sum over processes."),
        shows("size", "open", "Connections open or being opened now."),
        shows("available_connections", "available"),
        shows("waiting", "waiting"),
        shows("checkouts", "checkouts"),
        shows("connection_errors", "connection_errors"),
        shows("timeouts", "timeouts"),
        shows("recycled", "recycled"),
        computed("recycle_rate_per_minute", float, lambda pool, now: round(pool.recycle_rate_per_minute, 4),
                 "Connections recycled per minute, summed over processes."),
        shows("pre_ping_failures", "pre_ping_failures"),
        shows("long_holds", "long_holds"),
        shows("fallbacks", "fallbacks"),
        summary("wait_time", "wait"),
        summary("hold_time", "hold"),
        summary("query_time", "query"),
        shows("replica_lag_seconds", "replica_lag_seconds"),
        shows("in_rotation", "in_rotation"),
        *extent(),
        computed("config", dict[str, int | float | bool | str | None], config,
                 "PostgreSQL pools: the guide's settings (pool_size, max_overflow, pool_timeout, pool_recycle, "
                 "pool_pre_ping, pool_use_lifo, pool_pre_ping_window, release); persistent connections: conn_max_age."),
    )


CARD = Card(
    figures=(
        Figure("active_connections", "Active"), Figure("available_connections", "Available"),
        Figure("waiting", "Waiting"), Figure("peak_connections", "Peak"), Figure("checkouts", "Checkouts"),
        Figure("connections_created", "Created"), Figure("wait_p50", "Wait p50", "wait_time.p50", "ms"),
        Figure("wait_p95", "Wait p95", "wait_time.p95", "ms"), Figure("hold_mean", "Hold avg", "hold_time.mean", "ms"),
        Figure("query_mean", "In queries avg", "query_time.mean", "ms"), Figure("connection_errors", "Errors"),
        Figure("timeouts", "Timeouts"),
        Figure("replica_lag_seconds", "Replica lag", format="seconds", when=("role", "replica")),
        Figure("in_rotation", "In rotation", format="yes_no", when=("role", "replica")),
    ),
    active=("active_connections",), size=("pool_size",), max=("max_size",), overflow=("overflow",),
)

LINES = TextBlock(lines=(
    TextLine("{key}: {active_connections}/{pool_size}"),
    TextLine("  {pool}  {kind} {role}  {health}"),
    TextLine("  active {active_connections}  available {available_connections}  waiting {waiting}  overflow "
             "{overflow}/{max_overflow}  peak {peak_connections}  max {max_size}"),
    TextLine("  checkouts {checkouts}  created {connections_created}  closed {connections_closed}  recycled "
             "{recycled}  errors {connection_errors}  timeouts {timeouts}  fallbacks {fallbacks}"),
    TextLine("  wait avg {average_wait_time:ms}  p50 {wait_time[p50]:ms}  p95 {wait_time[p95]:ms}  p99 "
             "{wait_time[p99]:ms}", tails=(("replica_lag_seconds", "  replica lag {replica_lag_seconds:.2f} s"),)),
    TextLine("  hold avg {hold_time[mean]:ms}  p95 {hold_time[p95]:ms}  of it in queries avg {query_time[mean]:ms}"
             "  p95 {query_time[p95]:ms}"),
))

#: What ``GET health`` shows of a database check.
CHECK_KEYS: tuple[CheckKey, ...] = ("alias", "healthy", "latency_ms", "connect_ms", "error", "role",
                                    "replica_lag_seconds", "in_rotation")


def database_checks() -> Iterator[HealthCheck]:
    """A ``SELECT 1`` check of every PostgreSQL alias whose connections are not persistent ones (pooled, or
    opened per request: an alias without a pool is checked too)."""
    for spec in alias_specs().values():
        if spec.is_postgresql and spec.mode != "persistent":
            yield database_check(spec)


def persistent_checks() -> Iterator[HealthCheck]:
    """A ``SELECT 1`` check of every PostgreSQL alias with persistent connections."""
    for spec in alias_specs().values():
        if spec.is_postgresql and spec.mode == "persistent":
            yield database_check(spec)
