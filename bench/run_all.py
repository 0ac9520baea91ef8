"""Run the benchmarks and write the results to ``bench/RESULTS.md`` (``make bench``).

Three load benchmarks through real gunicorn servers driven by wrk (bench/load.py),
each a ratio from one run whose A/B rounds are interleaved so that machine noise
hits both sides alike:

* pooled vs unpooled: our pool vs a new connection per request
  (``DATABASE_POOL_ENABLED=false``, ``DATABASE_CONN_MAX_AGE=0``) on ``/one-query/``;
  target >= 3x.
* instrumentation cost: our engine + middleware vs Django's plain pooled engine
  (``bench.settings_plain``) on ``/one-query/``, like for like with and without a
  check at each checkout (our pre-ping vs Django's ``CONN_HEALTH_CHECKS``); target >= 0.97.
* overload: 200 clients against ``pool_size=10, max_overflow=20`` per process on a
  view that holds its connection; server connections (sampled from
  ``pg_stat_activity``) never above the configured total, throughput >= 90 % of the
  best concurrency level, failures only 503 with ``Retry-After``.

Then the other engineers' scripts, ``bench/bench_pool.py``,
``bench/bench_stats_endpoint.py``, ``bench/bench_pgbouncer.py``, ``bench/bench_asgi.py``,
``bench/bench_rollup.py`` and ``bench/bench_release.py``, when present (they write their own sections).
Our section of RESULTS.md lies between ``<!-- load-bench:start -->`` and
``<!-- load-bench:end -->``; the rest of the file is left alone.

    python bench/run_all.py                     # everything
    python bench/run_all.py --only overload --rounds 1 --duration 3 --no-write   # a quick smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402

SECTION = "load-bench"  # our section of bench/RESULTS.md
OTHER_SCRIPTS = ("bench_pool.py", "bench_stats_endpoint.py", "bench_pgbouncer.py", "bench_asgi.py", "bench_rollup.py",
                 "bench_release.py")
BENCHMARKS = ("pooled", "instrumentation", "overload")

# Server shapes. The comparison servers get few threads so that the database
# work, not thread switching, dominates; the overload server gets more threads
# per worker than the pool has connections, so the pool itself is the limit.
COMPARE_SERVER = {"workers": 2, "threads": 4}
COMPARE_CLIENTS = 16
OVERLOAD_SERVER = {"workers": 2, "threads": 100}
OVERLOAD_POOL = {"DATABASE_POOL_SIZE": "10", "DATABASE_POOL_OVERFLOW": "20"}
OVERLOAD_PATH = "/slow/?seconds=0.05"
OVERLOAD_LEVELS = (25, 50, 100, 200)


@dataclass
class Outcome:
    """One benchmark's verdict and the markdown that shows it."""

    name: str
    ratio: float
    target: str
    met: bool
    markdown: str
    notes: list[str] = field(default_factory=list)


def machine_state() -> str:
    """A one-line picture of the machine: cores, load averages, busiest processes right now."""
    one, five, fifteen = os.getloadavg()
    # top's second frame measures CPU over the last second (the first one, since start-up).
    out = subprocess.run(["top", "-b", "-n", "2", "-d", "1", "-w", "200"], capture_output=True, text=True).stdout
    frame = out.split("\ntop - ")[-1].splitlines()
    rows = [line.split() for line in frame[frame.index(next(x for x in frame if "COMMAND" in x)) + 1:]]
    busy = [f"{row[11]} {row[8]}%" for row in rows if len(row) >= 12 and float(row[8]) >= 5.0][:6]
    return (f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f}; "
            f"busiest over the last second: {', '.join(busy) or 'nothing above 5 % CPU'}")


def interleave(servers: dict[str, Any], run: Callable[[str, Any], load.LoadResult],
               rounds: int) -> dict[str, list[load.LoadResult]]:
    """Run ``run(label, server)`` for every server, round after round (A B, B A, A B, ...
    so that neither side always goes first)."""
    results: dict[str, list[load.LoadResult]] = {label: [] for label in servers}
    labels = list(servers)
    for index in range(rounds):
        order = labels if index % 2 == 0 else labels[::-1]
        for label in order:
            result = run(label, servers[label])
            print("   ", result.line(), flush=True)
            results[label].append(result)
    return results


def total_throughput(results: list[load.LoadResult]) -> float:
    """Responses per second over all rounds of one side."""
    return sum(r.requests for r in results) / sum(r.duration_s for r in results)


