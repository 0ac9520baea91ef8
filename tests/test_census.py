"""The server census against the real primary and replica: what pg_stat_activity holds, who owns it,
the server's limits, idle-in-transaction sessions, lock waiters and leaked connections."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import replace

import psycopg
import pytest

from connection_pools.backends.postgresql.attribution import application_name, parse
from connection_pools.backends.postgresql.live import get_pool
from connection_pools.cluster import publish, reports
from connection_pools.cluster.store import store
from connection_pools.core.context import RequestInfo, current_request
from connection_pools.core.snapshots import ProcessSnapshot
from connection_pools.insight import server_advice, server_tier
from connection_pools.insight.findings import findings
from connection_pools.service import connection_pool_service
from connection_pools.sources import census_summary
from connection_pools.sources.base import SampleContext
from connection_pools.sources.census import CensusSource
from tests.support.census import census_source, plain_connect, running, sample_census
from tests.support.pg import wait_for
from tests.support.server import free_port

pytestmark = pytest.mark.django_db(databases=["default", "replica1"])

COUNT_SQL = """
SELECT CASE WHEN pid = pg_backend_pid() THEN 'idle' ELSE coalesce(state, '') END, backend_type, application_name
  FROM pg_stat_activity
 WHERE application_name <> 'connection_pools.census'
