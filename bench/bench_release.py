"""Benchmark of per-transaction release (a script, not a test): writes its section of bench/RESULTS.md.

    set -a; eval "$(scripts/devservices env)"; set +a
    .venv/bin/python bench/bench_release.py [--rounds 3] [--duration 10] [--no-write]

The unit of work is ``/wait-between-queries/``: two ORM reads on the primary with 50 ms of waiting
between them that is not the database's (an external call), under 64 concurrent wrk clients. The
contenders, measured in interleaved rounds (the style of ``bench/run_all.py``), each round on a server
started for it (one contender's idle pool never takes the database server's connections from another):

* **django**: Django's own pooled engine (``bench.settings_plain``): the connection stays out until
  the request ends;
* **real-pool**: django-pg-real-pool 1.1.0 (``bench.settings_real_pool``, ``requirements-bench.txt``):
  Django's pool, the connection back after each cursor outside ``atomic()``;
* **request**: our engine, ``release = "request"`` (the default);
* **transaction**: our engine, ``release = "transaction"``;
* **transaction-window**: the same with ``pool_pre_ping_window = 0.5`` (a connection proved alive in
  the last half second is handed out without its ping).

Same gunicorn shape for all (``WORKERS`` x ``THREADS``: a thread for every client, so nothing waits
for a thread), the same pools (``pool_size`` 1, so the server connections seen are the ones the load
needed, up to ``max_size`` per worker), a check at every checkout on every side (our pre-ping; Django's
``CONN_HEALTH_CHECKS``, psycopg's ``check_connection``, for the other two). Peak server connections
come from the server (``pg_stat_activity``, sampled every 50 ms, by each server's ``application_name``).

Phase 1 runs everyone with ``max_size`` = ``THREADS``; phase 2 caps ``max_size`` so that all the
workers of a server together may hold a quarter of the request mode's peak of phase 1, and runs
everyone again, with an uncapped request-mode server as the reference in the same interleaving.
Before both, an in-process cycle (two statements and the request's end, no wait) says what a checkout
per statement costs. Ratios from one run; the goals are recorded as met or not, never asserted.
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load, run_all  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402
from bench.bench_pool import interleaved, us  # noqa: E402

SECTION = "release-bench"  # our section of bench/RESULTS.md
WAIT_SECONDS = 0.05
CLIENTS = 64
WORKERS = 2
THREADS = 32
CYCLES = 1000
OURS = "connection_pools.backends.postgresql"


@dataclass(frozen=True)
class Contender:
    """One engine and mode: its key, what it is, the settings module of its gunicorn, its env."""

    key: str
    label: str
    settings: str
    env: dict[str, str] = field(default_factory=dict)


CONTENDERS = (
    Contender("django", "Django's pooled engine", "bench.settings_plain"),
    Contender("real-pool", "django-pg-real-pool 1.1.0", "bench.settings_real_pool"),
    Contender("request", "ours, release request", "project.settings", {"DATABASE_POOL_RELEASE": "request"}),
    Contender("transaction", "ours, release transaction", "project.settings",
              {"DATABASE_POOL_RELEASE": "transaction"}),
    Contender("transaction-window", "ours, release transaction, pre-ping window 0.5 s", "project.settings",
              {"DATABASE_POOL_RELEASE": "transaction", "DATABASE_POOL_PRE_PING_WINDOW": "0.5"}),
)
REFERENCE = "request"


@dataclass
class Shape:
    """How big everything is (the test runs it tiny)."""

    workers: int = WORKERS
    threads: int = THREADS
    clients: int = CLIENTS
    wait: float = WAIT_SECONDS
    cycles: int = CYCLES
    warm_up: float = 2.0

    @property
    def path(self) -> str:
        return f"/wait-between-queries/?seconds={self.wait:g}"


def pool_env(max_size: int) -> dict[str, str]:
    """``pool_size`` 1 and ``max_size`` per worker (every contender reads the same two variables)."""
    return {"DATABASE_POOL_SIZE": "1", "DATABASE_POOL_OVERFLOW": str(max(max_size - 1, 0))}


# --- in process: what a checkout per statement costs -------------------------------------------------------
def cycle_databases(base: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One alias per contender on ``base``'s server and database, for the in-process cycle."""
    native = {"min_size": 1, "max_size": 4}
    ours = {"pool_size": 1, "max_overflow": 3}

    def alias(engine: str, pool: dict[str, Any], **extra: Any) -> dict[str, Any]:
        config = copy.deepcopy(dict(base))
        return {**config, "ENGINE": engine, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
                "OPTIONS": {**config.get("OPTIONS", {}), "pool": pool}, **extra}

    return {
        "rel_django": alias("django.db.backends.postgresql", native, CONN_HEALTH_CHECKS=True),
        "rel_real-pool": alias("django_pg_real_pool", native, CONN_HEALTH_CHECKS=True),
        "rel_request": alias(OURS, ours),
        "rel_transaction": alias(OURS, {**ours, "release": "transaction"}),
        "rel_transaction-window": alias(OURS, {**ours, "release": "transaction", "pool_pre_ping_window": 0.5}),
    }


