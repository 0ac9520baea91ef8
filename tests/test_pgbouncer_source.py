"""PgBouncer as a pool source, against the real PgBouncer of scripts/devservices: its SHOW POOLS numbers in
our API, waiting clients, pauses and an unreachable console in health, login storms."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.test import Client

from connection_pools.cluster import reports
from connection_pools.insight.findings import findings
from connection_pools.service import connection_pool_service
from connection_pools.sources.pgbouncer_admin import read_admin
from tests.support import pgbouncer as pgb
from tests.support.admin_api import API, make_user
from tests.support.census import sample_pgbouncer
from tests.support.pg import wait_for
from tests.support.server import free_port

pytestmark = pytest.mark.django_db(databases=["default", "replica1"])

FIGURES = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


@pytest.fixture
def staff() -> Client:
    _, token = make_user(staff=True)
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def test_show_pools_numbers_are_in_get_stats_keyed_by_database_and_user(tier, staff):
    name = f"pgb-src-{uuid.uuid4().hex[:8]}"
    holder = pgb.connect("postgres", name)
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")  # holds a server connection: cl_active and sv_active
        for _ in range(20):  # read the console on both sides of ours until nothing moved
            before = read_admin(pgb.admin_url())
            reports.remember(sample_pgbouncer())
            body = staff.get(API + "stats").json()
            after = read_admin(pgb.admin_url())
            if [before.pool("postgres", "pools")] == [after.pool("postgres", "pools")] and \
                    before.stats_for("postgres").total_xact_count == after.stats_for("postgres").total_xact_count:
                break
        expected = after.pool("postgres", "pools")
        shown = body["pgbouncer_pools"]["postgres/pools"]
        assert {key: shown[key] for key in FIGURES} == {key: getattr(expected, key) for key in FIGURES}
        assert shown["cl_active"] >= 1 and shown["sv_active"] >= 1
        assert shown["total_xact_count"] == after.stats_for("postgres").total_xact_count
        assert shown["pool_mode"] == "transaction" and shown["pgbouncers"] == ["pgbouncer_1"]
        assert "pgbouncer/pgbouncer_stats" not in body["pgbouncer_pools"]  # the console's own pool is left out
        assert set(body) >= {"database_pools", "redis_pools", "recommendations"}  # the guide's keys stay
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_client_waiting_in_pgbouncer_raises_the_cross_tier_recommendation(tier):
    name = f"pgb-wait-{uuid.uuid4().hex[:8]}"
    holder = pgb.connect(pgb.SINGLE_DB, name + "-holder")
    done = threading.Event()
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")

        def wait() -> None:
            with pgb.connect(pgb.SINGLE_DB, name + "-waiter") as waiter:
                waiter.execute("SELECT 1")
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        report = wait_for(lambda: (lambda r: r if any(p.cl_waiting for p in r.pools) else None)(sample_pgbouncer()),
                          timeout=20)
        assert report, "no client ever waited"
        reports.remember(report)
        (rec,) = [r for r in findings(connection_pool_service.view()).recommendations if r.rule == "pgbouncer_waiting"]
        assert rec.pool == "pgbouncer_1" and rec.setting == "default_pool_size"
        assert rec.current_value == 1 and rec.suggested_value >= 2  # pools_single has pool_size=1
        assert f"{pgb.SINGLE_DB}/pools: cl_waiting" in rec.suggestion
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert done.wait(30)


def test_a_paused_database_makes_pgbouncer_unhealthy_and_the_status_degraded(tier, staff):
    pgb.console(f"PAUSE {pgb.SINGLE_DB}")
    try:
        reports.remember(sample_pgbouncer())
        body = staff.get(API + "health").json()
        check = body["pools"]["pgbouncer_1"]
        assert check["healthy"] is False and check["paused"] == [pgb.SINGLE_DB]
        assert check["kind"] == "pgbouncer" and f"paused: {pgb.SINGLE_DB}" in check["error"]
        assert body["status"] == "degraded"
    finally:
        pgb.console(f"RESUME {pgb.SINGLE_DB}")
    reports.remember(sample_pgbouncer())
    check = staff.get(API + "health").json()["pools"]["pgbouncer_1"]
    assert check["healthy"] is True and check["paused"] == []


def test_an_unreachable_console_is_an_unhealthy_pgbouncer_in_one_sentence(tier, staff):
    secret = "Sup3r-Secret"
    tier["configure"](PGBOUNCER={"ADMIN_URLS": (f"postgres://pgbouncer_stats:{secret}@127.0.0.1:{free_port()}/pgbouncer",),
                                 "TIMEOUT": 2.0})
    report = sample_pgbouncer()
    assert not report.reachable and report.error_kind == "unreachable" and secret not in report.error
    reports.remember(report)
    response = staff.get(API + "health")
    check = response.json()["pools"]["pgbouncer_1"]
    assert check["healthy"] is False and "Cannot connect" in check["error"] and secret not in response.content.decode()
    server = staff.get(API + "server").json()
    assert server["pgbouncers"]["pgbouncer_1"]["reachable"] is False


def test_many_clients_logging_in_at_once_are_a_login_storm(tier):
    name = f"pgb-storm-{uuid.uuid4().hex[:8]}"
    clients = [pgb.connect("postgres", name) for _ in range(25)]  # a client per request, as without a pool
    try:
        report = sample_pgbouncer()
        assert report.recent_logins >= 25
        reports.remember(report)
        rules = {r.rule for r in findings(connection_pool_service.view()).recommendations}
        assert "login_storm" in rules
    finally:
        for client in clients:
            client.close()


def test_server_connections_pgbouncer_holds_are_named_as_its_in_the_census(tier):
    from tests.support.census import sample_census

    holder = pgb.connect(pgb.SINGLE_DB, f"pgb-census-{uuid.uuid4().hex[:8]}")
    try:
        holder.execute("BEGIN")
        (server_pid,) = holder.execute("SELECT pg_backend_pid()").fetchone()
        report = sample_pgbouncer()
        assert server_pid in {pid for pids in report.server_pids.values() for pid in pids}
        reports.remember(report)
        census = sample_census()
        (owner,) = [o for o in census.owners if o.kind == "pooler"]
        assert owner.label.startswith("PgBouncer pgbouncer_1") and census.by_kind["pooler"] == owner.total >= 1
        # the transaction the client holds through PgBouncer runs on that server connection
        assert any(s.pid == server_pid and s.kind == "pooler" for s in census.idle_in_transaction)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
