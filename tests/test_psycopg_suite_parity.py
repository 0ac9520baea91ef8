"""psycopg's own pool test suite (tests/pool/test_pool.py, test_pool_common.py) as a yardstick.

Each test restates, in its own words and on the real server, a behaviour psycopg_pool's suite
expects of ``ConnectionPool``, and checks it on our ``InstrumentedPool`` (the deliberate
differences of docs/postgresql-pools.md aside).

Two groups:

* FOUND: behaviours psycopg's suite pins that our pool once broke (a connection closed by its
  user, ``min_size`` alone, a client after ``reconnect_failed``, ``check()``'s log lines);
* MATCHING: the most important of the behaviours that always held.

Where it helps, psycopg's own pool is built beside ours with the same connection keywords,
to show the reference behaviour on the same server.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from connection_pools.backends.postgresql.pool import InstrumentedPool
from connection_pools.conf.pool_options import PoolConfig
from tests.support.pg import (
    admin_connect,
    backend_pid,
    dispose,
    make_wrapper,
    reference_pool,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]

PSYCOPG_LOGGER = "psycopg.pool"


# -- helpers ---------------------------------------------------------------------------------------
def kill(pid: int) -> None:
    """Terminate a backend from the server's side and wait until it is gone."""
    with admin_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_for(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone())


def psycopg_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == PSYCOPG_LOGGER and r.levelno >= level]


@contextlib.contextmanager
def one_of_three_closed(pooled: Any) -> Iterator[tuple[Any, list[Any]]]:
    """A pool of three idle connections, the oldest closed on the client side (``conn.close()``).

    Every connection is closed at the end whatever the pool did with it (so that a pool that
    lost track of some does not leave server sessions behind the test).
    """
    _wrapper, pool = pooled({"min_size": 3, "max_size": 3, "check": None})
    conns = [pool.getconn() for _ in range(3)]
    for conn in conns:
        pool.putconn(conn)
    conns[0].close()
    try:
        yield pool, conns
    finally:
        for conn in conns:
            conn.close()


def psycopg_lines(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """The psycopg.pool messages as written (formatted when logged: a connection's repr shows its
    status at that moment, as psycopg's tests read it from ``record.message``)."""
    return [r.message for r in psycopg_records(caplog, level)]


# ==================================================================================================
# FOUND: behaviours psycopg's suite pins that our pool once broke.
# ==================================================================================================

def test_min_size_alone_makes_max_size_equal_to_it(pooled):
    # psycopg (test_min_size_max_size, (2, None)): max_size defaults to min_size, so
    # ConnectionPool(min_size=2) holds at most 2 connections. Django's pooled engine passes
    # OPTIONS["pool"] straight to psycopg, so {"min_size": 2} there is a pool of exactly 2.
    _wrapper, pool = pooled({"min_size": 2})
    with reference_pool(pool, min_size=2) as plain:
        assert (plain.min_size, plain.max_size) == (2, 2)
    assert (pool.min_size, pool.max_size) == (2, 2)


def test_a_client_is_served_promptly_when_the_server_returns_after_reconnect_failed(pooled, proxy):
    # psycopg (test_reconnect_failure): once reconnect_timeout has run out and reconnect_failed
    # was called, a client arriving after the server is back gets a connection at once (psycopg
    # asserts under 0.2 s): its checkout itself starts the new connection attempt. Shown on
    # psycopg's own pool beside ours, through the same outage.
    failed: list[Any] = []
    options = {"min_size": 1, "max_size": 1, "timeout": 5, "reconnect_timeout": 1.0, "reconnect_failed": failed.append}
    _wrapper, pool = pooled(options, port=proxy.port)
    with reference_pool(pool, **options) as plain:
        plain.wait(timeout=5)
        proxy.cut()
        for p in (plain, pool):
            with pytest.raises(psycopg.OperationalError):
                with p.connection() as conn:
                    conn.execute("SELECT 1")
        assert wait_for(lambda: plain in failed and pool in failed, timeout=5)
        time.sleep(0.3)  # the server stays away a moment longer after the callbacks
        proxy.restore()
        took = {}
        for name, p in (("psycopg", plain), ("ours", pool)):
            started = time.monotonic()
            with p.connection() as conn:
                conn.execute("SELECT 1")
            took[name] = time.monotonic() - started
    assert took["psycopg"] < 0.2  # the reference
    assert took["ours"] < 0.2, took


def test_check_logs_the_broken_connection_it_discards_on_psycopgs_logger(pooled, caplog):
    # psycopg (test_check): check() on a pool with one broken idle connection writes one
    # WARNING, "discarding broken connection: ...", on the psycopg.pool logger.
    _wrapper, pool = pooled({"min_size": 2, "max_size": 2, "check": None})
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    kill(pid)  # broken on the server's side, idle in the pool
    caplog.set_level(logging.WARNING, logger=PSYCOPG_LOGGER)
    pool.check()
    lines = psycopg_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("discarding broken connection")


def test_check_logs_the_expired_connection_it_discards_on_psycopgs_logger(pooled, caplog):
    # psycopg's check() writes "discarding expired connection ..." (INFO, psycopg.pool) for each
    # idle connection past max_lifetime it replaces (test_check_max_lifetime exercises the path).
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "max_lifetime": 0.3, "check": None})
    time.sleep(0.4)
    caplog.set_level(logging.INFO, logger=PSYCOPG_LOGGER)
    pool.check()
    assert any(line.startswith("discarding expired connection") for line in psycopg_lines(caplog, logging.INFO))


