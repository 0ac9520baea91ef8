"""How the surfaces show PgBouncer (the parts of :data:`.pgbouncer.KIND`): its pools in ``GET stats``
(``pgbouncer_pools``, keyed ``<database>/<user>``, PgBouncer's own names, summed over every PgBouncer
that has the pool), its health from its last report, its ``/metrics`` families, its card and its
``poolstats`` lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from .. import conf
from ..core.figures import Card, Figure, MetricFamily, Sample, TextBlock, TextLine
from ..core.kinds import CheckKey
from ..core.pooler import PgBouncerReport
from ..core.reports import PoolHealth, Report
from ..core.responses import PgBouncerPoolJSON

#: ``SHOW POOLS`` figures summed over PgBouncers (``maxwait`` takes the worst).
SUMMED = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
#: ``SHOW STATS`` figures (per database) shown with each of its pools, summed over PgBouncers.
STATS = ("total_xact_count", "total_query_count", "total_wait_time", "avg_xact_count", "avg_query_count")


def reports_of(reports: Iterable[Report]) -> list[PgBouncerReport]:
    return sorted((report for report in reports if isinstance(report, PgBouncerReport)), key=lambda r: r.name)


def pool_key(database: str, user: str) -> str:
    """``<database>/<user>``: how ``pgbouncer_pools`` is keyed (PgBouncer's own pool identity)."""
    return f"{database}/{user}"


def pools(reports: Iterable[Report], now: float) -> dict[str, PgBouncerPoolJSON]:
    """``pgbouncer_pools``: every PgBouncer pool of the reports, summed over the PgBouncers that have it
    (``pgbouncers`` lists them); ``avg_wait_time`` in seconds."""
    found: dict[str, PgBouncerPoolJSON] = {}
    for report in reports_of(reports):
        for pool in report.pools:
            stats = report.stats_for(pool.database)
            key = pool_key(pool.database, pool.user)
            entry = found.get(key)
            if entry is None:
                entry = found[key] = PgBouncerPoolJSON(
                    database=pool.database, user=pool.user, cl_active=0, cl_waiting=0, sv_active=0, sv_idle=0,
                    sv_used=0, sv_tested=0, sv_login=0, maxwait=0.0, pool_mode=pool.pool_mode, avg_wait_time=0.0,
                    total_xact_count=0, total_query_count=0, total_wait_time=0, avg_xact_count=0,
                    avg_query_count=0, pgbouncers=[], age_seconds=0.0)
            for name in SUMMED:
                entry[name] += getattr(pool, name)  # type: ignore[literal-required]
            entry["maxwait"] = max(entry["maxwait"], round(pool.maxwait, 6))
            if stats is not None:
                for name in STATS:
                    entry[name] += getattr(stats, name)  # type: ignore[literal-required]
                entry["avg_wait_time"] = max(entry["avg_wait_time"], stats.avg_wait_time)
            entry["pgbouncers"].append(report.name)
            entry["age_seconds"] = max(entry["age_seconds"], round(max(now - report.taken_at, 0.0), 3))
    return found


def entries(reports: Sequence[Report], now: float) -> dict[str, dict[str, object]]:
    return {key: dict(entry) for key, entry in pools(reports, now).items()}


def check(report: PgBouncerReport) -> PoolHealth:
    """A PgBouncer's health from its last report: reachable and nothing paused."""
    error = report.error
    if error is None and report.paused:
        error = f"paused: {', '.join(report.paused)}"
    return PoolHealth(name=report.name, kind="pgbouncer", healthy=error is None, role="pooler", alias=report.server,
                      latency_ms=report.duration_ms if report.reachable else None, error=error, paused=report.paused)


def health(reports: Sequence[Report], now: float) -> Iterator[PoolHealth]:
    """Each PgBouncer's health; a report older than three read intervals says the job is not reading it."""
    settings = conf.get("PGBOUNCER")
    stale_after = float(settings["INTERVAL"]) * 3 + float(settings["TIMEOUT"])
    for report in reports_of(reports):
        if now - report.taken_at > stale_after:
            report = replace(report, error=f"no report for {now - report.taken_at:.0f} s (is the server-tier job "
                                           "running?)")
        yield check(report)


CHECK_KEYS: tuple[CheckKey, ...] = ("alias", "healthy", "latency_ms", "error", "role", "paused")

# --- /metrics -------------------------------------------------------------------------------------------
LABELS = ("pgbouncer", "database", "user")
#: PgBouncer's SHOW POOLS figures, with its names: (metric suffix, help).
POOL_GAUGES = (
    ("cl_active", "PgBouncer clients linked to a server connection (cl_active)."),
    ("cl_waiting", "PgBouncer clients waiting for a server connection (cl_waiting)."),
    ("sv_active", "PgBouncer server connections linked to a client (sv_active)."),
    ("sv_idle", "PgBouncer server connections idle and usable (sv_idle)."),
    ("sv_used", "PgBouncer server connections idle, to be tested before use (sv_used)."),
)
FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("pgbouncer_up", "gauge", "1 when PgBouncer's admin console answered the last read.", ("pgbouncer",)),
    MetricFamily("pgbouncer_paused_databases", "gauge", "PgBouncer database entries paused.", ("pgbouncer",)),
    MetricFamily("pgbouncer_max_client_conn", "gauge", "PgBouncer's max_client_conn.", ("pgbouncer",)),
    MetricFamily("pgbouncer_clients", "gauge", "PgBouncer client connections.", ("pgbouncer",)),
    *(MetricFamily(f"pgbouncer_{suffix}", "gauge", help_text, LABELS) for suffix, help_text in POOL_GAUGES),
    MetricFamily("pgbouncer_maxwait_seconds", "gauge", "Seconds the oldest waiting PgBouncer client waited.", LABELS),
    MetricFamily("pgbouncer_avg_wait_seconds", "gauge", "PgBouncer's average client wait (SHOW STATS).",
                 ("pgbouncer", "database")),
    MetricFamily("pgbouncer_transactions", "counter", "Transactions PgBouncer pooled (SHOW STATS).",
                 ("pgbouncer", "database")),
    MetricFamily("pgbouncer_queries", "counter", "Queries PgBouncer pooled (SHOW STATS).", ("pgbouncer", "database")),
)