"""


def independent_count(conn: psycopg.Connection) -> dict[str, int]:
    """pg_stat_activity counted by the test itself: its own backend included (idle, as the census sees it
    between the test's queries), the census's left out."""
    counts: dict[str, int] = {}
    for state, backend_type, name in conn.execute(COUNT_SQL).fetchall():
        if backend_type == "client backend":
            key = {"idle in transaction": "idle_in_transaction",
                   "idle in transaction (aborted)": "idle_in_transaction_aborted"}.get(state, state or "other")
            key = key if key in ("active", "idle", "idle_in_transaction", "idle_in_transaction_aborted") else "other"
            counts[key] = counts.get(key, 0) + 1
            kind = "ours" if parse(name) else "probe" if name.startswith("connection_pools.") else "other"
        else:
            kind = "replication" if backend_type == "walsender" else "background"
        counts[f"kind:{kind}"] = counts.get(f"kind:{kind}", 0) + 1
    return counts


def census_count(census) -> dict[str, int]:
    counts = {key: value for key, value in census.states.to_wire().items() if value}
    counts.update({f"kind:{kind}": value for kind, value in census.by_kind.items() if value})
    return counts


@pytest.mark.parametrize("name", ["server_default", "server_replica1"])
def test_the_census_equals_pg_stat_activity_counted_independently(tier, name):
    source = census_source(name)
    params = {**source._params(), "application_name": "census-tests-count"}
    with psycopg.connect(**params) as conn:
        conn.execute("SELECT 1")
        for _ in range(20):  # the server is shared with background work: retry until nothing moved
            before = independent_count(conn)
            census = sample_census(name)
            if independent_count(conn) == before:
                break
        else:
            pytest.fail("pg_stat_activity never held still for one census")
        limits = dict(conn.execute("SELECT name, setting::int FROM pg_settings WHERE name IN "
                                   "('max_connections', 'superuser_reserved_connections')").fetchall())
    assert census.ok, census.error
    assert census_count(census) == before
    assert census.max_connections == limits["max_connections"]
    assert census.superuser_reserved == limits["superuser_reserved_connections"]
    assert census.headroom == census.available - census.connections
    assert sum(owner.total for owner in census.owners) == sum(census.by_kind.values())  # every owner listed here
    if name == "server_default":
        assert census.by_kind["replication"] >= 1  # the streaming replica's walsender


def test_our_connections_are_owned_by_this_process_and_alias(tier):
    pool = get_pool("default")
    assert pool.wait_ready(10)
    publish.publish()
    census = sample_census()
    mine = [o for o in census.owners if o.kind == "ours" and o.pid == os.getpid() and o.alias == "default"]
    assert len(mine) == 1
    assert mine[0].total >= pool.open_count() and mine[0].reporting is True
    assert mine[0].label == f"{socket.gethostname()} pid {os.getpid()} (default)"
    assert census.leaks == ()  # the pool knows every connection it opened


@pytest.mark.django_db(databases=["default", "replica1"], transaction=True)
def test_an_idle_in_transaction_session_shows_with_its_owner_view_and_a_recommendation(tier, client):
    tier["configure"](CENSUS={"IDLE_IN_TRANSACTION_SECONDS": 0.3}, LONG_HOLD_SECONDS=0.1)
    pool = get_pool("default")
    token = current_request.set(RequestInfo(path="/reports/monthly/", view="reports.views.monthly"))
    try:
        conn = pool.getconn()
    finally:
        current_request.reset(token)
    try:
        conn.autocommit = False
        conn.execute("SELECT 1")  # a transaction left open, as a view that waits on something else would
        pid = conn.info.backend_pid
        time.sleep(0.4)  # past both thresholds
        publish.publish()  # the long hold (with its request) is in this process's snapshot
        census = sample_census()
        session = census.longest_idle_in_transaction
        assert session is not None and session.pid == pid, census.idle_in_transaction
        assert session.seconds >= 0.3 and session.state == "idle in transaction"
        assert session.owner == f"{socket.gethostname()} pid {os.getpid()} (default)"
        assert (session.request, session.view) == ("GET /reports/monthly/ (view reports.views.monthly)",
                                                    "reports.views.monthly")
        assert session.query is None  # query text is off by default
        reports.remember(census)
        (rec,) = [r for r in findings(connection_pool_service.view()).recommendations
                  if r.rule == "idle_in_transaction"]
        assert rec.pool == "db_default" and rec.setting == "idle_in_transaction_session_timeout"
        assert f"pid {pid}" in rec.suggestion and "reports.views.monthly" in rec.suggestion
        assert rec.suggested_value == server_advice.MIN_IDLE_TIMEOUT_MS and rec.current_value == 0
    finally:
        conn.rollback()
        conn.autocommit = True
        pool.putconn(conn)


def test_a_connection_opened_outside_the_pool_under_our_name_is_a_leak(tier, monkeypatch):
    tier["configure"](CENSUS={"LEAK_GRACE_SECONDS": 0.0})
    monkeypatch.setattr(census_summary, "CLOCK_SLACK", 0.0)  # no need to wait out the clock tolerance
    assert get_pool("default").wait_ready(10)
    leaked = plain_connect(application_name("default", prefix="django"))
    try:
        (leaked_pid,) = leaked.execute("SELECT pg_backend_pid()").fetchone()
        time.sleep(0.01)  # its backend started before the snapshot below
        publish.publish()
        later = plain_connect(application_name("default", prefix="django"))  # after the snapshot: not judged yet
        try:
            first = sample_census()
            assert first.leaks == ()  # a suspect once is not a leak (it may be in transit)
            second = sample_census()
            assert [(leak.pid, leak.reason) for leak in second.leaks] == [(leaked_pid, "unknown_to_pool")]
            assert second.leaks[0].process_pid == os.getpid() and second.leaks[0].alias == "default"
            reports.remember(second)
            recs = [r for r in findings(connection_pool_service.view()).recommendations
                    if r.rule == "leaked_connections"]
            assert len(recs) == 1 and recs[0].severity == "high" and f"pid {leaked_pid}" in recs[0].suggestion
        finally:
            later.close()
    finally:
        leaked.close()


def test_connections_of_a_process_that_stopped_reporting_are_leaks(tier):
    tier["configure"](CENSUS={"LEAK_GRACE_SECONDS": 0.0})
    gone_pid = 4_000_000 + os.getpid() % 100_000  # no such process: it "reported" below, then stopped
    ghost = ProcessSnapshot(host=socket.gethostname(), pid=gone_pid, taken_at=time.time())
    store.publish(ghost)
    store.forget_process(ghost.key)  # its snapshot is gone, the cluster still remembers it reported
    conn = plain_connect(application_name("default", prefix="django", pid=gone_pid))
    try:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        sample_census()
        census = sample_census()
        assert [(leak.pid, leak.reason) for leak in census.leaks] == [(pid, "stopped_reporting")]
        (owner,) = [o for o in census.owners if o.pid == gone_pid]
        assert owner.reporting is False
    finally:
        conn.close()


def test_a_backend_waiting_on_a_lock_names_who_blocks_it(tier, monkeypatch):
    monkeypatch.setattr(server_advice, "BLOCKED_SECONDS", 0.0)
    blocker = plain_connect("census-blocker")
    try:
        blocker.execute("BEGIN")
        blocker.execute("SELECT pg_advisory_xact_lock(4242424242)")
        (blocker_pid,) = blocker.execute("SELECT pg_backend_pid()").fetchone()
        with running("SELECT pg_advisory_xact_lock(4242424242)", "census-waiter") as waiter_pid:
            census = wait_for(lambda: (lambda c: c if c.blocked else None)(sample_census()), timeout=10)
            assert census, "the waiter never showed as blocked"
            (blocked,) = [b for b in census.blocked if b.session.pid == waiter_pid]
            assert blocked.blocked_by == (blocker_pid,)
            assert blocked.blockers[0].startswith("census-blocker ")
            assert blocked.session.wait_event == "Lock:advisory"
            rec = server_advice.blocked_backends(census)
            assert rec is not None and f"pid {waiter_pid}" in rec.suggestion and f"pid {blocker_pid}" in rec.suggestion
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def test_the_longest_query_has_no_text_unless_a_setting_shows_it_cut(tier):
    marker = "SELECT pg_sleep(30) /* census-secret-marker */"
    with running(marker, "census-sleeper") as pid:
        wait_for(lambda: any(s.pid == pid and s.state == "active" for s in
                             [sample_census().longest_query] if s), timeout=10)
        hidden = sample_census().longest_query
        assert hidden is not None and hidden.pid == pid and hidden.query is None
        tier["configure"](CENSUS={"QUERY_TEXT_LENGTH": 12})
        shown = sample_census().longest_query
        assert shown is not None and shown.pid == pid and shown.query == marker[:12]
        reports.remember(sample_census())
        body = connection_pool_service.server()
        assert body["servers"]["server_default"]["longest_query"]["query"] == marker[:12]
        tier["configure"](CENSUS={"QUERY_TEXT_LENGTH": 0})  # the reader's setting hides it too
        body = connection_pool_service.server()
        assert body["servers"]["server_default"]["longest_query"]["query"] is None


def test_a_server_that_cannot_be_reached_is_one_sentence_without_the_password(tier):
    port = free_port()

    class Unreachable(CensusSource):
        def _params(self):
            return {**super()._params(), "port": port, "password": "Sup3r-Secret"}

    census = Unreachable(census_source().spec, ("default",)).sample(SampleContext())
    assert not census.ok and census.error.startswith("The census of ")
    assert "\n" not in census.error and "Sup3r-Secret" not in census.error and "Traceback" not in census.error


def test_one_process_samples_for_the_cluster_and_keeps_its_connection(tier):
    assert store.hold_lease(server_tier.LEASE, "another-host:1", ttl=30)
    assert server_tier.job() == []  # another process holds the lease: nothing sampled here
    store.release_lease(server_tier.LEASE, "another-host:1")
    taken = server_tier.job()
    assert {report.name for report in taken} >= {"server_default", "server_replica1"}
    assert census_source().connection.is_open  # the holder keeps its dedicated connection
    assert server_tier.job() == []  # not due again within its interval
    body = connection_pool_service.server()
    assert set(body["servers"]) >= {"server_default", "server_replica1"}
    server_tier.release()
    assert not census_source().connection.is_open


def test_the_store_keeps_the_freshest_report_of_each_server(tier):
    newer = sample_census()
    older = replace(newer, taken_at=newer.taken_at - 60, owners=())
    assert reports.remember(newer)
    assert not reports.remember(older)  # a slower sampler finishing late does not win
    reports.forget()
    (stored,) = [r for r in connection_pool_service.view().census() if r.server == newer.server]
    assert stored.taken_at == newer.taken_at and stored.owners


def test_reading_the_server_tier_samples_nothing(tier, monkeypatch):
    reports.remember(sample_census())
    opened = []
    real = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: opened.append(a) or real(*a, **k))
    before = threading.active_count()
    body = connection_pool_service.server()
    assert body["servers"]["server_default"]["ok"] and opened == []
    assert threading.active_count() == before
