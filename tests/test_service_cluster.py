"""Statistics across processes: gunicorn with 3 workers against the real servers.

Traffic spread over the workers adds up exactly in the stats endpoint (aggregate =
sum of the per-process breakdown = the requests we made); reset-stats zeroes every
worker; a killed worker drops out after SNAPSHOT_TTL; the guide's monitoring script
(only its import line changed) runs one loop iteration and prints real numbers.

Every admin API request makes exactly one database checkout (the token lookup),
which the expected counts include.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support import server as server_support
from tests.support.admin_api import API, make_user, unique_prefix
from tests.support.server import ROOT, GunicornServer
from tests.support.traffic import request

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PREFIX = unique_prefix("cluster")
ENV = {
    "CONNECTION_POOLS_KEY_PREFIX": PREFIX,
    "CONNECTION_POOLS_PUBLISH_INTERVAL": "0.3",
    "CONNECTION_POOLS_SNAPSHOT_TTL": "3",
    "DATABASE_POOL_SIZE": "4",
    "DATABASE_POOL_OVERFLOW": "4",
}
REQUESTS = 90


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any):
    with django_db_blocker.unblock(), GunicornServer(workers=3, threads=4, env=ENV) as running:
        yield running


class Admin:
    """The admin API of a live server, called with a staff token; counts its own requests."""

    def __init__(self, server: GunicornServer) -> None:
        _, token = make_user(staff=True)
        self.server = server
        self.headers = {"Authorization": f"Token {token}", "Connection": "close"}
        self.calls = 0
        deadline = time.monotonic() + 15
        while True:  # the token must have reached the replica that serves the lookup
            status, _, body, _ = request("GET", server.url + API + "config", headers=self.headers)
            self.calls += 1
            if status == 200 or time.monotonic() > deadline:
                assert status == 200, body
                break
            time.sleep(0.1)

    def call(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> tuple[int | None, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        status, _, raw, error = request(method, self.server.url + API + endpoint, data=data, headers=headers)
        self.calls += 1
        assert status is not None, error
        return status, json.loads(raw) if raw else None

    def stats(self) -> dict[str, Any]:
        status, body = self.call("GET", "stats?per_process=1")
        assert status == 200, body
        return body

    def reset(self) -> int:
        status, body = self.call("POST", "reset-stats")
        assert status == 200 and body["scope"] == "cluster", body
        self.calls = 0  # the reset zeroed whatever came before, its own lookup included
        return body["epoch"]


def db_checkouts(pools: dict[str, Any]) -> int:
    return sum(pool["checkouts"] for pool in pools["database_pools"].values())


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def all_workers_at(admin: Admin, epoch: int, server: GunicornServer) -> dict[str, Any] | None:
    stats = admin.stats()
    pids = {p["pid"] for p in stats["processes"]["list"] if p["epoch"] >= epoch}
    return stats if pids >= set(server.worker_pids()) and len(server.worker_pids()) == 3 else None


def settled_baseline(admin: Admin) -> int:
    """The cluster's checkouts once every worker has published everything (a worker publishes
    every 0.3 s: two readings 0.6 s apart that differ only by the second's own lookup)."""
    def steady() -> int | None:
        first = db_checkouts(admin.stats())
        time.sleep(0.6)
        second = db_checkouts(admin.stats())
        return second if second == first + 1 else None

    baseline = wait_until(steady, 20, "the counts to settle")
    admin.calls = 0
    return baseline


