"""psycopg_pool's documented contract, kept by our pool: each point pinned on the real server.

Where we differ on purpose (LIFO, recycling checked at checkout, no back-off after a mass
disconnect, surplus closed at once after a shrinking resize), the test says so; see
docs/postgresql-pools.md.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from connection_pools.backends.postgresql.attribution import OWNED_SQL, owned_params
from connection_pools.backends.postgresql.pool import DatabaseUnavailable
from tests.support.pg import (
    admin_connect,
    backend_pid,
    counters_of,
    dispose,
    make_wrapper,
    server_pids,
    terminate,
    wait_for,
)
from tests.support.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]


def psycopg_stats(pool: ConnectionPool) -> dict[str, int]:
    """get_stats() with psycopg's omitted zero counters filled in."""
    keys = ("requests_num", "requests_queued", "requests_wait_ms", "requests_errors", "usage_ms", "returns_bad",
            "connections_num", "connections_ms", "connections_errors", "connections_lost")
    found = pool.get_stats()
    return {**dict.fromkeys(keys, 0), **found}


def test_get_stats_and_pop_stats_are_exact_on_every_path(pooled):
    wrapper, pool = pooled({"min_size": 2, "max_size": 3, "timeout": 5})
    s = psycopg_stats(pool)
    assert (s["connections_num"], s["connections_errors"]) == (2, 0)
    assert (s["pool_min"], s["pool_max"], s["pool_size"], s["pool_available"], s["requests_waiting"]) == (2, 3, 2, 2, 0)
    assert s["connections_ms"] >= 0

    a, b = pool.getconn(), pool.getconn()  # served from the idle ones
    c = pool.getconn()  # queued while the pool grows by one
    s = psycopg_stats(pool)
    assert (s["requests_num"], s["requests_queued"], s["connections_num"]) == (3, 1, 3)
    assert (s["pool_size"], s["pool_available"]) == (3, 0)

    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.2)  # full: queued, then times out
    s = psycopg_stats(pool)
    assert (s["requests_num"], s["requests_queued"], s["requests_errors"]) == (4, 2, 1)
    assert s["requests_wait_ms"] >= 190

    for conn in (a, b, c):
        pool.putconn(conn)
    with pool.connection() as conn:  # usage is measured by connection(), as in psycopg
        time.sleep(0.05)
    s = psycopg_stats(pool)
    assert (s["requests_num"], s["returns_bad"], s["pool_available"]) == (5, 0, 3)
    assert s["usage_ms"] >= 50

    terminate(server_pids(wrapper.alias))  # every idle connection dies
    conn = pool.getconn()  # pre-ping: the dead one is replaced in the caller
    backend_pid(conn)
    s = psycopg_stats(pool)
    assert (s["requests_num"], s["connections_lost"], s["connections_num"], s["requests_errors"]) == (6, 1, 4, 1)

    terminate([backend_pid(conn)])
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # broken while held...
    pool.putconn(conn)  # ...and returned broken: psycopg opens its successor in the background
    assert psycopg_stats(pool)["returns_bad"] == 1
    assert wait_for(lambda: psycopg_stats(pool)["connections_num"] == 5)

    popped = pool.pop_stats()
    assert popped["requests_num"] == 6 and popped["returns_bad"] == 1
    after = pool.get_stats()
    assert "requests_num" not in after and "returns_bad" not in after  # counters reset...
    assert after["pool_max"] == 3  # ...measures kept

    # Our own statistics agree with psycopg's. psycopg counts a connection when it starts opening it,
    # we when it is open: the background successor may still be connecting, so wait for ours too.
    assert wait_for(lambda: counters_of(pool)["connections_created"] == 5), counters_of(pool)
    ours = counters_of(pool)
    assert ours["checkouts"] == 5 and ours["timeouts"] == 1 and ours["pre_ping_failures"] == 1
    # The successor was opened by psycopg's worker thread, which counts in psycopg's stats first and in
    # ours just after (compat's _connect): ours reaches the same count a moment later, never another.
    assert wait_for(lambda: counters_of(pool)["connections_created"] == 5), counters_of(pool)