def rounds_table(results: dict[str, list[load.LoadResult]]) -> str:
    """Markdown table: one row per round and side."""
    rows = ["| side | round | clients | req/s | p50 ms | p99 ms | statuses | max server conns |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, runs in results.items():
        for index, r in enumerate(runs, start=1):
            statuses = " ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
            errors = " ".join(f"{k}: {v}" for k, v in r.socket_errors.items() if v)
            conns = "" if r.max_server_connections is None else str(r.max_server_connections)
            rows.append(f"| {label} | {index} | {r.clients} | {r.throughput:.1f} | {r.latency_ms['p50']:.2f} | "
                        f"{r.latency_ms['p99']:.2f} | {statuses}{' ' + errors if errors else ''} | {conns} |")
    return "\n".join(rows)


def compare(name: str, title: str, sides: dict[str, tuple[str, dict[str, str]]], *, rounds: int,
            duration: float, target: float, path: str, command: str, token: str) -> Outcome:
    """Two servers up at once, interleaved rounds on ``path``; ratio = side A / side B."""
    print(f"== {title}", flush=True)
    with contextlib.ExitStack() as stack:
        servers = {
            label: stack.enter_context(
                load.start_server(f"bench-{name}-{label}", settings=settings, env=env, **COMPARE_SERVER))
            for label, (settings, env) in sides.items()
        }
        for server in servers.values():  # warm up: pools filled, code paths imported
            load.run_wrk(server.url + path, clients=COMPARE_CLIENTS, duration=2)
        load.reset_pool_stats(next(iter(servers.values())).url, token)  # the figures below cover the rounds
        results = interleave(
            servers,
            lambda label, server: load.run_wrk(server.url + path, clients=COMPARE_CLIENTS, duration=duration,
                                               label=label),
            rounds,
        )
        stats = load.fetch_pool_stats(next(iter(servers.values())).url, token)
    a, b = list(results)
    # Round i of each side ran back to back, so each pair saw about the same machine;
    # the median of the pairs' ratios shrugs off a round that another job disturbed
    # (the ratio of the totals does not, so it is shown for context only).
    per_round = [ra.throughput / rb.throughput for ra, rb in zip(results[a], results[b], strict=True)]
    ratio = statistics.median(per_round)
    failures = sum(r.failures for runs in results.values() for r in runs)
    met = ratio >= target
    md = "\n".join([
        f"### {title}",
        "",
        f"**{a} / {b} throughput = {ratio:.3f}**, the median of the per-round ratios "
        f"{', '.join(f'{x:.3f}' for x in per_round)} (target >= {target:g}: **{'met' if met else 'NOT met'}**). "
        f"Over all rounds {a}: {total_throughput(results[a]):.1f} req/s, {b}: {total_throughput(results[b]):.1f} "
        f"req/s (ratio of totals {total_throughput(results[a]) / total_throughput(results[b]):.3f}); "
        f"failed requests: {failures}.",
        "",
        f"Servers: gunicorn {COMPARE_SERVER['workers']} workers x {COMPARE_SERVER['threads']} threads each, "
        f"both up for the whole run; wrk {COMPARE_CLIENTS} connections, {rounds} rounds x {duration:g} s per side, "
        f"order alternating. Command: `{command}`",
        "",
        rounds_table(results),
        "",
        "Pool figures of the first side at the end (admin API):",
        "",
        "```",
        load.format_pool_stats(stats),
        "```",
    ])
    return Outcome(name, ratio, f">= {target:g}", met, md)


def overload(*, rounds: int, duration: float, command: str, token: str) -> Outcome:
    """One server, concurrency levels interleaved, the last one 200 clients."""
    title = "Overload: 200 clients against pool_size=10, max_overflow=20 per process"
    print(f"== {title}", flush=True)
    name = "bench-overload"
    workers = OVERLOAD_SERVER["workers"]
    configured = workers * (int(OVERLOAD_POOL["DATABASE_POOL_SIZE"]) + int(OVERLOAD_POOL["DATABASE_POOL_OVERFLOW"]))
    server = load.start_server(name, env=dict(OVERLOAD_POOL), **OVERLOAD_SERVER)
    dsn = os.environ.get("DATABASE_URL", "")
    with server:
        load.run_wrk(server.url + OVERLOAD_PATH, clients=OVERLOAD_LEVELS[-1], duration=2)  # warm up
        load.reset_pool_stats(server.url, token)

        def run(label: str, clients: int) -> load.LoadResult:
            with load.ConnectionSampler(dsn, name) as sampler:
                result = load.run_wrk(server.url + OVERLOAD_PATH, clients=clients, duration=duration,
                                      label=label, timeout=60)
            result.max_server_connections = sampler.max
            return result

        results = interleave({f"{c} clients": c for c in OVERLOAD_LEVELS}, run, rounds)
        stats = load.fetch_pool_stats(server.url, token)
    top = results[f"{OVERLOAD_LEVELS[-1]} clients"]
    best_label = max(results, key=lambda label: total_throughput(results[label]))
    best = total_throughput(results[best_label])
    ratio = total_throughput(top) / best
    max_conns = max((r.max_server_connections or 0) for runs in results.values() for r in runs)
    clean = all(r.failures_only_503_with_retry_after for runs in results.values() for r in runs)
    failures = sum(r.failures for r in top)
    ok_conns = max_conns <= configured
    met = ratio >= 0.9 and ok_conns and clean
    md = "\n".join([
        f"### {title}",
        "",
        f"**200 clients / best level ({best_label}) throughput = {ratio:.2f}** (target >= 0.90); "
        f"**most server connections seen: {max_conns}** (configured total {workers} processes x (10 + 20) = "
        f"{configured}: {'never exceeded' if ok_conns else 'EXCEEDED'}); failures at 200 clients: {failures}, "
        f"{'all of them 503 with Retry-After' if clean else 'NOT all 503 with Retry-After'}. "
        f"Overall: **{'met' if met else 'NOT met'}**.",
        "",
        f"Server: gunicorn {workers} workers x {OVERLOAD_SERVER['threads']} threads (more threads than pool "
        f"connections, so requests queue on the pool), `DATABASE_POOL_SIZE=10 DATABASE_POOL_OVERFLOW=20`, "
        f"default pool_timeout; view `{OVERLOAD_PATH}` (holds its connection 50 ms); "
        f"`pg_stat_activity` sampled every 50 ms for this server's `application_name`. "
        f"Levels {', '.join(map(str, OVERLOAD_LEVELS))} clients, {rounds} rounds x {duration:g} s each, "
        f"order alternating. Command: `{command}`",
        "",
        rounds_table(results),
        "",
        "Pool figures at the end (admin API):",
        "",
        "```",
        load.format_pool_stats(stats),
        "```",
    ])
    return Outcome("overload", ratio, ">= 0.90", met, md)


def run_other_scripts() -> list[str]:
    """Run the other engineers' bench scripts when present; they write their own sections."""
    lines = []
    for script in OTHER_SCRIPTS:
        path = ROOT / "bench" / script
        if not path.exists():
            lines.append(f"- `bench/{script}`: not present, skipped")
            continue
        print(f"== bench/{script}", flush=True)
        proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, stdin=subprocess.DEVNULL, timeout=1800)
        lines.append(f"- `bench/{script}`: exit status {proc.returncode} (see its own section)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 when every target was met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeat)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per side (default 5)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round (default 10)")
    parser.add_argument("--note", default="", help="what else the machine was doing, for RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    parser.add_argument("--skip-others", action="store_true", help="do not run the other bench scripts")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 120):
        parser.error("--rounds must be 1..20 and --duration 1..120 seconds")
    chosen = args.only or list(BENCHMARKS)
    command = "python bench/run_all.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                              else sys.argv[1:]))
    load.wrk_binary()
    load.setup_django()
    token = load.admin_token()
    started = dt.datetime.now(dt.UTC)
    before = machine_state()
    outcomes: list[Outcome] = []
    kwargs = {"rounds": args.rounds, "duration": args.duration, "command": command.strip(), "token": token}
    if "pooled" in chosen:
        outcomes.append(compare(
            "pooled", "Pooled vs unpooled on /one-query/",
            {"pooled": ("project.settings", {}),
             "unpooled": ("project.settings", {"DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "0"})},
            target=3.0, path="/one-query/", **kwargs))
    if "instrumentation" in chosen:
        # Like for like, with and without a check at each checkout (our pre-ping vs
        # Django's CONN_HEALTH_CHECKS: the same round trip), so the ratio is the cost
        # of the instrumentation, not of a feature one side lacks.
        for label, env in (("with a checkout check on both sides", {}),
                           ("without a checkout check", {"DATABASE_POOL_PRE_PING": "false"})):
            outcomes.append(compare(
                "instrumentation", f"Instrumentation cost, {label}: our engine + middleware vs Django's plain "
                "pooled engine", {"ours": ("project.settings", env), "plain": ("bench.settings_plain", env)},
                target=0.97, path="/one-query/", **kwargs))
            outcomes[-1].name = f"instrumentation ({label})"
    if "overload" in chosen:
        outcomes.append(overload(**kwargs))
    after = machine_state()
    summary = ["| benchmark | ratio | target | verdict |", "| --- | --- | --- | --- |"]
    summary += [f"| {o.name} | {o.ratio:.3f} | {o.target} | {'met' if o.met else 'NOT met'} |" for o in outcomes]
    markdown = "\n".join([
        "## Load benchmarks (bench/load.py, bench/run_all.py)",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, took {(dt.datetime.now(dt.UTC) - started).seconds} s on "
        f"{platform.node() or 'this machine'} (Python {platform.python_version()}, "
        f"wrk {load.wrk_version()}).",
        f"Machine before: {before}.",
        f"Machine after: {after}.",
        *([f"Note: {args.note}"] if args.note else []),
        "PostgreSQL 15 and Redis run on the same 2 cores as gunicorn and wrk (scripts/devservices), so absolute "
        "numbers are low and noisy; the ratios are what we claim.",
        "",
        *summary,
        "",
        *(o.markdown + "\n" for o in outcomes),
    ])
    print()
    print(markdown)
    if not args.no_write:
        results_file.write_section(SECTION, markdown)
        print(f"\nwrote our section of {results_file.RESULTS.relative_to(ROOT)}")
    if not args.skip_others:
        for line in run_other_scripts():
            print(line)
    return 0 if all(o.met for o in outcomes) else 1


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    print(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(status)