def configure_django() -> None:
    """The project's settings (``DATABASE_URL`` and the rest from the environment)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def cycle_wrappers(base: Mapping[str, Any]) -> dict[str, Any]:
    """A database wrapper per contender (key -> wrapper) on ``base``'s database (a complete settings dict),
    built by hand: no alias of the project is touched."""
    from django.db.utils import load_backend

    return {key.removeprefix("rel_"): load_backend(config["ENGINE"]).DatabaseWrapper(config, f"bench_{key}")
            for key, config in cycle_databases(base).items()}


def request_cycle(wrapper: Any) -> Callable[[], None]:
    """Two statements outside a transaction, then the request's end (``close()``), as a view does."""

    def run() -> None:
        for _ in range(2):
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        wrapper.close()

    return run


def bench_cycles(base: Mapping[str, Any], rounds: int, cycles: int) -> dict[str, float]:
    """Seconds per request-like cycle of each contender, interleaved, on ``base``'s database."""
    wrappers = cycle_wrappers(base)
    try:
        return interleaved({key: (request_cycle(wrapper), cycles) for key, wrapper in wrappers.items()}, rounds)
    finally:
        for wrapper in wrappers.values():
            wrapper.close()
            wrapper.close_pool()


# --- over HTTP ---------------------------------------------------------------------------------------------
def run_phase(contenders: dict[str, tuple[Contender, dict[str, str]]], shape: Shape, *, rounds: int,
              duration: float, tag: str) -> dict[str, list[load.LoadResult]]:
    """Interleaved wrk rounds over ``contenders`` (key -> contender and pool env), each on a server of its
    own started for the round (warmed up, its connections sampled in ``pg_stat_activity``, then stopped):
    one server's pools at a time on the database server, so none is refused connections because another
    contender's idle pool holds them (``max_connections`` is 200 here), and each peak is its own."""
    dsn = os.environ.get("DATABASE_URL", "")

    def measure(key: str, entry: tuple[Contender, dict[str, str]]) -> load.LoadResult:
        contender, env = entry
        name = f"bench-rel-{tag}-{key}"
        with load.start_server(name, settings=contender.settings, env={**contender.env, **env},
                               workers=shape.workers, threads=shape.threads) as server:
            load.run_wrk(server.url + shape.path, clients=shape.clients, duration=shape.warm_up)  # pools grown
            with load.ConnectionSampler(dsn, name) as sampler:
                result = load.run_wrk(server.url + shape.path, clients=shape.clients, duration=duration, label=key)
        result.max_server_connections = sampler.max
        return result

    return run_all.interleave(contenders, measure, rounds)


@dataclass
class Phase:
    """One phase's results and what it was run with."""

    results: dict[str, list[load.LoadResult]]
    max_size: dict[str, int]

    def throughput(self, key: str) -> float:
        return run_all.total_throughput(self.results[key])

    def ratio(self, key: str, reference: str = REFERENCE) -> float:
        """Median over rounds of ``key``'s throughput over ``reference``'s in the same round."""
        return statistics.median(r.throughput / ref.throughput
                                 for r, ref in zip(self.results[key], self.results[reference], strict=True))

    def peak(self, key: str) -> int:
        return max((r.max_server_connections or 0) for r in self.results[key])

    def latency(self, key: str, percentile: str) -> float:
        return statistics.median(r.latency_ms[percentile] for r in self.results[key])

    def failures(self, key: str) -> int:
        return sum(r.failures for r in self.results[key])


