"""connection_pools.pgbouncer_admin: the parsers on captured and synthetic rows of several
PgBouncer versions, and the reader against the real PgBouncer of scripts/devservices."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from decimal import Decimal

import psycopg
import pytest

from connection_pools import pgbouncer_admin as pa
from tests.support import pgbouncer as pgb
from tests.support import services
from tests.support.pg import admin_connect, wait_for
from tests.support.server import free_port

# --- rows captured from PgBouncer 1.18.0 (Debian bookworm) -------------------------------------------

POOLS_118 = ["database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
             "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
             "maxwait", "maxwait_us", "pool_mode"]
POOLS_118_ROWS = [
    ("pools", "pools", 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, "transaction"),
    ("pools_single", "pools", 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 502077, "transaction"),
]
STATS_118 = ["database", "total_xact_count", "total_query_count", "total_received", "total_sent",
             "total_xact_time", "total_query_time", "total_wait_time", "avg_xact_count", "avg_query_count",
             "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time"]
STATS_118_ROWS = [
    ("pools_single", *map(Decimal, ("2", "3", "25", "127", "0", "521", "72046", "0", "0", "1", "7", "0", "173",
                                    "4351"))),
]
CONNECTIONS_118 = ["type", "user", "database", "state", "addr", "port", "local_addr", "local_port", "connect_time",
                   "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls",
                   "application_name"]
SERVERS_118_ROWS = [
    ("S", "pools", "pools_single", "active", "127.0.0.1", 55632, "127.0.0.1", 55790, "2026-12-02 05:55:16 UTC",
     "2026-12-02 05:55:16 UTC", 0, 0, 0, "0x560e60dc9400", "0x560e60dbdaf0", 12330, "", "holder"),
]
CLIENTS_118_ROWS = [
    ("C", "pools", "pools_single", "active", "127.0.0.1", 57216, "127.0.0.1", 56632, "2026-12-02 05:55:16 UTC",
     "2026-12-02 05:55:16 UTC", 0, 0, 0, "0x560e60dbdaf0", "0x560e60dc9400", 0, "", "holder"),
    ("C", "pools", "pools_single", "waiting", "127.0.0.1", 57226, "127.0.0.1", 56632, "2026-12-02 05:55:16 UTC",
     "2026-12-02 05:55:16 UTC", 1, 503109, 0, "0x560e60dbdd50", "", 0, "", "waiter"),
]
DATABASES_118 = ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "reserve_pool",
                 "pool_mode", "max_connections", "current_connections", "paused", "disabled"]
DATABASES_118_ROWS = [
    ("pgbouncer", None, 56632, "pgbouncer", "pgbouncer", 2, 0, 0, "statement", 0, 0, 0, 0),
    ("pools_single", "127.0.0.1", 55632, "pools", None, 1, 0, 0, None, 0, 1, 0, 0),
]
CONFIG_118 = ["key", "value", "default", "changeable"]
CONFIG_118_ROWS = [
    ("default_pool_size", "20", "20", "yes"),
    ("max_client_conn", "500", "100", "yes"),
    ("pool_mode", "transaction", "session", "yes"),
    ("query_wait_timeout", "120", "120", "yes"),
    ("reserve_pool_size", "0", "0", "yes"),
]


def test_pools_of_1_18_keep_pgbouncers_names_and_maxwait_includes_the_microseconds():
    pools = pa.parse_pools(POOLS_118, POOLS_118_ROWS)
    single = next(p for p in pools if p.key == ("pools_single", "pools"))
    assert (single.cl_active, single.cl_waiting, single.sv_active, single.sv_idle, single.sv_used) == (1, 1, 1, 0, 0)
    assert single.maxwait == pytest.approx(1.502077)
    assert single.pool_mode == "transaction"
    assert (single.cl_active_cancel_req, single.cl_waiting_cancel_req, single.sv_active_cancel,
            single.sv_being_canceled) == (0, 0, 0, 0)
    other = next(p for p in pools if p.database == "pools")
    assert (other.sv_used, other.sv_total) == (2, 2)


def test_pools_of_older_versions_lack_the_cancel_columns():
    # 1.8 .. 1.15: no cancel columns at all; 1.16 / 1.17: one cl_cancel_req, replaced in 1.18.
    columns_18 = ["database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested",
                  "sv_login", "maxwait", "maxwait_us", "pool_mode"]
    columns_116 = [*columns_18[:4], "cl_cancel_req", *columns_18[4:]]
    (old,) = pa.parse_pools(columns_18, [("app", "web", 5, 2, 3, 1, 0, 0, 1, 0, 250000, "session")])
    (mid,) = pa.parse_pools(columns_116, [("app", "web", 5, 2, 9, 3, 1, 0, 0, 1, 0, 250000, "session")])
    for pool in (old, mid):
        assert (pool.cl_active, pool.cl_waiting, pool.sv_active, pool.sv_idle, pool.sv_login) == (5, 2, 3, 1, 1)
        assert pool.maxwait == pytest.approx(0.25)
        assert pool.cl_active_cancel_req is None and pool.sv_being_canceled is None
    # Before 1.8 there was no maxwait_us: whole seconds only.
    (ancient,) = pa.parse_pools([*columns_18[:10], "pool_mode"], [("app", "web", 1, 1, 1, 0, 0, 0, 0, 3, "session")])
    assert ancient.maxwait == 3.0


def test_pools_of_newer_versions_ignore_unknown_columns_and_missing_ones_read_as_zero():
    columns = [*POOLS_118, "load_balance_hosts", "some_column_of_2030"]
    (pool,) = pa.parse_pools(columns, [(*POOLS_118_ROWS[1], "disable", 42)])
    assert pool == pa.parse_pools(POOLS_118, POOLS_118_ROWS[1:])[0]
    without_tested = [c for c in POOLS_118 if c != "sv_tested"]
    row = [v for c, v in zip(POOLS_118, POOLS_118_ROWS[1], strict=True) if c != "sv_tested"]
    (pool,) = pa.parse_pools(without_tested, [row])
    assert pool.sv_tested == 0 and pool.sv_active == 1


def test_stats_are_numbers_and_seconds_and_newer_counters_are_none_on_1_18():
    (stats,) = pa.parse_stats(STATS_118, STATS_118_ROWS)
    assert (stats.database, stats.total_xact_count, stats.total_query_count) == ("pools_single", 2, 3)
    assert isinstance(stats.total_xact_count, int)
    assert stats.total_wait_time == pytest.approx(0.072046)
    assert stats.total_query_time == pytest.approx(0.000521)
    assert stats.avg_query_time == pytest.approx(0.000173)
    assert stats.avg_wait_time == pytest.approx(0.004351)
    assert stats.avg_recv == 1.0 and stats.avg_sent == 7.0
    assert stats.total_server_assignment_count is None and stats.total_bind_count is None


def test_stats_of_1_24_have_assignment_and_prepared_statement_counters():
    columns = ["database", "total_server_assignment_count", "total_xact_count", "total_query_count",
               "total_received", "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
               "total_client_parse_count", "total_server_parse_count", "total_bind_count",
               "avg_server_assignment_count", "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
               "avg_xact_time", "avg_query_time", "avg_wait_time", "avg_client_parse_count",
               "avg_server_parse_count", "avg_bind_count"]
    row = ("app", "40", "100", "250", "9000", "12000", "2000000", "1500000", "30000", "7", "3", "21", "2.5", "10",
           "25", "900", "1200", "20000", "6000", "300", "0", "0", "0")
    (stats,) = pa.parse_stats(columns, [row])
    assert (stats.total_server_assignment_count, stats.total_client_parse_count, stats.total_server_parse_count,
            stats.total_bind_count) == (40, 7, 3, 21)
    assert stats.avg_server_assignment_count == 2.5
    assert stats.total_xact_time == pytest.approx(2.0) and stats.avg_wait_time == pytest.approx(0.0003)


def test_servers_and_clients_with_waits_pids_and_application_names():
    (server,) = pa.parse_servers(CONNECTIONS_118, SERVERS_118_ROWS)
    assert (server.type, server.state, server.remote_pid, server.application_name) == ("S", "active", 12330,
                                                                                        "holder")
    assert server.prepared_statements is None  # a column of 1.21+
    holder, waiter = pa.parse_clients(CONNECTIONS_118, CLIENTS_118_ROWS)
    assert waiter.state == "waiting" and waiter.wait == pytest.approx(1.503109)
    assert holder.remote_pid is None  # 0 = unknown for a client over TCP
    assert (waiter.addr, waiter.port, waiter.database, waiter.user) == ("127.0.0.1", 57226, "pools_single", "pools")
    newer = [*CONNECTIONS_118, "prepared_statements", "id"]
    (client,) = pa.parse_clients(newer, [(*CLIENTS_118_ROWS[0], 4, 17)])
    assert client.prepared_statements == 4


def test_databases_paused_and_the_renamed_reserve_pool_column():
    single = next(d for d in pa.parse_databases(DATABASES_118, DATABASES_118_ROWS) if d.name == "pools_single")
    assert (single.database, single.pool_size, single.current_connections, single.paused) == ("pools", 1, 1, False)
    (reserved,) = pa.parse_databases(DATABASES_118, [("app", "db1", 5432, "app", None, 20, 0, 3, None, 0, 0, 0, 0)])
    assert reserved.reserve_pool_size == 3  # 1.18 calls it reserve_pool
    newer = ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "reserve_pool_size",
             "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections", "current_connections",
             "max_client_connections", "current_client_connections", "paused", "disabled"]
    (db,) = pa.parse_databases(newer, [("app", "db1", 5432, "app", None, 25, 2, 5, 3600, "transaction", None, 100, 7,
                                         0, 40, 1, 0)])
    assert (db.reserve_pool_size, db.max_connections, db.paused, db.disabled) == (5, 100, True, False)


def test_config_values_and_settings_of_other_versions():
    config = pa.parse_config(CONFIG_118, CONFIG_118_ROWS)
    assert (config.max_client_conn, config.default_pool_size, config.pool_mode) == (500, 20, "transaction")
    assert config.max_prepared_statements is None  # a setting of 1.21+
    assert config.settings["query_wait_timeout"] == "120"
    # before 1.15 SHOW CONFIG had no "default" column
    old = pa.parse_config(["key", "value", "changeable"], [("max_client_conn", "100", "yes"),
                                                            ("max_prepared_statements", "200", "yes")])
    assert (old.max_client_conn, old.max_prepared_statements, old.default_pool_size) == (100, 200, None)


def test_lists_and_versions():
    assert pa.parse_lists(["list", "items"], [("databases", 3), ("used_clients", Decimal(7))]) == {
        "databases": 3, "used_clients": 7}
    assert pa.parse_version("PgBouncer 1.18.0") == (1, 18, 0)
    assert pa.parse_version("1.18.0/bouncer") == (1, 18, 0)
    assert pa.parse_version("PgBouncer 1.25") == (1, 25)
    assert pa.parse_version("") is None


def test_snapshot_lookups_and_counts_by_state():
    snapshot = pa.PgBouncerSnapshot(
        version="1.18.0", pools=pa.parse_pools(POOLS_118, POOLS_118_ROWS),
        stats=pa.parse_stats(STATS_118, STATS_118_ROWS), servers=pa.parse_servers(CONNECTIONS_118, SERVERS_118_ROWS),
        clients=pa.parse_clients(CONNECTIONS_118, CLIENTS_118_ROWS),
        databases=pa.parse_databases(DATABASES_118, [(*DATABASES_118_ROWS[1][:11], 1, 0)]),
        config=pa.parse_config(CONFIG_118, CONFIG_118_ROWS))
    assert snapshot.pool("pools_single", "pools").cl_waiting == 1
    assert snapshot.pool("pools_single", "nobody") is None
    assert snapshot.stats_for("pools_single").total_query_count == 3
    assert snapshot.client_states == {"active": 1, "waiting": 1}
    assert snapshot.server_states == {"active": 1}
    assert snapshot.paused_databases == ("pools_single",)


# --- against the real PgBouncer -----------------------------------------------------------------------


def _installed_version() -> str:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    first = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    return first.split()[1]


def test_reads_the_real_console():
    snapshot = pa.read_admin(pgb.admin_url())
    assert snapshot.version == _installed_version()
    assert snapshot.config.pool_mode == "transaction"
    assert snapshot.config.settings["listen_port"] == str(pgb.port())
    assert snapshot.config.max_client_conn is not None and snapshot.config.default_pool_size is not None
    single = next(d for d in snapshot.databases if d.name == pgb.SINGLE_DB)
    assert (single.pool_size, single.database, single.paused) == (1, "pools", False)
    # the reader's own console connection is one of the clients
    assert any(c.database == "pgbouncer" and c.application_name == "connection_pools.pgbouncer_admin"
               for c in snapshot.clients)
    assert snapshot.lists["databases"] >= 2


def _server_backends(dbname: str, application_name: str, state: str) -> int:
    with admin_connect() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
                           "AND state = %s", [dbname, application_name, state]).fetchone()
    return int(row[0])


def test_clients_through_pgbouncer_move_cl_active_and_sv_active():
    # Nobody else uses the (postgres, pools) pool: its figures are ours.
    name = f"pgb-test-{uuid.uuid4().hex[:8]}"
    clients = [pgb.connect("postgres", name) for _ in range(3)]
    try:
        for client in clients:
            client.execute("SELECT 1")
        for client in clients[:2]:  # two of them inside a transaction: each holds a server connection
            client.execute("BEGIN")
            client.execute("SELECT 1")
        snapshot = pgb.wait_for_snapshot(
            lambda s: (p := s.pool("postgres", "pools")) is not None and (p.cl_active, p.sv_active) == (3, 2))
        pool = snapshot.pool("postgres", "pools")
        assert (pool.cl_active, pool.cl_waiting, pool.sv_active) == (3, 0, 2)
        # Counted independently: PgBouncer's client list, and the server's backends.
        assert sum(c.application_name == name for c in snapshot.clients) == 3
        assert _server_backends("postgres", name, "idle in transaction") == 2
        for client in clients[:2]:
            client.execute("COMMIT")
        snapshot = pgb.wait_for_snapshot(lambda s: s.pool("postgres", "pools").sv_active == 0)
        assert snapshot.pool("postgres", "pools").cl_active == 3
    finally:
        for client in clients:
            client.close()
    snapshot = pgb.wait_for_snapshot(lambda s: s.pool("postgres", "pools").cl_active == 0)
    assert snapshot.pool("postgres", "pools").cl_active == 0


def test_a_client_waiting_for_the_only_server_shows_in_cl_waiting():
    name = f"pgb-wait-{uuid.uuid4().hex[:8]}"
    holder = pgb.connect(pgb.SINGLE_DB, name + "-holder")
    result: list[int] = []
    try:
        holder.execute("BEGIN")
        (held_pid,) = holder.execute("SELECT pg_backend_pid()").fetchone()

        def wait_for_the_server() -> None:
            with pgb.connect(pgb.SINGLE_DB, name + "-waiter") as waiter:
                result.append(waiter.execute("SELECT pg_backend_pid()").fetchone()[0])

        thread = threading.Thread(target=wait_for_the_server, daemon=True)
        thread.start()
        snapshot = pgb.wait_for_snapshot(lambda s: s.pool(pgb.SINGLE_DB, "pools").cl_waiting == 1)
        pool = snapshot.pool(pgb.SINGLE_DB, "pools")
        assert (pool.cl_waiting, pool.sv_active) == (1, 1)
        assert pool.maxwait > 0
        (waiting,) = [c for c in snapshot.clients if c.application_name == name + "-waiter"]
        assert waiting.state == "waiting" and waiting.wait > 0
        assert snapshot.client_states.get("waiting", 0) >= 1
        assert not result  # still waiting: the only server is held
    finally:
        holder.execute("COMMIT")
        holder.close()
    thread.join(timeout=60)
    assert result == [held_pid]  # it got the one server the holder had
    snapshot = pgb.wait_for_snapshot(lambda s: s.pool(pgb.SINGLE_DB, "pools").cl_waiting == 0)
    assert snapshot.pool(pgb.SINGLE_DB, "pools").cl_waiting == 0


def test_a_paused_database_is_reported():
    pgb.console(f"PAUSE {pgb.SINGLE_DB}")
    try:
        snapshot = pa.read_admin(pgb.admin_url())
        assert snapshot.paused_databases == (pgb.SINGLE_DB,)
    finally:
        pgb.console(f"RESUME {pgb.SINGLE_DB}")
    assert pa.read_admin(pgb.admin_url()).paused_databases == ()


def _assert_one_clean_sentence(error: pa.PgBouncerAdminError, *secrets: str) -> None:
    message = str(error)
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    for secret in secrets:
        assert secret not in message
    # no psycopg exception (with its details) chained to it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_an_unreachable_console_is_one_clean_sentence():
    url = f"postgres://pgbouncer_stats:Sup3r-Secret@127.0.0.1:{free_port()}/pgbouncer"
    with pytest.raises(pa.PgBouncerAdminError) as caught:
        pa.read_admin(url)
    assert caught.value.kind == "unreachable"
    assert "127.0.0.1" in str(caught.value)
    _assert_one_clean_sentence(caught.value, "Sup3r-Secret")


def test_a_wrong_password_is_an_auth_error_without_the_password():
    params = psycopg.conninfo.conninfo_to_dict(pgb.admin_url())
    url = psycopg.conninfo.make_conninfo(**{**params, "password": "Wr0ng-Passw0rd"})
    with pytest.raises(pa.PgBouncerAdminError) as caught:
        pa.read_admin(url)
    assert caught.value.kind == "auth"
    _assert_one_clean_sentence(caught.value, "Wr0ng-Passw0rd")


def test_a_password_equal_to_the_user_name_is_masked_wherever_it_appears():
    # devservices' console user has its name as password; on the primary it may not log in,
    # and PostgreSQL's answer names the role.
    params = psycopg.conninfo.conninfo_to_dict(pgb.admin_url())
    assert params["user"] == params["password"]
    primary = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])
    with pytest.raises(pa.PgBouncerAdminError) as caught:
        pa.read_admin(psycopg.conninfo.make_conninfo(**{**params, "port": primary["port"]}))
    assert caught.value.kind == "auth" and "not permitted to log in" in str(caught.value)
    _assert_one_clean_sentence(caught.value, str(params["password"]))


def test_a_url_that_is_not_the_console_is_refused():
    with pytest.raises(pa.PgBouncerAdminError) as caught:
        pa.read_admin(pgb.database_url("pools"))  # PgBouncer, but an ordinary database
    assert caught.value.kind == "config" and "'pgbouncer'" in str(caught.value)
    _assert_one_clean_sentence(caught.value, "pools")
    with pytest.raises(pa.PgBouncerAdminError) as caught:
        pa.read_admin("http://example.com/pgbouncer?password=x")
    assert caught.value.kind == "config"
    # A PostgreSQL server that happens to have a database called pgbouncer is no console.
    with admin_connect() as conn:
        conn.execute("CREATE DATABASE pgbouncer")
    try:
        params = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])
        direct = psycopg.conninfo.make_conninfo(**{**params, "dbname": "pgbouncer"})
        with pytest.raises(pa.PgBouncerAdminError) as caught:
            pa.read_admin(direct)
        assert caught.value.kind == "not_console" and "server_version" in str(caught.value)
        _assert_one_clean_sentence(caught.value, str(params["password"]))
    finally:
        with admin_connect() as conn:
            conn.execute("DROP DATABASE pgbouncer WITH (FORCE)")


@pytest.mark.parametrize(("freeze_on", "kind", "said"), [
    (b"SHOW STATS", "timeout", "SHOW STATS"),  # connected, then the console hangs
    (b"pgbouncer_stats", "unreachable", "did not accept a connection"),  # hangs in the startup packet
])
def test_a_hung_console_is_bounded_by_the_deadline(freeze_on, kind, said):
    params = psycopg.conninfo.conninfo_to_dict(pgb.admin_url())
    outcome: list[BaseException] = []
    with pgb.FreezingRelay(("127.0.0.1", pgb.port()), freeze_on=freeze_on) as relay:
        url = psycopg.conninfo.make_conninfo(**{**params, "port": str(relay.port)})

        def read() -> None:
            try:
                pa.read_admin(url, connect_timeout=2, deadline=2)
            except BaseException as exc:  # handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive(), "read_admin did not return although its deadline had passed"
        assert relay.frozen.is_set()
    (error,) = outcome
    assert isinstance(error, pa.PgBouncerAdminError) and error.kind == kind
    assert said in str(error)
    _assert_one_clean_sentence(error, str(params["password"]))


def test_the_console_refuses_the_extended_query_protocol():
    # Why the reader sticks to ClientCursor and prepare_threshold=None: a prepared (extended
    # protocol) SHOW fails, the simple-protocol one on the same connection works.
    with psycopg.connect(pgb.admin_url(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ProtocolViolation, match="extended query protocol"):
            conn.execute("SHOW VERSION", prepare=True)
    with psycopg.connect(pgb.admin_url(), autocommit=True) as conn:
        assert conn.execute("SHOW VERSION").fetchone()[0].startswith("PgBouncer ")


def test_is_pgbouncer_tells_pgbouncer_from_postgresql():
    with pgb.connect("postgres", "pgb-probe") as through:
        assert pa.is_pgbouncer(through)
    with psycopg.connect(pgb.admin_url(), autocommit=True) as console:
        assert pa.is_pgbouncer(console)
    with admin_connect() as direct:
        assert not pa.is_pgbouncer(direct)
    # Outside autocommit the probe leaves no transaction open: in transaction mode an open
    # one would keep a server connection assigned to this client.
    name = f"pgb-probe-{uuid.uuid4().hex[:8]}"
    with pgb.connect("postgres", name, autocommit=False) as through:
        assert pa.is_pgbouncer(through)
        assert through.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert _server_backends("postgres", name, "idle in transaction") == 0


@pytest.mark.slow
def test_pgbouncer_restarted_by_devservices_recovers():
    before = pgb.connect("postgres", "pgb-restart")
    assert before.execute("SELECT 1").fetchone() == (1,)
    services.stop("pgbouncer")
    try:
        with pytest.raises(pa.PgBouncerAdminError) as caught:
            pa.read_admin(pgb.admin_url())
        assert caught.value.kind == "unreachable"
        with pytest.raises(psycopg.OperationalError):
            before.execute("SELECT 1")
    finally:
        services.start("pgbouncer")
        before.close()
    assert pa.read_admin(pgb.admin_url()).config.pool_mode == "transaction"
    with pgb.connect("postgres", "pgb-restart") as after:
        assert after.execute("SELECT 1").fetchone() == (1,)
    assert wait_for(lambda: pa.read_admin(pgb.admin_url()).pool("postgres", "pools") is not None)
