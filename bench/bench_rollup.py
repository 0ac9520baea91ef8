"""Benchmark: ``GET stats`` through gunicorn with 8 to 2,048 reporting processes, rollup vs direct merge.

A real gunicorn (its own Redis key prefix) serves the admin API. Once its workers publish,
this script publishes copies of one of their real snapshots into the cluster store under
distinct hosts (8 processes per host) and pids, through the store's own ``publish`` verb, so
that the cluster holds 8, 64, 512 and 2,048 processes in turn. ``GET stats`` is timed
client-side, sequentially on one keep-alive connection, with a staff token:

* **up the sizes, direct merge**: this script took the rollup lease before the server started
  and renews it (as a hung rollup process would), so no server process rolls up. At each size
  it times the rollup job (``connection_pools.cluster.rollup.roll_up()``, whole and by step:
  read + decode every snapshot, merge, per-host subtotals, store), lets that rollup expire,
  then times requests that read and merge every snapshot themselves;
* **down the sizes, rollup**: the lease released, the server's own rollup job takes it over;
  at each size (copies forgotten through the store's ``forget_process``) the requests are
  timed once the server has rolled up exactly that many processes.

Each phase checks that ``GET stats`` counted every process. Goal (the issue): with the rollup,
p50 at most 15 ms at 2,048 processes and at most 1.5x its value at 8. The result goes to
``bench/RESULTS.md`` between ``<!-- rollup-bench:start -->`` and ``<!-- rollup-bench:end -->``.

    python bench/bench_rollup.py [--sizes 8,64,512,2048] [--rounds 200] [--direct-rounds 20] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 - after the sys.path fix above
from bench import results as results_file  # noqa: E402
from bench.bench_stats_endpoint import PATH, percentile, timed_requests  # noqa: E402
from connection_pools.cluster import rollup  # noqa: E402 - settings are read lazily, after main() sets the env
from connection_pools.cluster.store import store  # noqa: E402
from connection_pools.cluster.view import (  # noqa: E402
    ClusterView,
    host_subtotals,
    hosts_to_json,
    merge,
    rollup_max_age,
)
from connection_pools.core.snapshots import ProcessSnapshot  # noqa: E402

SECTION = "rollup-bench"  # our section of bench/RESULTS.md
SIZES = (8, 64, 512, 2048)
PER_HOST = 8  # synthetic processes per synthetic host
WORKERS = 2
TARGET_P50_MS = 15.0
TARGET_RATIO = 1.5
#: Long enough that the synthetic snapshots outlive the whole run (they are published once per size).
SNAPSHOT_TTL = "1800"


@dataclass(frozen=True)
class Timing:
    """Milliseconds: median, 95th percentile and maximum of ``n`` samples."""

    n: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Timing:
        return cls(len(samples), statistics.median(samples), percentile(list(samples), 0.95), max(samples))


@dataclass(frozen=True)
class JobTiming:
    """The rollup job at one size: the whole ``roll_up()``, and its steps (medians, ms)."""

    total: Timing
    read: float
    merge: float
    hosts: float
    write: float
    snapshot_bytes: int


@dataclass(frozen=True)
class SizeResult:
    """Everything measured with ``processes`` in the cluster."""

    processes: int
    direct: Timing
    rollup: Timing
    job: JobTiming


# --- the cluster's contents ------------------------------------------------------------------------
def synthetic_snapshots(template: ProcessSnapshot, count: int, *, now: float) -> list[ProcessSnapshot]:
    """``count`` copies of a real process snapshot, each its own process (distinct host and pid)."""
    run = uuid.uuid4().hex[:6]
    return [replace(template, host=f"bench-{run}-host{index // PER_HOST:04d}", pid=100_000 + index, taken_at=now)
            for index in range(count)]


def real_snapshot(timeout: float = 60.0) -> ProcessSnapshot:
    """The largest snapshot a server process has published (it has served requests: every pool is open)."""
    deadline = time.monotonic() + timeout
    while True:
        snapshots = store.read_snapshots().snapshots
        if snapshots:
            return max(snapshots, key=lambda s: len(s.pools))
        if time.monotonic() > deadline:
            raise RuntimeError("no server process published a snapshot")
        time.sleep(0.3)


def stored_processes() -> int:
    return len(store.read_snapshots().snapshots)


def stored_rollup() -> tuple[int, float] | None:
    """``(process_count, generated_at)`` of the stored rollup, or None when there is none."""
    text = store.read_view()[0]
    view = ClusterView.from_json(text) if text else None
    return None if view is None else (view.process_count, view.generated_at)


def rolled_up(count: int, *, since: float) -> Callable[[], bool]:
    """A check: a rollup of ``count`` processes made after ``since`` is stored."""

    def check() -> bool:
        stored = stored_rollup()
        return stored is not None and stored[1] > since and stored[0] == count

    return check


def check_count(base_url: str, token: str, expected: int) -> None:
    """The stats the server answered count every process (never a silently wrong number)."""
    count = load.fetch_pool_stats(base_url, token).get("processes", {}).get("count")
    if count != expected:
        raise RuntimeError(f"GET stats counted {count} processes, {expected} expected")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Cluster:
    """The synthetic processes this run has published, beside the server's own."""

    def __init__(self, template: ProcessSnapshot) -> None:
        self.template = template
        self.synthetic: list[ProcessSnapshot] = []

    def grow_to(self, size: int) -> int:
        """Publish copies (through the store's own verb) until ``size`` processes report; how many do."""
        missing = size - stored_processes()
        fresh = synthetic_snapshots(self.template, max(missing, 0), now=time.time())
        for snapshot in fresh:
            store.publish(snapshot)
        self.synthetic.extend(fresh)
        return self._reporting(size)

    def shrink_to(self, size: int) -> int:
        """Forget the newest copies until ``size`` processes report; how many do."""
        while self.synthetic and stored_processes() > size:
            extra = stored_processes() - size
            gone, self.synthetic = self.synthetic[-extra:], self.synthetic[:-extra]
            for snapshot in gone:
                store.forget_process(snapshot.key)
        return self._reporting(size)

    @staticmethod
    def _reporting(size: int) -> int:
        reporting = stored_processes()
        if reporting != size:
            raise RuntimeError(f"{reporting} processes in the cluster store, {size} expected")
        return reporting