def test_connection_errors_are_counted_and_fail_fast_as_a_pool_timeout(pooled):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 2, "timeout": 10}, port=free_port(), wait=False)
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as excinfo:  # code written for psycopg catches it
        pool.getconn()
    assert isinstance(excinfo.value, DatabaseUnavailable)
    message = str(excinfo.value)
    assert "cannot open a new connection" in message and "couldn't get a connection" not in message
    assert isinstance(excinfo.value, psycopg.OperationalError)
    assert time.monotonic() - started < 10  # not the whole timeout (a bound, not a benchmark)
    s = psycopg_stats(pool)
    assert s["connections_errors"] >= 1 and s["requests_errors"] == 1 and s["requests_num"] == 1
    assert counters_of(pool)["connection_errors"] == s["connections_errors"]


def test_queued_clients_fail_fast_when_the_server_refuses(pooled, proxy):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 20}, port=proxy.port)
    proxy.cut()
    with pytest.raises(DatabaseUnavailable):
        pool.getconn()  # the dead idle connection fails its ping; the successor is refused
    # The slot is with psycopg's background reconnection now: the next client queues,
    # and is failed by the next refused attempt instead of waiting 20 s.
    with pytest.raises(DatabaseUnavailable):
        pool.getconn()


def test_putconn_of_a_connection_not_from_the_pool_is_a_value_error(pooled):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1})
    _other_wrapper, other = pooled({"min_size": 1, "max_size": 1})
    settings = make_wrapper({}).get_connection_params()
    plain = psycopg.connect(**{k: v for k, v in settings.items() if k not in ("cursor_factory", "context")})
    try:
        with pytest.raises(ValueError, match="doesn't come from any pool"):
            pool.putconn(plain)
    finally:
        plain.close()
    foreign = other.getconn()
    with pytest.raises(ValueError, match=f"comes from pool '{other.name}'"):
        pool.putconn(foreign)
    other.putconn(foreign)
    conn = pool.getconn()
    pool.putconn(conn)
    with pytest.raises(ValueError):
        pool.putconn(conn)  # returned twice
    assert counters_of(pool)["checkouts"] == 1 and pool.counters.active == 0


def test_a_users_check_is_the_pre_ping(pooled):
    calls = []
    failing = threading.Event()

    def check(conn):
        calls.append(conn)
        if failing.is_set():
            raise psycopg.OperationalError("told to fail")

    wrapper, pool = pooled({"min_size": 1, "max_size": 1, "check": check})
    assert pool.user_check is check and pool.pre_ping
    first = pool.getconn()
    first_pid = backend_pid(first)
    pool.putconn(first)
    assert len(calls) == 1
    failing.set()
    conn = pool.getconn()  # the check fails: the connection is replaced, as with our ping
    assert backend_pid(conn) != first_pid and len(calls) == 2
    pool.putconn(conn)
    assert psycopg_stats(pool)["connections_lost"] == 1
    assert wait_for(lambda: first_pid not in server_pids(wrapper.alias))


def test_a_reset_callback_runs_on_every_return(pooled):
    resets = []

    def reset(conn):
        resets.append(conn.info.backend_pid)
        conn.execute("RESET ALL")

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "check": None, "reset": reset})
    for _ in range(3):
        conn = pool.getconn()
        pid = backend_pid(conn)
        pool.putconn(conn)  # psycopg runs reset in its worker, then the connection is idle again
        assert wait_for(lambda: pool.idle_count() == 1)
    assert resets == [pid] * 3


def test_psycopgs_own_log_lines_are_written_on_every_checkout_and_return(pooled, caplog):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1})
    with caplog.at_level("INFO", logger="psycopg.pool"):
        pool.putconn(pool.getconn())
    lines = [record.getMessage() for record in caplog.records if record.name == "psycopg.pool"]
    assert lines == [f"connection requested from {pool.name!r}", f"connection given by {pool.name!r}",
                     f"returning connection to {pool.name!r}"]