# -- a connection closed on the client side (conn.close()): psycopg's suite does this in
# -- test_configure, test_broken_reconnect, test_stats_usage (closed while out) and test_check
# -- (closed while idle). conn.info.backend_pid raises "the connection is closed" then: the pool
# -- accounts for it with the pid it recorded when it opened it.
def test_a_connection_closed_by_its_user_is_a_bad_return_and_is_replaced(pooled):
    # psycopg: returning it is quiet; it counts returns_bad and a successor is opened.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 2})
    with pool.connection() as conn:
        first = conn.info.backend_pid
        conn.close()
    assert pool.get_stats()["returns_bad"] == 1
    with pool.connection() as conn:  # the one slot got its successor
        assert conn.info.backend_pid != first


def test_check_replaces_an_idle_connection_closed_on_the_client_side(pooled):
    # psycopg (test_check): check() drops it, keeps the working ones, and refills the pool.
    with one_of_three_closed(pooled) as (pool, conns):
        kept = {c.info.backend_pid for c in conns[1:]}
        pool.check()
        assert wait_for(lambda: pool.idle_count() == 3)
        assert kept <= {c.info.backend_pid for c in pool.idle_connections()}


def test_checkout_replaces_an_idle_connection_closed_on_the_client_side(pooled):
    # psycopg with a check (test_connect_check): the closed connection fails the check, is
    # counted lost, and the client gets a working successor within its timeout.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 3})
    with reference_pool(pool, max_size=1, check=ConnectionPool.check_connection) as plain:
        for p in (plain, pool):
            p.wait(timeout=5)
            conn = p.getconn()
            p.putconn(conn)
            conn.close()
        with plain.connection() as conn:  # psycopg's own pool: served
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert pool.get_stats()["connections_lost"] == 1


def test_close_closes_every_idle_connection_even_after_one_was_closed_by_its_user(pooled):
    # psycopg: close() closes all idle connections (closing an already closed one is a no-op).
    with one_of_three_closed(pooled) as (pool, conns):
        pool.close()
        assert all(c.closed for c in conns)


def test_drain_replaces_every_idle_connection_even_after_one_was_closed_by_its_user(pooled):
    # psycopg: drain() closes every idle connection and opens as many new ones.
    with one_of_three_closed(pooled) as (pool, conns):
        pool.drain()
        assert wait_for(lambda: pool.idle_count() == 3, timeout=5)
        assert all(c.closed for c in conns)