@dataclass
class Outcome:
    """Everything one run measured."""

    cycles: dict[str, float]
    uncapped: Phase
    capped: Phase
    cap_total: int
    shape: Shape
    rounds: int
    duration: float


def run(shape: Shape, *, rounds: int, duration: float) -> Outcome:
    """The in-process cycle and both phases, on the database of ``DATABASE_URL`` (the services running)."""
    from django.db import connections

    cycles = bench_cycles(connections["default"].settings_dict, max(rounds * 3, 3), shape.cycles)
    full = pool_env(shape.threads)
    uncapped = Phase(run_phase({c.key: (c, full) for c in CONTENDERS}, shape, rounds=rounds, duration=duration,
                               tag="full"), dict.fromkeys((c.key for c in CONTENDERS), shape.threads))
    # A quarter of what the request mode needed, for all the workers of a server together.
    cap_total = max(shape.workers, uncapped.peak(REFERENCE) // 4)
    per_worker = max(cap_total // shape.workers, 1)
    phase_two: dict[str, tuple[Contender, dict[str, str]]] = {
        f"{REFERENCE}-uncapped": (next(c for c in CONTENDERS if c.key == REFERENCE), full)}
    phase_two.update({c.key: (c, pool_env(per_worker)) for c in CONTENDERS})
    capped = Phase(run_phase(phase_two, shape, rounds=rounds, duration=duration, tag="cap"),
                   {key: (shape.threads if key.endswith("-uncapped") else per_worker) for key in phase_two})
    return Outcome(cycles, uncapped, capped, per_worker * shape.workers, shape, rounds, duration)


# --- the section -----------------------------------------------------------------------------------------
def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(outcome: Outcome, *, command: str, before: str, after: str) -> str:
    """The markdown section: settings, both phases, the goals."""
    shape, full, cap = outcome.shape, outcome.uncapped, outcome.capped
    labels = {c.key: c.label for c in CONTENDERS}
    labels[f"{REFERENCE}-uncapped"] = f"{labels[REFERENCE]}, max_size {shape.threads} (the reference)"

    def rows(phase: Phase, reference: str) -> list[str]:
        return [f"| {key} | {labels[key]} | {phase.max_size[key]} x {shape.workers} | {phase.throughput(key):.1f} "
                f"| {phase.ratio(key, reference):.2f}x | {phase.latency(key, 'p50'):.1f} | "
                f"{phase.latency(key, 'p99'):.1f} | {phase.peak(key)} | {phase.failures(key)} |"
                for key in phase.results]

    head = ["| contender | engine and mode | max_size x workers | req/s | throughput / reference | p50 ms | "
            "p99 ms | peak server connections | failed |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    request_peak, transaction_peak = full.peak(REFERENCE), full.peak("transaction")
    fewer = transaction_peak * 4 <= request_peak
    same_capped = cap.ratio("transaction", f"{REFERENCE}-uncapped")
    vs_real = full.ratio("transaction", "real-pool")
    vs_real_capped = cap.ratio("transaction", "real-pool")
    cycle_rows = [f"| {c.key} | {labels[c.key]} | {us(outcome.cycles[c.key])} | "
                  f"{outcome.cycles[c.key] / outcome.cycles[REFERENCE]:.2f}x |" for c in CONTENDERS]
    return "\n".join([
        "## Per-transaction release (`bench/bench_release.py`)",
        "",
        f"Run: `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; all ratios from this one run "
        "on a shared, noisy 2-core machine (PostgreSQL, Redis, wrk and every gunicorn on the same 2 cores, other "
        "engineers' work beside them).",
        f"Machine before: {before}. After: {after}.",
        "",
        f"Unit of work: `{shape.path}`, two ORM reads on the primary with {shape.wait * 1000:.0f} ms of non-database "
        f"waiting between them; wrk {shape.clients} connections, {outcome.rounds} interleaved rounds x "
        f"{outcome.duration:g} s per contender. Every contender: gunicorn {shape.workers} workers x {shape.threads} "
        "threads (`project.gunicorn_conf`), `pool_size` / `min_size` 1 and `max_size` as shown per worker, "
        "`pool_timeout` 30 s, a check at every checkout (our pre-ping, window 0 unless said; Django's "
        "`CONN_HEALTH_CHECKS` = psycopg's `check_connection` for `django` and `real-pool`, which have no "
        "middleware of ours), the same database, views and other middleware. Peak server connections: "
        "`pg_stat_activity` on the primary, every 50 ms, by each server's `application_name`, idle pooled "
        "connections included (what the server pays for); each round runs on a server started for it and warmed "
        f"up {shape.warm_up:g} s, alone on the database server.",
        "",
        "### What a checkout per statement costs (in process, no HTTP)",
        "",
        "Two `SELECT 1` outside a transaction, then the request's end (`close()`), one thread, no wait; median "
        "of interleaved rounds:",
        "",
        "| contender | engine and mode | per cycle | / request mode |",
        "| --- | --- | --- | --- |",
        *cycle_rows,
        "",
        "### Phase 1: each contender with `max_size` = threads per worker",
        "",
        *head,
        *rows(full, REFERENCE),
        "",
        f"### Phase 2: `max_size` capped at {outcome.cap_total // shape.workers} per worker ({outcome.cap_total} per "
        f"server, a quarter of the request mode's phase-1 peak of {request_peak})",
        "",
        *head,
        *rows(cap, f"{REFERENCE}-uncapped"),
        "",
        "### Goals",
        "",
        f"* **Connections** (phase 1, every pool free to grow to `max_size`): release per transaction peaked at "
        f"{transaction_peak} server connections, request mode at {request_peak} (Django's pool: "
        f"{full.peak('django')}, django-pg-real-pool: {full.peak('real-pool')}): **{verdict(fewer)}** (<= 1/4)."
        + ("" if fewer else " A psycopg pool (ours and Django's alike) opens one more connection whenever a "
           "checkout has to wait, however short the wait would have been, and keeps it (`max_idle` 10 min); with "
           "the CPU saturated, a statement's hold also covers its thread's wait for the GIL after each round "
           "trip, so short waits are frequent: what a free pool grows to is not what the load needs. Phase 2 "
           "measures that."),
        f"* **The same throughput with a quarter of the connections** (phase 2): release per transaction capped "
        f"at {outcome.cap_total} connections / request mode uncapped = **{same_capped:.2f}x** "
        f"(**{verdict(same_capped >= 0.95)}**, >= 0.95 for the noise); request mode capped the same way: "
        f"{cap.ratio(REFERENCE, f'{REFERENCE}-uncapped'):.2f}x, Django's pool "
        f"{cap.ratio('django', f'{REFERENCE}-uncapped'):.2f}x, django-pg-real-pool "
        f"{cap.ratio('real-pool', f'{REFERENCE}-uncapped'):.2f}x.",
        f"* **No slower than django-pg-real-pool**: release per transaction / real-pool = **{vs_real:.2f}x** "
        f"uncapped, **{vs_real_capped:.2f}x** capped (**{verdict(min(vs_real, vs_real_capped) >= 0.97)}**, >= 0.97 "
        "as the instrumentation target allows for the noise); with the 0.5 s pre-ping window: "
        f"{full.ratio('transaction-window', 'real-pool'):.2f}x and "
        f"{cap.ratio('transaction-window', 'real-pool'):.2f}x.",
        "",
        "Each ratio is the median of the per-round ratios (round i of both sides ran back to back); the machine "
        "was shared (load above), so single rounds swing widely.",
    ])


def main(argv: list[str] | None = None) -> int:
    args = results_file.parse_round_args("Per-transaction release vs request scope and django-pg-real-pool.", argv)
    command = "python bench/bench_release.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load.wrk_binary()
    configure_django()
    load.admin_token()  # migrations applied (the view reads workload_item)
    before = run_all.machine_state()
    outcome = run(Shape(), rounds=args.rounds, duration=args.duration)
    section = report(outcome, command=command.strip(), before=before, after=run_all.machine_state())
    results_file.publish(SECTION, section, no_write=args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