def test_aggregate_equals_the_sum_of_the_workers_and_reset_zeroes_them_all(server: GunicornServer) -> None:
    admin = Admin(server)
    epoch = admin.reset()
    wait_until(lambda: all_workers_at(admin, epoch, server), 20, "every worker to honour the reset")
    # A worker resets at its next publish, dropping what it counted in between: start from a settled count.
    baseline = settled_baseline(admin)

    # Spread over the workers: concurrent clients, a new connection per request.
    paths = ["/one-query/", "/slow/?seconds=0.02"] * (REQUESTS // 2)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda p: request("GET", server.url + p, headers={"Connection": "close"})[0],
                                 paths))
    assert statuses == [200] * REQUESTS

    def settled() -> dict[str, Any] | None:
        stats = admin.stats()
        # Every request we made is one checkout: the traffic, plus each admin call's token lookup.
        return stats if db_checkouts(stats) == baseline + REQUESTS + admin.calls else None

    stats = wait_until(settled, 20, "the workers to publish the traffic")
    assert stats["source"] == "cluster" and stats["redis_available"] is True
    assert stats["processes"]["count"] == 3
    per_process = stats["per_process"]
    assert {int(key.rsplit(":", 1)[1]) for key in per_process} == set(server.worker_pids())
    # The aggregate is the sum of the breakdown, pool by pool and counter by counter.
    for alias, pool in stats["database_pools"].items():
        parts = [p["database_pools"][alias] for p in per_process.values() if alias in p["database_pools"]]
        for key in ("checkouts", "connections_created", "connections_closed", "connection_errors", "timeouts"):
            assert pool[key] == sum(part[key] for part in parts), (alias, key)
        assert pool["wait_time"]["count"] == sum(part["wait_time"]["count"] for part in parts)
        assert pool["pool_size"] == sum(part["pool_size"] for part in parts)
        assert pool["config"]["pool_size"] == 4
    default = stats["database_pools"]["default"]
    assert default["checkouts"] >= REQUESTS
    busy = [key for key, p in per_process.items() if p["database_pools"].get("default", {}).get("checkouts", 0)]
    assert len(busy) >= 2, f"traffic did not spread over the workers: {per_process.keys()} busy={busy}"

    # reset-stats zeroes all three at once (before they even honour it), then for good.
    epoch = admin.reset()
    right_after = admin.stats()
    assert len(right_after["per_process"]) == 3
    for key, part in right_after["per_process"].items():
        assert db_checkouts(part) <= 1, key  # at most this stats request's own token lookup
        assert part["database_pools"]["default"]["wait_time"]["count"] <= 1
    honoured = wait_until(lambda: all_workers_at(admin, epoch, server), 20, "every worker to reset")
    # A worker resets at its next publish, so a lookup it served in between may be dropped.
    assert db_checkouts(honoured) <= admin.calls


def test_a_killed_worker_drops_out_after_its_ttl(server: GunicornServer) -> None:
    admin = Admin(server)
    wait_until(lambda: admin.stats()["processes"]["count"] == 3, 20, "three reporting workers")
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)

    def gone() -> bool:
        pids = {p["pid"] for p in admin.stats()["processes"]["list"]}
        return victim not in pids and len(pids) == 3  # and its replacement reports

    wait_until(gone, 30, "the dead worker to drop out")


def test_the_guides_monitoring_script_prints_real_numbers(server: GunicornServer) -> None:
    admin = Admin(server)
    stats = wait_until(lambda: (s := admin.stats())["processes"]["count"] == 3 and s, 20, "three workers")
    env = {**os.environ, **server_support.database_urls_for_tests(), **ENV, "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "project.settings"}
    lines: list[str] = []
    with subprocess.Popen([sys.executable, str(ROOT / "scripts" / "monitor_pools.py")], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL) as script:
        try:
            assert script.stdout is not None and script.stderr is not None
            while len(lines) < len(stats["database_pools"]):
                line = script.stdout.readline()
                assert line, f"the script ended early: {script.stderr.read()}"
                if not line.startswith("ALERT"):
                    lines.append(line.strip())
        finally:
            script.kill()
    printed = {m.group(1): (int(m.group(2)), int(m.group(3)))
               for m in (re.fullmatch(r"(\w+): (\d+)/(\d+)", line) for line in lines) if m}
    assert set(printed) == set(stats["database_pools"]), lines
    # The same numbers as the API's: pool_size summed over the workers' live pools (DATABASE_POOL_SIZE=4 each).
    now = admin.stats()["database_pools"]["default"]
    assert printed["default"][1] == now["pool_size"] and now["pool_size"] in (4, 8, 12)
    assert 0 <= printed["default"][0] <= now["max_size"]