def test_a_connection_whose_rollback_fails_on_return_is_discarded_and_replaced(pooled, caplog, monkeypatch):
    # psycopg (test_fail_rollback_close): returned in error, its rollback fails (the connection
    # is gone meanwhile): psycopg logs it, closes it, counts a bad return and opens a successor.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 2})
    conn = pool.getconn()
    first = conn.info.backend_pid
    conn.autocommit = False
    real_rollback = conn.rollback

    def rollback_on_a_dead_connection():
        conn.pgconn.finish()
        real_rollback()

    monkeypatch.setattr(conn, "rollback", rollback_on_a_dead_connection)
    with pytest.raises(psycopg.ProgrammingError):
        conn.execute("wat")
    caplog.set_level(logging.WARNING, logger=PSYCOPG_LOGGER)
    pool.putconn(conn)
    with pool.connection() as again:
        assert again.info.backend_pid != first and again.info.transaction_status == TransactionStatus.IDLE
    lines = psycopg_lines(caplog)
    assert len(lines) == 3 and "INERROR" in lines[0] and "OperationalError" in lines[1] and "BAD" in lines[2]


# ==================================================================================================
# MATCHING: the most important behaviours checked against psycopg's suite.
# ==================================================================================================

def test_matching_a_pool_dropped_without_close_is_collected_and_its_threads_stop(pooled):
    # test_del_no_warning, test_del_stops_threads: a pool nobody references any more (never
    # closed) is garbage-collected, without warnings, and its scheduler and workers end.
    wrapper, _pool = pooled({"min_size": 2, "max_size": 2})
    pool = wrapper._build_pool()  # a pool of our class, not registered with the engine
    pool.open()
    with pool.connection() as conn:
        conn.execute("SELECT 1")
    pool.wait(timeout=10)
    threads = [pool._sched_runner, *pool._workers]
    ref = weakref.ref(pool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del pool, conn
        gc.collect()
        assert ref() is None
    assert wait_for(lambda: not any(t.is_alive() for t in threads), timeout=5)
    assert not [str(w.message) for w in caught]


def test_matching_dead_client_loses_no_connection(pooled):
    # test_dead_client: a queued client that times out loses no connection; the others are served.
    _wrapper, pool = pooled({"min_size": 2, "max_size": 2})
    served: list[int] = []

    def worker(i: int, timeout: float) -> None:
        try:
            with pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT pg_sleep(0.3)")
                served.append(i)
        except PoolTimeout:
            assert timeout < 0.2

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate([0.4, 0.4, 0.1, 0.4, 0.4])]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    assert set(served) == {0, 1, 3, 4}
    assert wait_for(lambda: pool.idle_count() == 2) and pool.get_stats()["pool_size"] == 2


def test_matching_defaults_and_sizes(pooled):
    # test_defaults (timeout, max_idle, max_lifetime, num_workers), test_bad_resize.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 2})
    assert (pool.timeout, pool.max_idle, pool.max_lifetime, pool.num_workers) == (30, 600, 3600, 3)
    assert len(pool._workers) == 3
    for sizes in ((0, 0), (-1, None), (4, 2)):
        with pytest.raises(ValueError):
            pool.resize(*sizes)


def test_matching_num_workers_and_name(pooled):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "num_workers": 1, "name": "this-one"})
    assert pool.name == "this-one" and pool.num_workers == 1 and len(pool._workers) == 1
    assert {t.name for t in pool._workers} == {"this-one-worker-0"}


