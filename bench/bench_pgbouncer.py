"""Benchmark of in-process pools and PgBouncer side by side (a script, not a test): writes
its section of bench/RESULTS.md.

    set -a; eval "$(scripts/devservices env)"; set +a
    .venv/bin/python bench/bench_pgbouncer.py [--rounds 3] [--duration 5] [--no-write]

Five sides, each measured two ways in one run:

* a request-like cycle in this process (``cursor()``, ``SELECT 1``, ``fetchone()``,
  ``close()``; the median per cycle of interleaved rounds, as in ``bench/bench_pool.py``);
* HTTP throughput of ``/one-query/`` through a real gunicorn per side, driven by wrk
  (all servers up for the whole run, rounds interleaved; the ratio is the median of
  the per-round ratios against side (a), as in ``bench/run_all.py``).

(a) our pool, direct; (b) Django's own pooled engine, direct; (c) Django with no pool,
through PgBouncer; (d) our pool through PgBouncer (``DATABASE_POOLER=pgbouncer``: no
server-side cursors, ``prepare_threshold=None``, session state refused); (e) Django with
no pool, direct. Then the cost of one server census (``pg_stat_activity`` + ``pg_settings``
over its dedicated connection) with 50 and 150 extra idle connections on the primary.
PgBouncer is the one of ``scripts/devservices`` (transaction mode, SCRAM), found through
``PGBOUNCER_DATABASE_URL`` and ``PGBOUNCER_ADMIN_URL``. Ratios only, no targets.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load, run_all  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402
from bench.bench_pool import cycle, interleaved, machine, us  # noqa: E402

SECTION = "pgbouncer-bench"  # our section of bench/RESULTS.md
PATH = "/one-query/"
POOLED_CYCLES = 2000
UNPOOLED_CYCLES = 100  # a new connection per cycle: far slower, fewer of them
OURS = "connection_pools.backends.postgresql"
DJANGO = "django.db.backends.postgresql"


@dataclass(frozen=True)
class Side:
    """One way of reaching the database, in this process (``alias``) and over HTTP."""

    key: str
    label: str
    alias: str
    settings: str  # DJANGO_SETTINGS_MODULE of its gunicorn
    through_pgbouncer: bool = False
    env: dict[str, str] = field(default_factory=dict)


NO_POOL_ENV = {"DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "0"}
SIDES = (
    Side("a", "our pool, direct", "bench_ours", "project.settings"),
    Side("b", "Django's pooled engine, direct", "bench_django_pool", "bench.settings_plain"),
    Side("c", "Django, no pool, through PgBouncer", "bench_no_pool_pgb", "bench.settings_plain", True,
         NO_POOL_ENV),
    Side("d", "our pool through PgBouncer", "bench_ours_pgb", "project.settings", True,
         {"DATABASE_POOLER": "pgbouncer"}),
    Side("e", "Django, no pool, direct", "bench_no_pool", "bench.settings_plain", False, NO_POOL_ENV),
)


def required_env(name: str) -> str:
    """An env var devservices sets, or a clear stop."""
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run scripts/devservices start, then "
                         'eval "$(scripts/devservices env)" (or use make bench)')
    return value


def configure_django() -> None:
    """The project's settings plus one alias per side for the in-process cycle (added to
    ``DATABASES`` before set-up, so Django fills in their defaults)."""
    import dj_database_url

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.conf import settings

    direct = dict(dj_database_url.parse(required_env("DATABASE_URL")))
    pgbouncer = dict(dj_database_url.parse(required_env("PGBOUNCER_DATABASE_URL")))
    pool = settings.CONNECTION_POOLS["DATABASE_POOL"]
    native_pool = {"min_size": pool["pool_size"], "max_size": pool["pool_size"] + pool["max_overflow"]}

    def alias(url: dict[str, Any], engine: str, **extra: Any) -> dict[str, Any]:
        return {**url, "ENGINE": engine, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, **extra}

    # (d) in this process as DATABASE_POOLER=pgbouncer makes the primary (connection_pools.env).
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "POOLERS": {"bench_ours_pgb": "pgbouncer"}}
    settings.DATABASES.update({
        "bench_ours": alias(direct, OURS, OPTIONS={"pool": {}}),
        # Like for like with our default pre-ping: one check per checkout (bench/settings_plain.py does the same).
        "bench_django_pool": alias(direct, DJANGO, CONN_HEALTH_CHECKS=bool(pool["pool_pre_ping"]),
                                   OPTIONS={"pool": native_pool}),
        "bench_no_pool_pgb": alias(pgbouncer, DJANGO),
        "bench_ours_pgb": alias(pgbouncer, OURS, DISABLE_SERVER_SIDE_CURSORS=True,
                                OPTIONS={"pool": {}, "prepare_threshold": None}),
        "bench_no_pool": alias(direct, DJANGO),
    })
    import django

    django.setup()


def bench_cycles(rounds: int) -> dict[str, float]:
    """Seconds per cycle of each side. The pooled sides are interleaved together; the
    unpooled ones in their own interleaving with (a) again as the reference, because
    opening a connection per cycle disturbs whatever runs next."""
    by_key = {side.key: side for side in SIDES}
    pooled = interleaved({key: (cycle(by_key[key].alias), POOLED_CYCLES) for key in ("a", "b", "d")}, rounds)
    unpooled = interleaved({"a_ref": (cycle(by_key["a"].alias), POOLED_CYCLES),
                            "c": (cycle(by_key["c"].alias), UNPOOLED_CYCLES),
                            "e": (cycle(by_key["e"].alias), UNPOOLED_CYCLES)}, rounds)
    from django.db import connections

    for side in SIDES:  # the servers of the HTTP part need the connections more
        connections[side.alias].close()
        connections[side.alias].close_pool()
    return {**pooled, **unpooled}


def cycle_ratio(cycles: dict[str, float], key: str) -> float:
    """Side ``key``'s cycle time over (a)'s from the same interleaving."""
    reference = cycles["a_ref"] if key in ("c", "e") else cycles["a"]
    return cycles[key] / reference


def bench_http(rounds: int, duration: float) -> dict[str, list[load.LoadResult]]:
    """All five servers up at once, interleaved wrk rounds on ``/one-query/``."""
    pgbouncer_url = required_env("PGBOUNCER_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        servers = {}
        for side in SIDES:
            name = f"bench-pgb-{side.key}"
            env = dict(side.env)
            if side.through_pgbouncer:
                env["DATABASE_URL"] = load.with_application_name(pgbouncer_url, name)
            servers[side.key] = stack.enter_context(
                load.start_server(name, settings=side.settings, env=env, **run_all.COMPARE_SERVER))
        for server in servers.values():  # warm up: pools filled, code paths imported
            load.run_wrk(server.url + PATH, clients=run_all.COMPARE_CLIENTS, duration=2)
        return run_all.interleave(
            servers,
            lambda key, server: load.run_wrk(server.url + PATH, clients=run_all.COMPARE_CLIENTS,
                                             duration=duration, label=key),
            rounds,
        )


def http_ratio(results: dict[str, list[load.LoadResult]], key: str) -> float:
    """Median over rounds of side ``key``'s throughput over (a)'s in the same round."""
    return statistics.median(r.throughput / a.throughput for r, a in zip(results[key], results["a"], strict=True))


def pgbouncer_queries() -> tuple[int, str]:
    """Queries PgBouncer has served for the benchmark's database so far, and a line
    describing it (version, pool mode, auth), from its admin console."""
    import dj_database_url

    from connection_pools.sources.pgbouncer_admin import read_admin

    snapshot = read_admin(required_env("PGBOUNCER_ADMIN_URL"))
    dbname = dj_database_url.parse(required_env("PGBOUNCER_DATABASE_URL"))["NAME"]
    stats = snapshot.stats_for(dbname)
    config = snapshot.config
    line = (f"PgBouncer {snapshot.version} (pool_mode={config.pool_mode}, auth_type="
            f"{config.settings.get('auth_type')}, default_pool_size={config.default_pool_size})")
    return (stats.total_query_count if stats else 0), line


def setting_note(side: Side) -> str:
    if side.env.get("DATABASE_POOLER"):
        return " + `DATABASE_POOLER=pgbouncer`"
    return " + no pool" if side.env else ""


CENSUS_LOADS = (50, 150)
CENSUS_SAMPLES = 30


def bench_census() -> dict[int, tuple[float, int]]:
    """Median seconds of one census of the primary (and the client backends it counted) with
    ``CENSUS_LOADS`` extra idle connections open, its dedicated connection kept as the job keeps it."""
    import psycopg

    from connection_pools.sources.base import SampleContext, registry

    source = next(s for s in registry.report_sources() if s.name == "server_default")
    context = SampleContext(keep_connection=True)
    found = {}
    for extra in CENSUS_LOADS:
        idle = [psycopg.connect(required_env("DATABASE_URL"), application_name="bench-census-idle")
                for _ in range(extra)]
        try:
            source.sample(context)  # the connection opened once, as the lease holder keeps it
            durations, counted = [], 0
            for _ in range(CENSUS_SAMPLES):
                started = time.perf_counter()
                census = source.sample(context)
                durations.append(time.perf_counter() - started)
                counted = census.connections
            found[extra] = (statistics.median(durations), counted)
        finally:
            for conn in idle:
                conn.close()
    source.close()
    return found


def render(cycles: dict[str, float], http: dict[str, list[load.LoadResult]], *, rounds: int, duration: float,
           command: str, pgbouncer: str, served: int, before: str, after: str,
           census: dict[int, tuple[float, int]]) -> str:
    rows = []
    for side in SIDES:
        runs = http[side.key]
        failed = sum(r.failures for r in runs)
        rows.append(
            f"| ({side.key}) {side.label} | `{side.settings}`{setting_note(side)} | "
            f"{us(cycles[side.key])} | {cycle_ratio(cycles, side.key):.2f}x | "
            f"{run_all.total_throughput(runs):.1f} | {http_ratio(http, side.key):.2f}x | {failed} |")
    rows.insert(2, f"| (a) again, the reference of (c) and (e) | `project.settings` | {us(cycles['a_ref'])} | 1.00x "
                   "| | | |")
    c, e = cycle_ratio(cycles, "c"), cycle_ratio(cycles, "e")
    lines = [
        "## In-process pools and PgBouncer (`bench/bench_pgbouncer.py`)",
        "",
        f"Run: `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; all ratios from this one run "
        "on a shared, noisy 2-core machine (other engineers' services and tests run beside it), no targets.",
        f"Machine: {machine('bench_no_pool')}; {pgbouncer}; wrk {load.wrk_version()}.",
        f"Machine before: {before}. After: {after}.",
        "",
        "| side | settings | request-like cycle | cycle time / (a) | `/one-query/` req/s | throughput / (a) | failed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"With no pool, a request-like cycle costs {c:.1f}x our pooled cycle (a) when it goes through PgBouncer "
        f"(c), and {e:.1f}x when it connects directly (e): PgBouncer spares PostgreSQL a backend start-up per "
        "connection, but the client still opens a connection to PgBouncer each time (TCP, start-up, a SCRAM "
        "exchange). In-process pools and PgBouncer do different jobs; large deployments want both.",
        "",
        f"How: the cycle is `cursor()`, `execute('SELECT 1')`, `fetchone()`, `close()` on one thread, median of "
        f"{rounds} interleaved rounds ({POOLED_CYCLES} cycles per round pooled, {UNPOOLED_CYCLES} unpooled); (a), "
        "(b) and (d) run in one interleaving, (c) and (e) in another with (a) again as their reference (opening a "
        "connection per cycle disturbs whatever runs next). HTTP: one gunicorn per side "
        f"({run_all.COMPARE_SERVER['workers']} workers x {run_all.COMPARE_SERVER['threads']} threads), all up for "
        f"the whole run, wrk {run_all.COMPARE_CLIENTS} connections, {rounds} rounds x {duration:g} s per side, order "
        "alternating; req/s over all rounds, the ratio is the median of the per-round ratios against (a). Our pool "
        "runs with its defaults (pre-ping on); Django's pooled engine checks each checkout too (`CONN_HEALTH_CHECKS`), "
        "so both do one round trip per checkout; `bench.settings_plain` also leaves out our middleware. (d) is our "
        "engine through PgBouncer with `DATABASE_POOLER=pgbouncer` (`DISABLE_SERVER_SIDE_CURSORS=True`, "
        "`prepare_threshold=None`, session-state statements refused). "
        f"PgBouncer served {served:,} queries of this run (its `SHOW STATS`), "
        "so (c) and (d) really went through it. Every server of the run also ran the server-tier job (a census "
        "of each server and a read of PgBouncer's console every 5 s in one process of each server).",
        "",
        "Server census cost (one process of the cluster runs it every `CENSUS[\"INTERVAL\"]` = 5 s, never in a "
        "request or a scrape): " + "; ".join(
            f"{us(seconds)} per census with {counted} client backends on the primary ({extra} extra idle)"
            for extra, (seconds, counted) in census.items())
        + f" (median of {CENSUS_SAMPLES} samples, its dedicated connection kept open).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = results_file.parse_round_args(__doc__.split("\n\n")[0], argv)
    load.wrk_binary()
    configure_django()
    served_before, pgbouncer = pgbouncer_queries()
    before = run_all.machine_state()
    print("== request-like cycles", flush=True)
    cycles = bench_cycles(args.rounds)
    for key, seconds in cycles.items():
        print(f"    {key}: {us(seconds)}", flush=True)
    print("== HTTP /one-query/", flush=True)
    http = bench_http(args.rounds, args.duration)
    print("== server census", flush=True)
    census = bench_census()
    after = run_all.machine_state()
    served = pgbouncer_queries()[0] - served_before
    command = "python bench/bench_pgbouncer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(cycles, http, rounds=args.rounds, duration=args.duration, command=command.strip(),
                     pgbouncer=pgbouncer, served=served, before=before, after=after, census=census)
    results_file.publish(SECTION, section, no_write=args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
