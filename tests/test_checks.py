"""System checks: the pools' cluster-wide maximum against the real server's max_connections
(connection_pools.W201), the sizes' bounds (E001/E002) and the tuner's bounds (E005)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

from connection_pools import checks
from connection_pools.cluster.store import store
from connection_pools.conf.aliases import spec_for
from connection_pools.insight.health import check_database
from tests.support.server import ROOT, GunicornServer

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)


def available(alias: str = "default") -> int:
    _check, limits = check_database(spec_for(alias), 2.0)
    assert limits is not None
    return limits.available


def budget_warnings(databases: list[str] | None = ("default",)) -> list:
    found = checks.check_server_connection_budget(databases=None if databases is None else list(databases))
    return [message for message in found if message.id == "connection_pools.W201"]


def sizes(pool_size: int, max_overflow: int, **extra: object) -> override_settings:
    # Merged with the test settings: the defaults' Redis port is not this checkout's.
    current = settings.CONNECTION_POOLS
    return override_settings(CONNECTION_POOLS={
        **current, "DATABASE_POOL": {**current["DATABASE_POOL"], "pool_size": pool_size, "max_overflow": max_overflow},
        **extra})


def test_the_default_sizes_fit() -> None:
    assert 30 <= available()  # else this test says nothing
    assert budget_warnings() == []


def test_one_process_above_max_connections_warns_with_the_numbers_and_a_hint() -> None:
    pool_size = available() // 2 + 1
    with sizes(pool_size, pool_size):
        (warning,) = budget_warnings()
    total = 2 * pool_size
    assert f"1 x {total} = {total} connections to" in warning.msg
    assert f"more than the {available()} it accepts" in warning.msg
    assert "DATABASE_POOL_SIZE" in warning.hint and "PgBouncer" in warning.hint


def test_the_expected_process_count_multiplies_the_maximum() -> None:
    processes = available() // 30 + 1
    with sizes(10, 20, PROCESSES=processes):
        (warning,) = budget_warnings()
    assert f"{processes} x 30 = {processes * 30}" in warning.msg
    assert "CONNECTION_POOLS['PROCESSES']" in warning.msg


def test_without_databases_the_check_does_not_connect() -> None:
    with sizes(900, 900):
        assert budget_warnings(databases=None) == []


def test_manage_py_check_database_shows_the_warning() -> None:
    env = {**os.environ, "DATABASE_POOL_SIZE": "1000", "DATABASE_POOL_OVERFLOW": "0"}
    command = [sys.executable, "manage.py", "check"]
    with_database = subprocess.run([*command, "--database", "default"], cwd=ROOT, env=env, capture_output=True,
                                   text=True, timeout=60)
    assert "connection_pools.W201" in with_database.stderr + with_database.stdout
    plain = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "W201" not in plain.stderr + plain.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("quiet_background")
def test_the_processes_publishing_now_count_when_more_than_the_setting() -> None:
    # quiet_background: this process's own publisher (started by an earlier test's request) would
    # publish under the overridden KEY_PREFIX too and count as one more process.
    with GunicornServer(workers=3, threads=2) as server:
        server.spread_traffic(min_workers=3)
        per_process = available() // 3 + 1
        with sizes(per_process, 0, KEY_PREFIX=server.key_prefix):
            deadline = time.monotonic() + 30
            while len(store.read_snapshots().snapshots) < 3:
                assert time.monotonic() < deadline, "the workers never published"
                time.sleep(0.2)
            while True:  # a worker gunicorn replaced keeps its snapshot until the TTL: count what is there
                publishing = len(store.read_snapshots().snapshots)
                (warning,) = budget_warnings()
                if publishing == len(store.read_snapshots().snapshots):
                    break
                assert time.monotonic() < deadline, "the publishing processes never settled"
    assert publishing >= 3
    assert f"{publishing} x {per_process} = {publishing * per_process}" in warning.msg
    assert "processes publishing statistics now" in warning.msg


@pytest.mark.parametrize(("section", "values", "check_id"), [
    ("DATABASE_POOL", {"pool_size": 5000}, "connection_pools.E001"),
    ("DATABASE_POOL", {"max_overflow": 1001}, "connection_pools.E002"),
    ("TUNER", {"MIN_POOL_SIZE": 20, "MAX_POOL_SIZE": 10}, "connection_pools.E005"),
    ("TUNER", {"MAX_OVERFLOW": -1}, "connection_pools.E005"),
])
def test_bounds_of_the_settings_dict(section: str, values: dict, check_id: str) -> None:
    current = settings.CONNECTION_POOLS
    with override_settings(CONNECTION_POOLS={**current, section: {**current[section], **values}}):
        found = [message for message in run_checks() if message.id == check_id]
    assert len(found) == 1 and found[0].hint