def test_matching_stats_measures_and_usage(pooled):
    # test_stats_measures, test_stats_usage (condensed): measures while busy and queued; counters
    # for queueing, waits, an error, usage, a bad return; pop_stats resets the counters.
    _wrapper, pool = pooled({"min_size": 2, "max_size": 3, "check": None})
    s = pool.get_stats()
    assert (s["pool_min"], s["pool_max"], s["pool_size"], s["pool_available"], s["requests_waiting"]) == (2, 3, 2, 2, 0)
    pool.pop_stats()

    def worker(timeout: float) -> None:
        try:
            with pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT pg_sleep(0.2)")
        except PoolTimeout:
            pass

    threads = [threading.Thread(target=worker, args=(0.3,)) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    busy = pool.get_stats()
    for t in threads:
        t.join()
    assert (busy["pool_size"], busy["pool_available"], busy["requests_waiting"]) == (3, 0, 2)
    s = pool.get_stats()
    assert s["requests_num"] == 5 and s["requests_queued"] == 3 and s.get("requests_errors", 0) == 0
    assert 150 <= s["requests_wait_ms"] <= 600 and 950 <= s["usage_ms"] <= 1300
    with pool.connection() as conn:  # (psycopg closes it with conn.close(): see the DIFFERENCES)
        kill(conn.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    pool.wait(timeout=5)
    popped = pool.pop_stats()
    assert popped["requests_num"] == 6 and popped["returns_bad"] == 1
    with pool.connection():
        pass
    assert pool.get_stats()["requests_num"] == 1


def test_matching_max_waiting_and_timeout_messages(pooled):
    # test_queue_size: TooManyRequests names the pool and the queue length; one requests_error.
    # test_queue_timeout: a queued client times out after its timeout, with psycopg's message.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "max_waiting": 1, "timeout": 5, "name": "waiters"})
    held = pool.getconn()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.getconn()))
    waiter.start()
    assert wait_for(lambda: pool.waiting_count() == 1)
    with pytest.raises(TooManyRequests) as excinfo:
        pool.getconn()
    assert "waiters" in str(excinfo.value) and "1" in str(excinfo.value)
    pool.putconn(held)
    waiter.join()
    assert pool.get_stats()["requests_errors"] == 1
    held = got[0]
    started = time.monotonic()
    with pytest.raises(PoolTimeout, match=r"couldn't get a connection after 0\.20 sec"):
        pool.getconn(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 0.4
    with pytest.raises(PoolTimeout, match=r"couldn't get a connection after 0\.00 sec"):
        pool.getconn(timeout=0)
    pool.putconn(held)


def test_matching_open_close_reopen_and_context(pooled):
    # test_open_explicit, test_open_context, test_open_no_op, test_reopen, test_wait_closed,
    # test_close_no_tasks, test_closed_getconn.
    wrapper, _pool = pooled({"min_size": 1, "max_size": 1})
    pool = wrapper._build_pool()
    assert pool.closed
    with pytest.raises(PoolClosed, match="is not open yet"):
        pool.getconn()
    with pool:
        pool.open()  # no-op on an open pool
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        workers = [pool._sched_runner, *pool._workers]
    assert pool.closed and pool._sched_runner is None and not pool._workers
    assert not any(t.is_alive() for t in workers)
    with pytest.raises(PoolClosed, match="is already closed"):
        pool.getconn()
    with pytest.raises(PoolClosed):
        pool.wait()
    with pytest.raises(psycopg.OperationalError, match="cannot be reused"):
        pool.open()


def test_matching_wait_and_its_timeout(pooled, proxy):
    # test_wait_ready / test_open_wait: wait() returns once min_size are ready (and again at once);
    # not ready in time: PoolTimeout with psycopg's message, and the pool is closed.
    wrapper, _pool = pooled({"min_size": 2, "max_size": 2})
    pool = wrapper._build_pool()
    pool.open(wait=True, timeout=10)
    pool.wait(0.0001)
    pool.close()
    proxy.cut()
    refused = make_wrapper({"min_size": 1, "max_size": 1}, port=proxy.port)
    try:
        pool = refused._build_pool()
        with pytest.raises(PoolTimeout, match=r"pool initialization incomplete after 0\.3 sec"):
            pool.open(wait=True, timeout=0.3)
        assert pool.closed
    finally:
        dispose(refused)


def test_matching_configure_callback(pooled, caplog):
    # test_configure: configure runs once per new connection (again after one is closed).
    # test_configure_badstate: one leaving a transaction open discards the connection, with a
    # warning naming the status; wait() times out.
    inits: list[int] = []

    def configure(conn):
        inits.append(1)
        with conn.transaction():
            conn.execute("SET default_transaction_read_only TO on")

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "configure": configure})
    with pool.connection() as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    with pool.connection() as conn:  # (psycopg closes it with conn.close(): see the DIFFERENCES)
        kill(conn.info.backend_pid)
    with pool.connection() as conn:  # the pre-ping replaces it: a new, configured connection
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    assert len(inits) == 2

    def leaves_a_transaction(conn):
        conn.autocommit = False
        conn.execute("SELECT 1")

    caplog.set_level(logging.WARNING, logger=PSYCOPG_LOGGER)
    wrapper = make_wrapper({"min_size": 1, "max_size": 1, "configure": leaves_a_transaction})
    try:
        bad = wrapper._build_pool()
        bad.open()
        with pytest.raises(PoolTimeout):
            bad.wait(timeout=0.5)
    finally:
        dispose(wrapper)
    assert any("INTRANS" in line for line in psycopg_lines(caplog))