# --- the rollup lease -------------------------------------------------------------------------------
class LeaseHolder:
    """Holds the rollup lease from this process (renewed in a thread), as a hung rollup process would:
    no server process rolls up meanwhile. Enter it before the server starts (a holder keeps its lease)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseHolder:
        ttl = rollup_max_age()
        if not store.hold_lease(rollup.LEASE, rollup.owner(), ttl=ttl):
            raise RuntimeError("another process holds the rollup lease")

        def renew() -> None:
            while not self._stop.wait(ttl / 6):
                store.hold_lease(rollup.LEASE, rollup.owner(), ttl=ttl)

        self._thread = threading.Thread(target=renew, name="bench-lease", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop renewing and give the lease up: a server process takes it at its next rollup."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
            rollup.release()

    def __exit__(self, *exc: object) -> None:
        self.release()


def time_rollup_job(rounds: int) -> JobTiming:
    """Run the rollup job here ``rounds`` times (this process holds the lease), whole and step by step."""

    def ms(started: float) -> float:
        return (time.perf_counter() - started) * 1000

    totals, reads, merges, hosts, writes = [], [], [], [], []
    snapshot_bytes = 0
    for _ in range(rounds):
        started = time.perf_counter()
        if not rollup.roll_up():
            raise RuntimeError("the rollup job did not run here (lease not held?)")
        totals.append(ms(started))
        # The same steps again, apart: where the job's time goes.
        started = time.perf_counter()
        cluster = store.read_snapshots()
        reads.append(ms(started))
        now = time.time()
        started = time.perf_counter()
        view = merge(cluster.snapshots, cluster.resets, now=now)
        merges.append(ms(started))
        started = time.perf_counter()
        subtotals = host_subtotals(cluster.snapshots, cluster.resets, now=now)
        hosts.append(ms(started))
        started = time.perf_counter()
        store.write_rollup(view.to_json(), hosts_to_json(subtotals), ttl=rollup_max_age())
        writes.append(ms(started))
        snapshot_bytes = max(len(json.dumps(s.to_wire(), separators=(",", ":"))) for s in cluster.snapshots)
    return JobTiming(Timing.of(totals), statistics.median(reads), statistics.median(merges),
                     statistics.median(hosts), statistics.median(writes), snapshot_bytes)


# --- the two sweeps ---------------------------------------------------------------------------------
def run(server: Any, token: str, sizes: Sequence[int], *, rounds: int, direct_rounds: int,
        job_rounds: int) -> list[SizeResult]:
    """Start ``server`` (a GunicornServer, not yet entered) with the lease held here, then sweep ``sizes``.

    Up the sizes with the lease held here: the rollup job timed here, its rollup left to expire,
    then ``GET stats`` merging directly. Then the lease released -- the server's own job takes it
    over -- and down the sizes: ``GET stats`` once the server has rolled up that many processes.
    """
    settle = rollup_max_age() * 3
    measured: dict[int, tuple[Timing, JobTiming]] = {}
    rolled: dict[int, Timing] = {}
    with LeaseHolder() as lease, server:
        server.spread_traffic(min_workers=server.workers)  # every worker opens its pools and publishes
        wait_until(lambda: stored_processes() >= server.workers, "every worker to publish", settle)
        cluster = Cluster(real_snapshot())
        for size in sizes:
            reporting = cluster.grow_to(size)
            job = time_rollup_job(job_rounds)
            wait_until(lambda: stored_rollup() is None, "the rollup to expire", settle)
            timed_requests(server.port, PATH, token, 3)  # warm-up
            measured[reporting] = (Timing.of(timed_requests(server.port, PATH, token, direct_rounds)), job)
            if stored_rollup() is not None:
                raise RuntimeError("a rollup appeared while this process held the lease")
            check_count(server.url, token, reporting)
            print(f"== {reporting} processes: direct p50 {measured[reporting][0].p50:.2f} ms, "
                  f"rollup job {job.total.p50:.1f} ms", flush=True)
        lease.release()
        for size in sorted(measured, reverse=True):
            reporting = cluster.shrink_to(size)
            wait_until(rolled_up(reporting, since=time.time()), f"the server's rollup of {reporting} processes",
                       settle)
            timed_requests(server.port, PATH, token, 10)  # warm-up
            rolled[reporting] = Timing.of(timed_requests(server.port, PATH, token, rounds))
            check_count(server.url, token, reporting)
            print(f"== {reporting} processes: rollup p50 {rolled[reporting].p50:.2f} ms", flush=True)
    return [SizeResult(size, measured[size][0], rolled[size], measured[size][1]) for size in sorted(measured)]


# --- the report -------------------------------------------------------------------------------------
def verdict(results: Sequence[SizeResult]) -> tuple[bool, str]:
    """The issue's goal, on the rollup side: the largest size's p50, and its ratio to the smallest's."""
    smallest, largest = results[0], results[-1]
    ratio = largest.rollup.p50 / smallest.rollup.p50
    met = largest.rollup.p50 <= TARGET_P50_MS and ratio <= TARGET_RATIO
    text = (f"Goal (with the rollup): p50 at {largest.processes} processes <= {TARGET_P50_MS:g} ms and <= "
            f"{TARGET_RATIO:g}x its value at {smallest.processes}: p50 {largest.rollup.p50:.2f} ms, "
            f"{ratio:.2f}x -> **{'met' if met else 'NOT met'}**.")
    return met, text


