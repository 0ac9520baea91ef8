"""Benchmark: latency of ``GET /api/v1/admin/connection-pools/stats`` with 8 reporting processes.

A real gunicorn with 8 workers (each publishes its snapshot to Redis), an isolated
Redis key prefix, a staff token; once all 8 report, ``ROUNDS`` sequential requests on
a keep-alive connection are timed client-side (p50/p95/max), for the plain stats and
with ``?per_process=1``. Target: p50 < 10 ms. The result goes to ``bench/RESULTS.md``
between ``<!-- stats-bench:start -->`` and ``<!-- stats-bench:end -->`` (the rest of the
file is left alone).

    python bench/bench_stats_endpoint.py [--rounds 300] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402

SECTION = "stats-bench"  # our section of bench/RESULTS.md
WORKERS = 8
TARGET_MS = 10.0
PATH = "/api/v1/admin/connection-pools/stats"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def timed_requests(port: int, path: str, token: str, rounds: int) -> list[float]:
    """Milliseconds per request, on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {"Authorization": f"Token {token}"}
    times = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}: {body[:300]!r}")
    finally:
        conn.close()
    return times


def wait_for_processes(port: int, token: str, count: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("GET", "/one-query/")  # touch a worker so every pool is open
            conn.getresponse().read()
            conn.request("GET", PATH, headers={"Authorization": f"Token {token}"})
            stats = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if stats.get("processes", {}).get("count", 0) >= count:
            return stats
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stats.get('processes', {}).get('count')} of {count} processes reported")
        time.sleep(0.3)


def summary(label: str, times: list[float]) -> dict:
    return {"label": label, "n": len(times), "p50": statistics.median(times), "p95": percentile(times, 0.95),
            "max": max(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    load.setup_django()
    token = load.admin_token()
    prefix = f"bench-stats-{uuid.uuid4().hex[:8]}"
    env = {"CONNECTION_POOLS_KEY_PREFIX": prefix, "CONNECTION_POOLS_PUBLISH_INTERVAL": "1"}
    with load.start_server("bench_stats", workers=WORKERS, threads=2, env=env) as server:
        stats = wait_for_processes(server.port, token, WORKERS)
        timed_requests(server.port, PATH, token, 20)  # warm-up: connections, caches
        results = [summary("stats", timed_requests(server.port, PATH, token, args.rounds)),
                   summary("stats?per_process=1",
                           timed_requests(server.port, PATH + "?per_process=1", token, args.rounds))]
        reporting = wait_for_processes(server.port, token, WORKERS)["processes"]["count"]

    ok = results[0]["p50"] < TARGET_MS
    lines = [
        "## Stats endpoint latency (bench/bench_stats_endpoint.py)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, Python {platform.python_version()}; "
        f"gunicorn {WORKERS} workers x 2 threads, {reporting} processes reporting "
        f"({len(stats['database_pools'])} database + {len(stats['redis_pools'])} Redis pools each), "
        f"{args.rounds} sequential requests on a keep-alive connection, staff token.",
        "",
        "| request | p50 ms | p95 ms | max ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| `GET {r['label']}` | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} |" for r in results),
        "",
        f"Target p50 < {TARGET_MS:g} ms: **{'met' if ok else 'NOT met'}**.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        results_file.write_section(SECTION, text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