def samples(reports: Sequence[Report]) -> Iterator[Sample]:
    for bouncer in reports_of(reports):
        yield "pgbouncer_up", (bouncer.name,), 1 if bouncer.reachable else 0
        if not bouncer.reachable:
            continue
        yield "pgbouncer_paused_databases", (bouncer.name,), len(bouncer.paused)
        if bouncer.config.max_client_conn is not None:
            yield "pgbouncer_max_client_conn", (bouncer.name,), bouncer.config.max_client_conn
        yield "pgbouncer_clients", (bouncer.name,), bouncer.clients
        for pool in bouncer.pools:
            labels = (bouncer.name, pool.database, pool.user)
            for suffix, _ in POOL_GAUGES:
                yield f"pgbouncer_{suffix}", labels, getattr(pool, suffix)
            yield "pgbouncer_maxwait_seconds", labels, pool.maxwait
        for stats in bouncer.stats:
            where = (bouncer.name, stats.database)
            yield "pgbouncer_avg_wait_seconds", where, stats.avg_wait_time
            yield "pgbouncer_transactions", where, stats.total_xact_count
            yield "pgbouncer_queries", where, stats.total_query_count


# --- the dashboard and poolstats ---------------------------------------------------------------------------
CARD = Card(
    figures=(
        Figure("cl_active", "cl_active"), Figure("cl_waiting", "cl_waiting"), Figure("sv_active", "sv_active"),
        Figure("sv_idle", "sv_idle"), Figure("sv_used", "sv_used"), Figure("maxwait", "maxwait", format="seconds"),
        Figure("avg_wait_time", "Avg wait", format="ms"), Figure("total_xact_count", "Transactions"),
        Figure("total_query_count", "Queries"),
    ),
    active=("sv_active",), size=("sv_active", "sv_idle", "sv_used"), max=("sv_active", "sv_idle", "sv_used"),
    name="pgbouncer {key}", kind="pgbouncer", role="{pgbouncers}", health="{pgbouncers.0}",
)

POOL_LINE = TextLine("  {key}  cl_active {cl_active}  cl_waiting {cl_waiting}  sv_active {sv_active}  sv_idle "
                     "{sv_idle}  sv_used {sv_used}  maxwait {maxwait:.2f} s  avg wait {avg_wait_time:ms}  xacts "
                     "{total_xact_count}  queries {total_query_count}")
LINES = TextBlock(lines=(POOL_LINE,), heading="PgBouncer pools:", separate=False)