def test_check_none_turns_the_pre_ping_off_and_health_checks_turn_psycopgs_on(pooled):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "check": None})
    assert pool.user_check is None and not pool.pre_ping
    wrapper = make_wrapper({"min_size": 1, "max_size": 1})
    wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True  # Django's own switch for pool checks
    try:
        assert wrapper.pool.user_check is ConnectionPool.check_connection
    finally:
        dispose(wrapper)


def test_refills_to_min_size_by_itself_after_an_outage(pooled, proxy):
    wrapper, pool = pooled({"min_size": 3, "max_size": 3, "timeout": 5}, port=proxy.port)
    assert len(server_pids(wrapper.alias)) == 3
    proxy.cut()
    assert wait_for(lambda: not server_pids(wrapper.alias))
    with pytest.raises(DatabaseUnavailable):
        pool.getconn()  # a client notices the outage
    proxy.restore()
    # No client from here on: the pool is back to three working server connections by itself.
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 3 and pool.idle_count() == 3, timeout=30)
    s = psycopg_stats(pool)
    assert s["pool_size"] == 3
    conns = [pool.getconn() for _ in range(3)]
    assert sorted(backend_pid(c) for c in conns) == server_pids(wrapper.alias)
    for conn in conns:
        pool.putconn(conn)


def test_reconnect_failed_is_called_and_the_pool_keeps_trying(pooled, proxy):
    failed = []
    wrapper, pool = pooled({"min_size": 2, "max_size": 2, "timeout": 5, "reconnect_timeout": 0.5,
                            "reconnect_failed": failed.append}, port=proxy.port)
    proxy.cut()
    for _ in range(2):
        with pytest.raises(DatabaseUnavailable):
            pool.getconn()  # both slots go to the background reconnection
    assert wait_for(lambda: len(failed) >= 2, timeout=20)
    assert failed[0] is pool
    proxy.restore()
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 2, timeout=30)
    assert wait_for(lambda: pool.idle_count() == 2)


def test_max_idle_closes_unused_connections_above_min_size(pooled):
    wrapper, pool = pooled({"min_size": 1, "max_size": 3, "max_idle": 0.3})
    held = [pool.getconn() for _ in range(3)]
    for conn in held:
        pool.putconn(conn)
    assert len(server_pids(wrapper.alias)) == 3
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 1, timeout=15)
    counters = counters_of(pool)
    assert counters["connections_created"] - counters["connections_closed"] == 1
    assert psycopg_stats(pool)["pool_size"] == 1


def test_open_close_and_reopen_as_psycopg_documents(pooled):
    wrapper, pool = pooled({"min_size": 1, "max_size": 2})
    held = pool.getconn()
    pool.close()
    with pytest.raises(PoolClosed):
        pool.getconn()
    with pytest.raises(PoolClosed, match="cannot be reused"):
        pool.open()
    assert not held.closed  # a connection out is closed only when it comes back
    pool.putconn(held)
    assert held.closed
    wrapper.close_pool()
    fresh = wrapper.pool  # the engine builds a new pool for the alias
    assert fresh is not pool and not fresh.closed


def test_wait_as_psycopg_documents(pooled):
    wrapper, _pool = pooled({"min_size": 2, "max_size": 2})
    unopened = wrapper._build_pool()
    unopened.open()
    unopened.wait(timeout=10)  # returns once min_size connections are ready
    assert unopened.get_stats()["pool_available"] == 2
    unopened.close()

    elsewhere = make_wrapper({"min_size": 1, "max_size": 1}, port=free_port())
    try:
        refused = elsewhere._build_pool()
        refused.open()
        with pytest.raises(PoolTimeout):
            refused.wait(timeout=0.5)
        assert refused.closed  # psycopg: "Close the pool, and raise PoolTimeout, if not ready within timeout"
    finally:
        dispose(elsewhere)


