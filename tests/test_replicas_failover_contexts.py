"""Replica failover at the connection layer, outside web requests: with the real replica stopped,
ORM reads in a plain ``manage.py shell`` -- main thread, a new thread, asyncio code, a forked
worker -- are all served (by the primary), and once the replica is back the same long-lived
process reads from it again after the cool-down, without the background sampler.

Also the read-your-writes pin outside requests: bounded by ``PIN_SECONDS`` and reset per task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest
from django.db import OperationalError, connections, transaction
from django.test import override_settings

from connection_pools.routing import PRIMARY, alias_for_read, note_write, replicas, reset_pinning, task
from tests.support import services
from tests.support.replication import REPLICA, _urls, fresh_routing_state, wait_for_replica
from tests.support.server import ROOT, database_urls_for_tests

pytestmark = pytest.mark.django_db(databases=["default", REPLICA], transaction=True)


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    with fresh_routing_state():
        yield


def run_shell_script() -> dict:
    env = {**os.environ, **database_urls_for_tests(), "DATABASE_REPLICA_COOLDOWN": "1"}
    command = [sys.executable, "manage.py", "shell", "-c", "import tests.support.failover_script"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"the script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.slow
def test_reads_outside_requests_survive_a_stopped_replica_and_return_to_it() -> None:
    wait_for_replica()
    services.stop("replica")
    try:
        result = run_shell_script()  # it starts the replica again half-way
    finally:
        services.start("replica")
    primary_port = int(connections[PRIMARY].settings_dict["PORT"])
    assert result["sampler_running"] is False and result["sampler_running_after"] is False
    for context, outcomes in result["down"].items():
        failed = [outcome for outcome in outcomes if not outcome["ok"]]
        assert not failed, f"{context}: {len(failed)} of {len(outcomes)} reads failed, e.g. {failed[:2]}"
        assert len(outcomes) == 10, context
        assert {outcome["port"] for outcome in outcomes} == {primary_port}, context
    # The first read was meant for the replica and found it down: out of rotation, the read moved.
    assert result["down"]["main"][0]["alias"] == REPLICA
    assert result["status_while_down"]["in_rotation"] is False
    assert result["status_while_down"]["fallbacks"] >= 1
    # Back: the same process (no sampler) reads from the replica again after the cool-down.
    back = result["back"]
    assert all(outcome["ok"] for outcome in back), back
    assert back[-1]["port"] == result["replica_port"] and back[-1]["alias"] == REPLICA
    assert result["status_after"] is True


@pytest.mark.slow
def test_a_replica_connection_cut_between_reads_is_retried_outside_requests() -> None:
    """A connection the replica's wrapper holds dies (its backend is terminated): the next read
    in a command-like context runs again on a fresh connection instead of failing."""
    from project.workload.models import Item

    wait_for_replica()
    wrapper = connections[REPLICA]
    list(Item.objects.using(REPLICA).all()[:1])
    pid = wrapper.connection.info.backend_pid
    with psycopg.connect(_urls()[1][0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]:
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.05)
    retried = list(Item.objects.using(REPLICA).all()[:1])
    assert retried is not None
    assert wrapper.connection.info.backend_pid != pid
    # The same cut inside a transaction is the caller's to handle: never retried silently.
    with pytest.raises(OperationalError), transaction.atomic(using=REPLICA):
        list(Item.objects.using(REPLICA).all()[:1])
        inside = wrapper.connection.info.backend_pid
        with psycopg.connect(_urls()[1][0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [inside])
            while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [inside]).fetchone()[0]:
                time.sleep(0.05)
        list(Item.objects.using(REPLICA).all()[:1])
    assert wrapper.connection is None or wrapper.connection.info.backend_pid != inside


def test_a_write_outside_requests_pins_reads_for_pin_seconds_only_and_task_resets_it() -> None:
    replicas_config = {**replicas.replica_settings(), "PIN_SECONDS": 30.0}
    with override_settings(CONNECTION_POOLS={"REPLICAS": replicas_config}):
        assert alias_for_read() == REPLICA
        note_write()
        assert alias_for_read() == PRIMARY  # read-your-writes in this context
        reset_pinning()
        assert alias_for_read() == REPLICA
        with task():
            assert alias_for_read() == REPLICA
            note_write()
            assert alias_for_read() == PRIMARY
        assert alias_for_read() == REPLICA  # the task's pin did not outlive it

        @task()
        def job() -> str:
            note_write()
            return alias_for_read()

        assert job() == PRIMARY and alias_for_read() == REPLICA
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**replicas_config, "PIN_SECONDS": 0.2}}):
        note_write()
        assert alias_for_read() == PRIMARY
        time.sleep(0.3)
        assert alias_for_read() == REPLICA  # bounded: a worker that wrote once does not read from the primary forever


@pytest.mark.slow
def test_a_lent_connection_goes_back_to_the_primary_pool_and_serves_the_primary_again() -> None:
    """While the replica is down its wrapper borrows a primary connection; closing the wrapper
    returns it to the primary's pool, unmarked, and the primary's own wrapper uses it as usual."""
    from connection_pools.backends.postgresql.base import live_pool
    from connection_pools.backends.postgresql.failover import lent_to
    from project.workload.models import Item

    wait_for_replica()
    list(Item.objects.using(PRIMARY).all()[:1])
    connections[PRIMARY].close()
    primary_pool = live_pool(PRIMARY)
    assert primary_pool is not None
    out_before = len(primary_pool.leases)
    services.stop("replica")
    try:
        connections[REPLICA].close()
        list(Item.objects.using(REPLICA).all()[:1])
        lent = connections[REPLICA].connection
        assert lent_to(lent) == REPLICA and lent.info.port == int(connections[PRIMARY].settings_dict["PORT"])
        assert len(primary_pool.leases) == out_before + 1
        connections[REPLICA].close()
        assert len(primary_pool.leases) == out_before and lent_to(lent) is None
        list(Item.objects.using(PRIMARY).all()[:1])  # LIFO: most likely the very same connection
        assert lent_to(connections[PRIMARY].connection) is None
    finally:
        services.start("replica")
        connections[REPLICA].close()


def test_a_read_served_by_the_primary_after_two_dead_replicas_leaves_the_request_unmarked() -> None:
    """Each failed attempt marks the request as having met an unavailable database (a 500 then
    becomes a 503); the primary serving the read undoes the marks of the own attempt and of every
    fallback replica that failed too, not only the first."""
    from connection_pools.core import context
    from tests.support.pg import dispose, make_wrapper
    from tests.support.server import free_port

    # Two replicas nobody listens for, configured as if in DATABASES.
    dead = [make_wrapper({}, port=free_port()) for _ in range(2)]
    for wrapper in dead:
        connections.settings[wrapper.alias] = wrapper.settings_dict
        connections[wrapper.alias] = wrapper
    replicas_config = {**replicas.replica_settings(), "ALIASES": [wrapper.alias for wrapper in dead]}
    try:
        with override_settings(CONNECTION_POOLS={"REPLICAS": replicas_config}):
            request, token = context.begin("/read/")
            try:
                dead[0].connect()  # (Django's test case would refuse ensure_connection() on an undeclared alias)
                assert dead[0].connection.info.port == int(connections[PRIMARY].settings_dict["PORT"])
                assert replicas.replica_status()[dead[1].alias]["in_rotation"] is False  # the second was tried too
                assert request.db_failure is None and request.failed_aliases == []
            finally:
                context.end(request, token)
    finally:
        for wrapper in dead:
            dispose(wrapper)
            del connections[wrapper.alias]
            del connections.settings[wrapper.alias]