def report(results: Sequence[SizeResult], *, rounds: int, direct_rounds: int, interval: float) -> str:
    _, goal = verdict(results)
    rows = [f"| {r.processes:,} | {r.rollup.p50:.2f} | {r.rollup.p95:.2f} | {r.direct.p50:.2f} | "
            f"{r.direct.p95:.2f} | {r.job.total.p50:.1f} | {r.job.read:.1f} | {r.job.merge:.1f} | "
            f"{r.job.hosts:.1f} | {r.job.write:.1f} |" for r in results]
    snapshot_bytes = results[0].job.snapshot_bytes
    return "\n".join([
        "## Cluster view at scale: rollup vs direct merge (bench/bench_rollup.py)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; one run on a shared, noisy machine (PostgreSQL, Redis, gunicorn "
        f"and this client on the same cores). gunicorn {WORKERS} workers x 2 threads, publish interval "
        f"{interval:g} s; the cluster holds the server's own processes plus copies of one of their real "
        f"snapshots ({snapshot_bytes:,} bytes of JSON) under distinct hosts ({PER_HOST} processes each) and pids. "
        f"`GET stats` timed client-side, sequentially on one keep-alive connection, staff token: {rounds} "
        f"requests per size reading the server's own rollup, {direct_rounds} merging directly (this script "
        "held the rollup lease and let the last rollup expire). The rollup job (`roll_up()`) ran in this "
        "script; its steps were timed apart.",
        "",
        "| processes | rollup p50 ms | rollup p95 ms | direct p50 ms | direct p95 ms | job ms | "
        "read + decode | merge | host subtotals | store |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        goal,
        f"The rollup job must finish well within one publish interval ({interval * 1000:,.0f} ms): "
        f"{results[-1].job.total.p50:,.0f} ms at {results[-1].processes:,} processes.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="processes, comma-separated")
    parser.add_argument("--rounds", type=int, default=200, help="requests per size reading the rollup")
    parser.add_argument("--direct-rounds", type=int, default=20, help="requests per size merging directly")
    parser.add_argument("--job-rounds", type=int, default=5, help="rollup job runs per size")
    parser.add_argument("--interval", type=float, default=5.0, help="publish (and rollup) interval, seconds")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or sizes[0] < 1 or not (1 <= args.rounds and 1 <= args.direct_rounds and 1 <= args.job_rounds):
        parser.error("--sizes must be positive numbers; --rounds, --direct-rounds and --job-rounds at least 1")

    # This process writes into the server's namespace with the server's timing settings.
    env = {"CONNECTION_POOLS_KEY_PREFIX": f"bench-rollup-{uuid.uuid4().hex[:8]}",
           "CONNECTION_POOLS_PUBLISH_INTERVAL": f"{args.interval:g}", "CONNECTION_POOLS_SNAPSHOT_TTL": SNAPSHOT_TTL}
    os.environ.update(env)
    load.setup_django()
    token = load.admin_token()
    try:
        server = load.start_server("bench_rollup", workers=WORKERS, threads=2, env=env)
        results = run(server, token, sizes, rounds=args.rounds, direct_rounds=args.direct_rounds,
                      job_rounds=args.job_rounds)
    finally:
        store.clear()  # the synthetic processes: megabytes in Redis
    text = report(results, rounds=args.rounds, direct_rounds=args.direct_rounds, interval=args.interval)
    print(text)
    if not args.no_write:
        results_file.write_section(SECTION, text)
    return 0 if verdict(results)[0] else 1


if __name__ == "__main__":
    raise SystemExit(main())