def test_matching_reset_callback_and_its_failures(pooled, caplog):
    # test_reset, test_reset_badstate, test_reset_broken: reset runs on every return; one that
    # leaves a transaction, or fails, gets the connection discarded and replaced, with a warning.
    resets: list[int] = []

    def reset(conn):
        resets.append(1)
        conn.execute("SET timezone TO 'UTC'")

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "reset": reset})
    with pool.connection() as conn:
        conn.execute("SET timezone TO '+2:00'")
    pool.wait(timeout=5)
    with pool.connection() as conn:
        assert conn.execute("SHOW timezone").fetchone() == ("UTC",)
    pool.wait(timeout=5)
    assert len(resets) == 2

    caplog.set_level(logging.WARNING, logger=PSYCOPG_LOGGER)
    for bad_reset, word in ((lambda c: (setattr(c, "autocommit", False), c.execute("RESET ALL")), "INTRANS"),
                            (lambda c: c.execute("WAT"), "WAT")):
        caplog.clear()
        _w, bad = pooled({"min_size": 1, "max_size": 1, "reset": bad_reset})
        with bad.connection() as conn:
            first = backend_pid(conn)
        with bad.connection() as conn:
            assert backend_pid(conn) != first
        assert any(word in line for line in psycopg_lines(caplog))


def test_matching_bad_returns(pooled, caplog):
    # test_intrans_rollback, test_inerror_rollback: rolled back (one warning), same connection
    # next. test_active_close: returned mid-COPY: closed and replaced. test_broken_reconnect.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1})
    caplog.set_level(logging.WARNING, logger=PSYCOPG_LOGGER)
    conn = pool.getconn()
    pid = conn.info.backend_pid
    conn.autocommit = False
    conn.execute("CREATE TABLE parity_intrans ()")
    assert conn.info.transaction_status == TransactionStatus.INTRANS
    pool.putconn(conn)
    with pool.connection() as again:
        assert again.info.backend_pid == pid and again.info.transaction_status == TransactionStatus.IDLE
        assert not again.execute("SELECT 1 FROM pg_class WHERE relname = 'parity_intrans'").fetchone()
    lines = psycopg_lines(caplog)
    assert len(lines) == 1 and "INTRANS" in lines[0]

    caplog.clear()
    conn = pool.getconn()
    with pytest.raises(psycopg.ProgrammingError):
        conn.execute("wat")
    assert conn.info.transaction_status == TransactionStatus.INERROR
    pool.putconn(conn)
    with pool.connection() as again:
        assert again.info.backend_pid == pid
    lines = psycopg_lines(caplog)
    assert len(lines) == 1 and "INERROR" in lines[0]

    caplog.clear()
    conn = pool.getconn()
    conn.pgconn.exec_(b"COPY (SELECT * FROM generate_series(1, 10)) TO STDOUT")
    assert conn.info.transaction_status == TransactionStatus.ACTIVE
    pool.putconn(conn)
    with pool.connection() as again:
        assert again.info.backend_pid != pid and again.info.transaction_status == TransactionStatus.IDLE
    lines = psycopg_lines(caplog)
    assert len(lines) == 2 and "ACTIVE" in lines[0] and "BAD" in lines[1]
    assert pool.get_stats()["returns_bad"] == 1


def test_matching_connection_context_commits_rolls_back_and_keeps_the_connection(pooled):
    # connection(): commit on success, rollback on error, the connection is not closed or lost
    # (test_connection_not_lost, test_closed_putconn).
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1})
    with pool.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS parity_ctx")
        conn.execute("CREATE TABLE parity_ctx (x int)")
    with pool.connection() as conn:
        conn.autocommit = False
        conn.execute("INSERT INTO parity_ctx VALUES (1)")
        pid = conn.info.backend_pid
    assert not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE  # committed
    with pytest.raises(ZeroDivisionError):
        with pool.connection() as conn:
            conn.execute("INSERT INTO parity_ctx VALUES (2)")
            1 / 0  # noqa: B018
    with pool.connection() as conn:
        assert conn.info.backend_pid == pid
        assert conn.execute("SELECT array_agg(x) FROM parity_ctx").fetchone() == ([1],)
        conn.execute("DROP TABLE parity_ctx")


