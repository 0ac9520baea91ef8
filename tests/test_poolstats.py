"""``manage.py poolstats`` as a separate process against a real gunicorn with several workers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connection_pools.management.commands import poolstats
from tests.support import services
from tests.support.server import ROOT, GunicornServer

REQUESTS = 30


def run(server: GunicornServer, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "poolstats", *args], cwd=ROOT, env={**server.env, **(env or {})},
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[GunicornServer]:
    with GunicornServer(workers=3, threads=4) as gunicorn:
        gunicorn.spread_traffic(batch=REQUESTS)
        yield gunicorn


@pytest.fixture(scope="module")
def published(server) -> dict[str, Any]:
    """The --json document once every worker has published and our traffic shows in the aggregate."""
    deadline = time.monotonic() + 40
    while True:
        result = run(server, "--json")
        if result.returncode in (0, 1):
            document = as_json(result)
            stats = document["stats"]
            checkouts = stats["database_pools"]["default"]["checkouts"]
            if stats["processes"]["count"] >= 3 and checkouts >= server.requests_sent:
                return document
        if time.monotonic() > deadline:
            raise AssertionError(f"aggregate never caught up: rc={result.returncode}\n{result.stdout}\n{result.stderr}")
        time.sleep(1)


def test_json_is_the_aggregate_of_every_worker(server, published):
    stats = published["stats"]
    default = stats["database_pools"]["default"]
    per_process = stats["per_process"]
    worker_pids = set(server.worker_pids())
    reporting = {int(key.rsplit(":", 1)[1]) for key in per_process}
    assert worker_pids <= reporting  # every live worker publishes
    # Counters are sums over processes, peaks the max.
    sum_checkouts = sum(p["database_pools"]["default"]["checkouts"] for p in per_process.values()
                        if "default" in p["database_pools"])
    assert default["checkouts"] == sum_checkouts
    busy = [p for p in per_process.values() if p["database_pools"].get("default", {}).get("checkouts")]
    assert len(busy) >= 2, "traffic should have reached more than one worker"
    assert published["exit_status"] in (0, 1)
    assert published["health"]["status"] in ("healthy", "degraded", "unhealthy")


def test_table_shows_every_pool_and_the_guides_line(server, published):
    result = run(server)
    assert result.returncode in (0, 1), result.stderr
    out = result.stdout
    assert re.search(r"^default: \d+/\d+$", out, re.M), out
    for pool in published["stats"]["database_pools"].values():
        assert pool["pool"] in out
    for pool in published["stats"]["redis_pools"].values():
        assert pool["pool"] in out
    assert "Recommendations" in out
    assert "process(es) reporting" in out


def test_pool_filter(server, published):
    document = as_json(run(server, "--json", "--pool", "db_default"))
    assert list(document["stats"]["database_pools"]) == ["default"]
    assert document["stats"]["redis_pools"] == {}
    unknown = run(server, "--pool", "db_nope")
    assert unknown.returncode == 2
    assert "Unknown pool 'db_nope'" in unknown.stderr


def test_alerts_only(server, published):
    result = run(server, "--alerts")
    high = [r for r in published["stats"]["recommendations"] if r["severity"] == "high"]
    if result.returncode == 0:
        assert result.stdout.strip() == "OK: no high-severity finding."
    else:
        assert all(line.startswith("ALERT: ") for line in result.stdout.strip().splitlines()), result.stdout
        assert high or published["health"]["status"] != "healthy"


def test_watch_refreshes_until_ctrl_c(server, published):
    # faulthandler: if the command ever hangs after Ctrl-C, SIGABRT prints every thread's stack.
    process = subprocess.Popen(
        [sys.executable, "manage.py", "poolstats", "--json", "--watch", "0.5"], cwd=ROOT,
        env={**server.env, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, err = process.communicate(timeout=10)
            pytest.fail(f"poolstats --watch did not stop within 30 s of Ctrl-C; its threads:\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    documents = [json.loads(line) for line in lines]
    assert documents[0]["stats"]["generated_at"] <= documents[1]["stats"]["generated_at"]
    assert process.returncode in (0, 1), err
    assert "Traceback" not in err


def test_nothing_publishing_exits_2(server):
    # A Redis database no server writes to: reachable, but nobody publishes there.
    url = server.env.get("REDIS_URL", "redis://127.0.0.1:56379/0").rsplit("/", 1)[0] + "/13"
    result = run(server, env={"REDIS_URL": url})
    assert result.returncode == 2
    assert "No server process is publishing" in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_unreachable_exits_2(server):
    result = run(server, env={"REDIS_URL": "redis://127.0.0.1:9/0"})
    assert result.returncode == 2
    assert "Redis is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_unhealthy_replica_exits_1(server, published):
    assert server.env.get("DATABASE_REPLICA_URLS"), "the test servers always run with the replica"
    # A worker reports its replica pool once it has used or sampled it: on a busy
    # machine that can come after the primary's figures, so wait for it.
    deadline = time.monotonic() + 30
    while "replica1" not in as_json(run(server, "--json"))["stats"]["database_pools"]:
        assert time.monotonic() < deadline, "the replica never showed in the aggregate"
        time.sleep(1)
    services.stop("replica")
    try:
        # The command reads the health job's last result: the next check (every second here) says so.
        deadline = time.monotonic() + 30
        while (result := run(server, "--alerts")).returncode != 1:
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.5)
        assert "ALERT: db_replica1" in result.stdout
    finally:
        services.start("replica")


def test_help_documents_options_and_exit_status(server):
    result = run(server, "--help")
    assert result.returncode == 0
    for text in ("--json", "--watch SECONDS", "--pool NAME", "--alerts", "Exit status",
                 "0  every pool is healthy", "1  a high-severity", "2  no server process"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("recommendations", "health", "expected"),
    [
        ([], {"status": "healthy", "pools": {"db_default": {"healthy": True}}}, 0),
        ([{"pool": "db_default", "severity": "medium"}], {"status": "degraded", "pools": {}}, 0),
        ([{"pool": "db_default", "severity": "high"}], {"status": "healthy", "pools": {}}, 1),
        ([], {"status": "degraded", "pools": {"redis_main": {"healthy": False}}}, 1),
        ([], {"status": "unhealthy", "pools": {}}, 1),
        ([], None, 0),
    ],
)
def test_exit_status_rules(recommendations, health, expected):
    assert poolstats.exit_status({"recommendations": recommendations}, health) == expected


@pytest.mark.parametrize("argument", ["--watch=1e309", "--watch=inf", "--watch=nan", "--watch=-inf", "--watch=-1",
                                      "--watch=0", "--watch=abc", "--watch=86401"])
def test_a_bad_watch_interval_is_one_sentence(argument: str) -> None:
    """No server needed: the interval is refused before anything is read (1e309 was a sleep() traceback)."""
    result = subprocess.run([sys.executable, "manage.py", "poolstats", argument], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"CommandError: --watch needs a number of seconds greater than 0 and at most 86400, "
        f"not {argument.split('=', 1)[1]!r}."]