def test_resize_as_psycopg_documents_and_surplus_closes_at_once(pooled):
    wrapper, pool = pooled({"min_size": 1, "max_size": 1})
    pool.resize(3, 4)
    assert (pool.min_size, pool.max_size) == (3, 4)
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 3 and pool.idle_count() == 3)
    held = pool.getconn()
    pool.resize(1, 1)
    s = pool.get_stats()
    assert (s["pool_min"], s["pool_max"]) == (1, 1)
    # psycopg keeps the surplus until max_idle; ours closes idle surplus now, the rest on return.
    assert s["pool_size"] == 1 and pool.idle_count() == 0
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 1)
    pool.putconn(held)
    assert pool.get_stats()["pool_size"] == 1 and pool.idle_count() == 1


def test_a_connection_still_opening_when_the_pool_shrinks_is_closed_on_arrival(pooled, proxy):
    wrapper, pool = pooled({"min_size": 1, "max_size": 1}, port=proxy.port)
    proxy.cut()
    pool.resize(3, 3)  # two connections start opening in the background, and keep failing
    assert wait_for(lambda: pool.get_stats().get("connections_errors", 0) >= 2)
    pool.resize(1, 1)
    proxy.restore()
    assert wait_for(lambda: pool.get_stats()["pool_size"] == 1, timeout=20)
    assert pool.idle_count() <= 1 and len(server_pids(wrapper.alias)) <= 1


def test_max_waiting_refuses_extra_waiters_as_psycopg_does(pooled):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "max_waiting": 1, "timeout": 5})
    held = pool.getconn()
    waiter_got = []
    waiter = threading.Thread(target=lambda: waiter_got.append(pool.getconn()))
    waiter.start()
    assert wait_for(lambda: pool.waiting_count() == 1)
    with pytest.raises(TooManyRequests):
        pool.getconn()
    pool.putconn(held)
    waiter.join()
    pool.putconn(waiter_got[0])
    assert psycopg_stats(pool)["requests_errors"] == 1


def test_check_replaces_broken_idle_connections_and_counts_them_closed(pooled):
    wrapper, pool = pooled({"min_size": 2, "max_size": 2, "check": None})
    killed = server_pids(wrapper.alias)
    terminate(killed)
    pool.check()  # psycopg's public check(): test every idle connection
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 2 and pool.idle_count() == 2)
    assert not set(killed) & set(server_pids(wrapper.alias))
    counters = counters_of(pool)
    assert psycopg_stats(pool)["connections_lost"] == 2
    assert counters["connections_created"] - counters["connections_closed"] == 2


def test_drain_replaces_every_connection_as_psycopg_documents(pooled):
    wrapper, pool = pooled({"min_size": 2, "max_size": 2})
    before = server_pids(wrapper.alias)
    held = pool.getconn()
    pool.drain()  # idle ones are replaced now, the one out when it comes back
    pool.putconn(held)
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 2 and pool.idle_count() == 2
                    and not set(before) & set(server_pids(wrapper.alias)))
    counters = counters_of(pool)
    assert counters["connections_created"] - counters["connections_closed"] == 2


def test_the_mass_disconnect_trap_is_not_ours():
    # DESIGN.md: psycopg's check after every backend is killed waits on the background
    # back-off (PoolTimeout with timeout=2). Shown here on psycopg's own pool, beside ours.
    wrapper = make_wrapper({"min_size": 3, "max_size": 3, "timeout": 2})
    try:
        ours = wrapper.pool
        assert ours.wait_ready(10)
        params = dict(ours.kwargs)
        plain = ConnectionPool(kwargs=params, min_size=3, max_size=3, timeout=1, open=False,
                               check=ConnectionPool.check_connection)
        plain.open(wait=True)
        try:
            with admin_connect() as admin:
                admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {OWNED_SQL}",
                              owned_params(wrapper.alias))
            assert wait_for(lambda: not server_pids(wrapper.alias))
            conns = [ours.getconn() for _ in range(3)]  # ours: replaced in the caller, no wait
            for conn in conns:
                ours.putconn(conn)
            with pytest.raises(PoolTimeout):
                for _ in range(3):
                    plain.putconn(plain.getconn())
        finally:
            plain.close()
    finally:
        dispose(wrapper)