def test_matching_check_and_max_lifetime(pooled):
    # test_check_idle, test_check_max_lifetime: check() leaves connections idle; one past its
    # max_lifetime is replaced by check().
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "max_lifetime": 0.4, "check": None})
    with pool.connection() as conn:
        pid = backend_pid(conn)
    pool.check()
    with pool.connection() as conn:
        assert conn.info.transaction_status == TransactionStatus.IDLE and backend_pid(conn) == pid
    time.sleep(0.5)
    pool.check()
    with pool.connection() as conn:
        assert backend_pid(conn) != pid


def test_matching_no_check_hands_out_a_dead_connection_and_a_check_replaces_it(pooled):
    # test_connect_no_check (with "check": None, our pre-ping is off), test_connect_check,
    # test_stats_check, test_check_init.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "check": None})
    with pool.connection() as conn:
        pid = backend_pid(conn)
    kill(pid)
    with pytest.raises(psycopg.OperationalError):
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    checked: list[int] = []

    def check(conn):
        checked.append(1)
        ConnectionPool.check_connection(conn)

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "check": check})
    with pool.connection() as conn:
        pid = backend_pid(conn)
    assert checked
    kill(pid)
    with pool.connection() as conn:
        assert backend_pid(conn) != pid
    assert pool.get_stats()["connections_lost"] == 1


def test_matching_fifo_uses_connections_uniformly_without_lifo(pooled):
    # test_uniform_use (psycopg is FIFO; ours is FIFO with pool_use_lifo off).
    _wrapper, pool = pooled({"min_size": 4, "max_size": 4, "pool_use_lifo": False})
    used: dict[int, int] = {}
    for _ in range(8):
        with pool.connection() as conn:
            used[id(conn)] = used.get(id(conn), 0) + 1
    assert len(used) == 4 and set(used.values()) == {2}


def test_matching_grow_on_demand_and_spike(pooled):
    # test_grow / test_spike (condensed): clients beyond min_size make the pool grow up to
    # max_size; it never goes past it.
    _wrapper, pool = pooled({"min_size": 0, "max_size": 4})
    peak: list[int] = []

    def worker():
        with pool.connection() as conn:
            conn.execute("SELECT pg_sleep(0.1)")
            peak.append(pool.get_stats()["pool_size"])

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) == 4 and pool.get_stats()["pool_size"] == 4


def test_matching_kwargs_callable_and_connection_class(pooled):
    # test_kwargs / test_connection_class (and psycopg_pool 3.3's kwargs given as a callable),
    # on our class built directly.
    _wrapper, base = pooled({"min_size": 1, "max_size": 1})
    calls: list[int] = []

    def kwargs():
        calls.append(1)
        return dict(base.kwargs)

    class MyConnection(psycopg.Connection):
        pass

    config = PoolConfig(min_size=1, max_size=1, timeout=5, max_lifetime=3600, connection_class=MyConnection)
    pool = InstrumentedPool(alias="parity_kwargs", config=config, kwargs=kwargs)
    pool.open()
    try:
        with pool.connection() as conn:
            assert isinstance(conn, MyConnection) and conn.execute("SELECT 1").fetchone() == (1,)
        assert calls
    finally:
        pool.close()


class GivesBackOnClose(psycopg.Connection):
    """close() returns a checked-out connection to its pool (psycopg's ReturningConnection idea)."""

    def close(self) -> None:
        owner = getattr(self, "_pool", None)
        if owner is not None:
            owner.putconn(self)
        else:
            super().close()


def test_matching_close_returns_and_a_close_overriding_class(pooled):
    # test_override_close, test_close_returns, test_close_returns_custom_class.
    for options in ({"connection_class": GivesBackOnClose}, {"close_returns": True}):
        _wrapper, pool = pooled({"min_size": 2, "max_size": 2, **options})
        conn = pool.getconn()
        assert pool.idle_count() == 1
        conn.close()
        assert not conn.closed and pool.idle_count() == 2
        pool.close()
        assert conn.closed


