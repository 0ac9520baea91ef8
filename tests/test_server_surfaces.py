"""The server tier's surfaces: GET server (staff only, its schema), pgbouncer_pools and PgBouncer health in the
existing responses' schemas, ``poolstats --server``, and /metrics (promtool-clean, still no database connection)."""

from __future__ import annotations

import io
import json
import subprocess
import threading

import jsonschema
import psycopg
import pytest
from django.core.management import call_command
from django.test import Client

from connection_pools.cluster import publish, reports, rollup
from connection_pools.cluster.store import store
from connection_pools.insight import server_tier
from tests.support import pgbouncer
from tests.support.admin_api import API, make_user
from tests.support.census import plain_connect, sample_census
from tests.support.server import free_port
from tests.test_api_schema import response_schema

pytestmark = pytest.mark.django_db(databases=["default", "replica1"])


@pytest.fixture
def staff() -> Client:
    _, token = make_user(staff=True)
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


@pytest.fixture
def sampled(tier):
    """One run of the server-tier job (this process holds its lease): census of both servers, PgBouncer
    (with a client of its own, so it lists a pool even when no test before this one went through it)."""
    # Its own database, not the test database (which a server connection kept by PgBouncer would
    # stop from being dropped at the end).
    with pgbouncer.connect("postgres", "surfaces-client") as client:
        client.execute("SELECT 1")
        taken = server_tier.job()
    pgbouncer.release_servers("postgres")
    assert {r.name for r in taken} == {"server_default", "server_replica1", "pgbouncer_1"}
    return tier


def test_get_server_is_for_staff_only(client):
    assert client.get(API + "server").status_code == 401
    _, token = make_user(staff=False)
    assert Client(HTTP_AUTHORIZATION=f"Token {token}").get(API + "server").status_code == 403


@pytest.mark.parametrize(("path", "query"), [("server", ""), ("server", "?minutes=5"), ("stats", ""), ("health", "")])
def test_responses_with_the_server_tier_match_their_schema_exactly(sampled, staff, path, query):
    publish.publish()
    schema = staff.get(API + "schema/").json()
    response = staff.get(API + path + query)
    assert response.status_code in (200, 503), response.content
    body = response.json()
    jsonschema.validate(body, response_schema(schema, path, "get", response.status_code))
    if path == "server":
        assert {"server_default", "server_replica1"} <= set(body["servers"]) and body["pgbouncers"]
        assert bool(body["history"]) == bool(query)  # each server's points, only when asked
    if path == "stats":
        assert body["pgbouncer_pools"]  # the new key was exercised
    if path == "health":
        assert body["pools"]["pgbouncer_1"]["kind"] == "pgbouncer"


@pytest.mark.parametrize("minutes", ["abc", "-1", "nan", "1e9"])
def test_bad_minutes_are_a_400_that_says_what_is_accepted(staff, minutes):
    response = staff.get(API + "server", {"minutes": minutes})
    assert response.status_code == 400
    assert "minutes" in response.json()["detail"]


def test_poolstats_server_prints_the_census_and_exits_by_its_findings(sampled, settings):
    out = io.StringIO()
    call_command("poolstats", "--server", stdout=out)  # no high finding: exit 0 (no SystemExit)
    text = out.getvalue()
    assert "Server 127.0.0.1:" in text and "(server_default, primary; aliases default)" in text
    assert "by state: active" in text and "PgBouncer 127.0.0.1:" in text and "cl_active" in text
    out = io.StringIO()
    call_command("poolstats", "--server", "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert document["exit_status"] == 0 and "server_default" in document["server"]["servers"]
    sampled["configure"](PGBOUNCER={"ADMIN_URLS": (f"postgres://u:p@127.0.0.1:{free_port()}/pgbouncer",)})
    server_tier.forget()
    reports.forget()
    store.clear()
    server_tier.job()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("poolstats", "--server", stdout=out)
    assert exited.value.code == 1 and "UNREACHABLE" in out.getvalue()


def test_poolstats_server_without_a_census_says_so(tier):
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("poolstats", "--server", stderr=err)
    assert exited.value.code == 2 and "No server census yet" in err.getvalue()


def test_metrics_show_the_server_tier_promtool_clean_without_touching_the_database(sampled, monkeypatch):
    publish.publish()
    assert rollup.roll_up()
    opened, reads = [], []
    real_connect, real_call = psycopg.connect, store.call
    scraper = threading.current_thread()  # the test client serves the scrape on this thread

    def connect(*args, **kwargs):
        # Only the scrape's own connections and reads count: this process's background jobs (started by
        # its first request: health probes, publishing, the rollup) may connect and read at any moment.
        if threading.current_thread() is scraper:
            opened.append(args)
        return real_connect(*args, **kwargs)

    def call(func):
        if threading.current_thread() is scraper:
            reads.append(func)
        return real_call(func)

    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.setattr(store, "call", call)
    response = Client().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert opened == [] and len(reads) == 1  # the reports came in the same round trip as the rollup
    assert 'connection_pool_server_census_ok{alias="default",server="127.0.0.1:' in text
    assert 'connection_pool_server_owner_connections{alias="default",owner="ours"' in text
    assert 'connection_pool_pgbouncer_up{pgbouncer="pgbouncer_1"} 1.0' in text
    assert "connection_pool_pgbouncer_cl_active{" in text and "connection_pool_pgbouncer_transactions_total{" in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_has_a_server_section(staff):
    user, _ = make_user(staff=True)
    browser = Client()
    browser.force_login(user)
    page = browser.get("/admin/connection-pools/").content.decode()
    assert 'id="cp-server"' in page


def test_a_census_leak_is_listed_by_poolstats(sampled, monkeypatch):
    from connection_pools.backends.postgresql.attribution import application_name
    from connection_pools.sources import census_summary

    sampled["configure"](CENSUS={"LEAK_GRACE_SECONDS": 0.0})
    monkeypatch.setattr(census_summary, "CLOCK_SLACK", 0.0)
    leaked = plain_connect(application_name("default", prefix="django"))
    try:
        (pid,) = leaked.execute("SELECT pg_backend_pid()").fetchone()
        publish.publish()
        sample_census()
        reports.remember(sample_census())
        out = io.StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command("poolstats", "--server", stdout=out)
        assert exited.value.code == 1  # a leak is a high-severity finding
        assert f"pid {pid}" in out.getvalue() and "unknown_to_pool" in out.getvalue()
    finally:
        leaked.close()
