"""Benchmark of the PostgreSQL pool (a script, not a test): writes its section of bench/RESULTS.md.

    set -a; eval "$(scripts/devservices env)"; set +a
    .venv/bin/python bench/bench_pool.py [--rounds 7] [--no-write]

Three ratios, each from one run with interleaved rounds (A, B, A, B, ...; the median
per-operation time of each side):

1. checkout + return: our ``InstrumentedPool`` vs a raw ``psycopg_pool.ConnectionPool``
   (same sizes, no check on either side; target ours <= 1.3x raw);
2. a request-like cycle through Django (cursor, ``SELECT 1``, fetch, close): our engine
   vs Django's own pooled engine, like for like (target <= 1.05x): without a checkout
   check on either side, and with one (our pre-ping vs ``CONN_HEALTH_CHECKS``); and our
   defaults (pre-ping on every checkout) and ``pool_pre_ping_window=0.5`` against Django's
   unchecked pool (target at 0.5 s: <= 1.05x);
3. the same cycle: our engine vs no pool at all, a new connection each time
   (target >= 15x faster).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECTION = "pool-bench"  # our section of bench/RESULTS.md


def configure_django() -> None:
    import dj_database_url
    import django
    from django.conf import settings

    url = os.environ.get("DATABASE_URL", "postgres://pools:pools@127.0.0.1:55432/pools")
    base = dict(dj_database_url.parse(url))

    def alias(engine: str, **extra: object) -> dict:
        return {**base, "ENGINE": engine, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, **extra}

    settings.configure(
        DATABASES={
            "default": alias("connection_pools.backends.postgresql",
                             OPTIONS={"pool": {}, "application_name": "bench-mass"}),
            "ours_no_ping": alias("connection_pools.backends.postgresql",
                                  OPTIONS={"pool": {"pool_pre_ping": False}}),
            "ours_window": alias("connection_pools.backends.postgresql",
                                 OPTIONS={"pool": {"pool_pre_ping_window": 0.5}}),
            "django_pool": alias("django.db.backends.postgresql",
                                 OPTIONS={"pool": {"min_size": 10, "max_size": 30}}),
            "django_pool_checks": alias("django.db.backends.postgresql", CONN_HEALTH_CHECKS=True,
                                        OPTIONS={"pool": {"min_size": 10, "max_size": 30}}),
            "no_pool": alias("django.db.backends.postgresql"),
        },
        USE_TZ=True,
        INSTALLED_APPS=[],
        CONNECTION_POOLS={"DATABASE_POOL": {"pool_size": 10, "max_overflow": 20}},
    )
    django.setup()


def per_op(func: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - started) / n


def interleaved(sides: dict[str, tuple[Callable[[], None], int]], rounds: int) -> dict[str, float]:
    """Median seconds per operation of each side, rounds interleaved so drift hits all sides alike."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for func, n in sides.values():
        per_op(func, max(n // 10, 5))  # warm-up
    order = list(sides)
    for index in range(rounds):
        # Alternate the order (A B C, C B A, ...) so "who runs after whom" evens out.
        for name in order if index % 2 == 0 else reversed(order):
            func, n = sides[name]
            samples[name].append(per_op(func, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_checkout(rounds: int) -> dict[str, float]:
    from django.db import connections
    from psycopg_pool import ConnectionPool

    from connection_pools import conf
    from connection_pools.backends.postgresql.pool import InstrumentedPool
    from connection_pools.conf.pool_options import resolve

    kwargs = dict(connections["default"].get_connection_params())
    kwargs["autocommit"] = True

    def config(**pool: object):
        return resolve("bench", {"OPTIONS": {"pool": {"pool_size": 2, "max_overflow": 0, **pool}}},
                       conf.get("DATABASE_POOL"))

    ours = InstrumentedPool(alias="bench", config=config(pool_pre_ping=False), kwargs=kwargs)
    ours_ping = InstrumentedPool(alias="bench_ping", config=config(pool_pre_ping=True), kwargs=kwargs)
    raw = ConnectionPool(kwargs=kwargs, min_size=2, max_size=2, open=False)
    for pool in (ours, ours_ping, raw):
        pool.open(wait=True)

    def cycle(pool: ConnectionPool) -> Callable[[], None]:
        def run() -> None:
            pool.putconn(pool.getconn())
        return run

    try:
        # A few microseconds per operation: many short rounds, so a burst of other work on the
        # shared machine spoils a few samples rather than a side's whole median.
        return interleaved({"raw": (cycle(raw), 5000), "ours": (cycle(ours), 5000),
                            "ours_pre_ping": (cycle(ours_ping), 500)}, max(rounds * 5, 30))
    finally:
        for pool in (ours, ours_ping, raw):
            pool.close()


def bench_mass_disconnect(rounds: int) -> dict[str, float]:
    """Seconds from killing every backend of a 10-connection pool to 10 working checkouts (median of rounds)."""
    import psycopg
    from django.db import connections

    from connection_pools.backends.postgresql.attribution import OWNED_SQL, owned_params
    from connection_pools.backends.postgresql.pool import ping

    wrapper = connections["default"]
    pool = wrapper.pool
    pool.open()
    assert pool.wait_ready(30)
    admin = psycopg.connect(**{k: v for k, v in wrapper.get_connection_params().items()
                               if k not in ("cursor_factory", "context")})
    samples = []
    try:
        for _ in range(rounds):
            pids = [row[0] for row in admin.execute(
                f"SELECT pid FROM pg_stat_activity WHERE {OWNED_SQL} AND pid <> pg_backend_pid()",
                owned_params("bench-mass"))]
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
            while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone()[0]:
                time.sleep(0.005)
            started = time.perf_counter()
            held = [pool.getconn() for _ in range(10)]
            for conn in held:
                ping(conn)
            samples.append(time.perf_counter() - started)
            for conn in held:
                pool.putconn(conn)
    finally:
        admin.close()
    return {"mass_disconnect": statistics.median(samples)}


def cycle(alias: str) -> Callable[[], None]:
    """One request-like cycle on ``alias``: cursor, ``SELECT 1``, fetch, close (back to the pool)."""
    from django.db import connections

    wrapper = connections[alias]

    def run() -> None:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        wrapper.close()
    return run


def bench_django(rounds: int) -> dict[str, float]:
    pooled = interleaved({
        "ours": (cycle("default"), 2000),
        "ours_no_ping": (cycle("ours_no_ping"), 2000),
        "ours_window": (cycle("ours_window"), 2000),
        "django_pool": (cycle("django_pool"), 2000),
        "django_pool_checks": (cycle("django_pool_checks"), 2000),
    }, rounds)
    # Separately: opening a connection per cycle forks server backends, whose churn would
    # slow down whichever pooled side runs next.
    unpooled = interleaved({"ours_vs_no_pool": (cycle("default"), 2000), "no_pool": (cycle("no_pool"), 100)},
                           rounds)
    return {**pooled, **unpooled}


def machine(alias: str = "no_pool") -> str:
    """CPU, cores, platform and versions; PostgreSQL's asked over ``alias`` (a no-pool alias)."""
    cpu = "unknown CPU"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg_version,) = cursor.fetchone()
    connections[alias].close()
    import django
    import psycopg
    import psycopg_pool

    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {platform.platform()}; Python "
            f"{platform.python_version()}, Django {django.get_version()}, psycopg {psycopg.__version__}, "
            f"psycopg_pool {psycopg_pool.__version__}; PostgreSQL {pg_version} on 127.0.0.1")


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def server_backend_pid(alias: str = "no_pool") -> int:
    """The pid of a fresh server backend (to find the server's postmaster), over a no-pool alias."""
    from django.db import connections

    connections[alias].ensure_connection()
    try:
        return int(connections[alias].connection.info.backend_pid)
    finally:
        connections[alias].close()


def render(checkout: dict[str, float], cycle: dict[str, float], mass: dict[str, float], rounds: int,
           command: str, placement: str) -> str:
    r1 = checkout["ours"] / checkout["raw"]
    r1p = checkout["ours_pre_ping"] / checkout["raw"]
    r2 = cycle["ours_no_ping"] / cycle["django_pool"]
    r2c = cycle["ours"] / cycle["django_pool_checks"]
    r2d = cycle["ours"] / cycle["django_pool"]
    r2w = cycle["ours_window"] / cycle["django_pool"]
    r3 = cycle["no_pool"] / cycle["ours_vs_no_pool"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "## PostgreSQL pool (`bench/bench_pool.py`)",
        "",
        f"Run: `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{rounds} interleaved rounds (order alternating; {max(rounds * 5, 30)} shorter ones for checkout + return), "
        "median per operation; all ratios from this one run.",
        f"Machine: {machine()}. Shared with other work: absolute times vary between runs, ratios much less.",
        f"Placement: {placement}.",
        "",
        "| comparison | ours | other | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| checkout + return: our pool vs raw psycopg pool (no check on either) | {us(checkout['ours'])} | "
        f"{us(checkout['raw'])} | **{r1:.2f}x** | <= 1.3x ({verdict(r1 <= 1.3)}) |",
        f"| request-like cycle: our engine vs Django's pooled engine (no checkout check on either) | "
        f"{us(cycle['ours_no_ping'])} | {us(cycle['django_pool'])} | **{r2:.3f}x** | "
        f"<= 1.05x ({verdict(r2 <= 1.05)}) |",
        f"| request-like cycle: our engine (default pre-ping) vs Django's pooled engine with "
        f"`CONN_HEALTH_CHECKS` (one round trip per checkout on both) | {us(cycle['ours'])} | "
        f"{us(cycle['django_pool_checks'])} | **{r2c:.3f}x** | <= 1.05x ({verdict(r2c <= 1.05)}) |",
        f"| request-like cycle: our engine with its defaults (pre-ping on every checkout, window 0) vs Django's "
        f"pooled engine with its defaults (no check) | {us(cycle['ours'])} | {us(cycle['django_pool'])} | "
        f"**{r2d:.3f}x** | (the pre-ping's round trip) |",
        f"| request-like cycle: our engine with `pool_pre_ping_window=0.5` vs Django's pooled engine with its "
        f"defaults (no check) | {us(cycle['ours_window'])} | {us(cycle['django_pool'])} | **{r2w:.3f}x** | "
        f"<= 1.05x ({verdict(r2w <= 1.05)}) |",
        f"| request-like cycle: no pool vs our engine (default settings), times faster | "
        f"{us(cycle['ours_vs_no_pool'])} | {us(cycle['no_pool'])} | **{r3:.1f}x faster** | "
        f">= 15x ({verdict(r3 >= 15)}) |",
        "",
        "For context (same run):",
        "",
        f"- checkout + return with our pre-ping on (a round trip): {us(checkout['ours_pre_ping'])} = {r1p:.1f}x raw;",
        "- the pre-ping window hands out a connection proved alive less than the window ago without the round "
        "trip (a request-like cycle reuses the connection the previous one returned); what it trades away: a backend "
        "killed inside the window reaches the application once (docs/postgresql-pools.md);",
        f"- connection overhead removed vs no pool: {(1 - cycle['ours_vs_no_pool'] / cycle['no_pool']) * 100:.1f} % "
        "(the guide promises 50-70 %);",
        f"- after every backend of a 10-connection pool is killed (`pg_terminate_backend`), 10 checkouts (each "
        f"pre-pinged, the dead one replaced in the caller) all work after {mass['mass_disconnect'] * 1000:.1f} ms "
        "(median of the rounds); psycopg's own `check` waits on its back-off here (2.8 s for the first checkout, "
        "DESIGN.md).",
        "",
        "Our engine keeps django-prometheus' query metrics and records our statistics on every checkout; Django's "
        "pooled engine is the plain `django.db.backends.postgresql` with `OPTIONS['pool']`. The cycle is `cursor()`, "
        "`execute('SELECT 1')`, `fetchone()`, `close()` on one thread; the no-pool side runs in its own "
        "interleaving (forking server backends disturbs whatever runs next).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch RESULTS.md")
    parser.add_argument("--same-cpu", action="store_true",
                        help="client and server on one CPU (default: one each; bench/placement.py)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    configure_django()
    from bench.placement import pinned

    with pinned(server_backend_pid(), same=args.same_cpu) as placement:
        checkout = bench_checkout(args.rounds)
        cycle = bench_django(args.rounds)
        mass = bench_mass_disconnect(args.rounds)
    command = ("python bench/bench_pool.py" + (f" --rounds {args.rounds}" if args.rounds != 9 else "")
               + (" --same-cpu" if args.same_cpu else ""))
    section = render(checkout, cycle, mass, args.rounds, command, placement)
    print(section)
    if not args.no_write:
        from bench import results as results_file

        results_file.write_section(SECTION, section)
        print(f"written to {results_file.RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