def test_matching_close_from_another_thread(pooled):
    # test_closed_queue, test_close_connection_on_pool_close: closing the pool while a client
    # holds the only connection and another waits: the waiter gets PoolClosed, the holder keeps
    # working, and its connection is closed when it comes back.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5})
    got = threading.Event()
    release = threading.Event()
    outcome: list[Any] = []

    def holder():
        with pool.connection() as conn:
            got.set()
            release.wait(5)
            outcome.append(conn.execute("SELECT 1").fetchone())
        outcome.append(conn)

    def waiter():
        try:
            with pool.connection():
                outcome.append("served")
        except PoolClosed:
            outcome.append("closed")

    h = threading.Thread(target=holder)
    h.start()
    assert got.wait(5)
    w = threading.Thread(target=waiter)
    w.start()
    assert wait_for(lambda: pool.waiting_count() == 1)
    threading.Thread(target=pool.close).start()
    w.join(5)
    release.set()
    h.join(5)
    assert "closed" in outcome and (1,) in outcome
    assert outcome[-1].closed


def test_matching_reconnect_after_grow_failed(pooled, proxy):
    # test_reconnect_after_grow_failed / test_refill_on_check: a pool that starts with the server
    # away calls reconnect_failed, serves once it is back, and fills up to min_size.
    proxy.cut()
    failed = threading.Event()
    _wrapper, pool = pooled({"min_size": 2, "max_size": 2, "reconnect_timeout": 1.0,
                             "reconnect_failed": lambda p: failed.set()}, port=proxy.port, wait=False)
    assert failed.wait(3)
    with pytest.raises(PoolTimeout):
        with pool.connection(timeout=0.5):
            pass
    proxy.restore()
    with pool.connection(timeout=3) as conn:
        conn.execute("SELECT 1")
    pool.wait(timeout=3)
    assert pool.idle_count() == 2


def test_matching_psycopg_debug_logging_does_not_deadlock(pooled):
    # test_debug_deadlock: with the psycopg logger at DEBUG and a handler on it, the pool fills.
    wrapper, _pool = pooled({"min_size": 4, "max_size": 4})
    psycopg_root = logging.getLogger("psycopg")
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG)
    level = psycopg_root.level
    psycopg_root.setLevel(logging.DEBUG)
    psycopg_root.addHandler(handler)
    try:
        pool = wrapper._build_pool()
        pool.open(wait=True, timeout=5)
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        pool.close()
    finally:
        psycopg_root.removeHandler(handler)
        psycopg_root.setLevel(level)


def test_matching_close_returns_with_a_short_max_lifetime_does_not_loop(pooled):
    # test_close_returns_no_loop: an expired connection closed by its user goes back, is replaced,
    # and the pool settles with one idle connection.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "close_returns": True, "max_lifetime": 0.05})
    for _ in range(2):
        conn = pool.getconn()
        time.sleep(0.1)
        assert pool.idle_count() == 0
        conn.close()
        assert wait_for(lambda: pool.idle_count() == 1, timeout=2)
    assert pool.get_stats()["pool_size"] == 1


def test_matching_stats_after_check_during_an_outage(pooled, proxy):
    # test_stats_connect: check() with the server gone counts every idle connection lost and the
    # failed attempts to replace them.
    _wrapper, pool = pooled({"min_size": 3, "max_size": 3, "check": None}, port=proxy.port)
    s = pool.get_stats()
    assert s["connections_num"] == 3 and not s.get("connections_errors") and not s.get("connections_lost")
    proxy.cut()
    pool.check()
    assert wait_for(lambda: pool.get_stats().get("connections_errors", 0) > 0)
    s = pool.get_stats()
    assert s["connections_num"] > 3 and s["connections_lost"] == 3


def test_matching_putconn_to_the_wrong_pool_is_a_value_error(pooled):
    # test_putconn_wrong_pool (test_putconn_no_pool is pinned in test_pg_contract.py).
    _w1, first = pooled({"min_size": 1, "max_size": 1})
    _w2, second = pooled({"min_size": 1, "max_size": 1})
    conn = first.getconn()
    with pytest.raises(ValueError, match=f"comes from pool {first.name!r}"):
        second.putconn(conn)
    first.putconn(conn)
