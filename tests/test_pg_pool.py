"""The guide's six settings, observed on the real primary (pg_stat_activity), with exact counters."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import OperationalError
from psycopg_pool import PoolTimeout

from connection_pools.backends.postgresql import compat
from connection_pools.backends.postgresql.live import DatabaseUnavailable, InstrumentedPool
from connection_pools.checks import check_psycopg_pool_internals
from tests.support.pg import (
    backend_pid,
    counters_of,
    dispose,
    make_wrapper,
    server_pids,
    snapshot_of,
    terminate,
    wait_for,
)
from tests.support.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]


@pytest.fixture
def small_pool(pooled):
    """Factory: a dedicated alias with a small pool in the guide's names; disposed after the test."""
    return lambda **options: pooled({"pool_size": 2, "max_overflow": 1, "pool_timeout": 0.5, **options})


def counters(pool: InstrumentedPool) -> dict[str, int]:
    return counters_of(pool)


def test_pool_size_connections_are_opened_up_front_and_no_overflow(small_pool):
    wrapper, pool = small_pool(pool_size=3, max_overflow=2)
    assert len(server_pids(wrapper.alias)) == 3
    # A checkout through Django serves from those: no overflow connection appears.
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    wrapper.close()
    assert len(server_pids(wrapper.alias)) == 3
    snap = snapshot_of(wrapper)
    assert snap.counters.connections_created == 3
    assert snap.counters.checkouts == 1
    assert snap.gauges.open == 3 and snap.gauges.overflow_in_use == 0
    assert snap.config["pool_size"] == 3 and snap.config["max_overflow"] == 2
    assert (pool.min_size, pool.max_size, pool.timeout) == (3, 5, 0.5)


def test_fifty_threads_never_exceed_pool_size_plus_overflow(small_pool):
    wrapper, pool = small_pool(pool_size=2, max_overflow=3, pool_timeout=30, max_idle=0.3)
    seen_max = 0
    stop = threading.Event()

    def watch():
        nonlocal seen_max
        while not stop.is_set():
            seen_max = max(seen_max, len(server_pids(wrapper.alias)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    barrier = threading.Barrier(50)
    errors = []

    def work():
        try:
            barrier.wait()
            for _ in range(3):
                conn = pool.getconn()
                try:
                    conn.execute("SELECT pg_sleep(0.01)")
                finally:
                    pool.putconn(conn)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert 2 < seen_max <= 5  # overflow was used, never past pool_size + max_overflow
    snap = snapshot_of(wrapper)
    assert snap.counters.checkouts == 150
    assert snap.hold.count == 150
    assert snap.peak_active == 5
    assert snap.gauges.active == 0
    # Idle overflow is closed again (psycopg's max_idle rule), back to pool_size.
    assert wait_for(lambda: len(server_pids(wrapper.alias)) == 2, timeout=15)
    created, closed = counters(pool)["connections_created"], counters(pool)["connections_closed"]
    assert created - closed == 2


def test_timeout_raises_pool_timeout_and_is_counted(small_pool):
    wrapper, pool = small_pool(pool_size=1, max_overflow=1, pool_timeout=0.3)
    held = [pool.getconn(), pool.getconn()]
    with pytest.raises(PoolTimeout):
        pool.getconn()
    # Through Django: a clear OperationalError caused by the PoolTimeout.
    with pytest.raises(OperationalError) as excinfo:
        wrapper.ensure_connection()
    assert isinstance(excinfo.value.__cause__, PoolTimeout)
    for conn in held:
        pool.putconn(conn)
    assert counters(pool)["timeouts"] == 2
    assert counters(pool)["checkouts"] == 2


def test_recycle_replaces_old_connections(small_pool):
    wrapper, pool = small_pool(pool_size=1, max_overflow=0, pool_recycle=0.4, pool_pre_ping=False)
    conn = pool.getconn()
    first = backend_pid(conn)
    pool.putconn(conn)
    time.sleep(0.5)  # the idle connection is now past pool_recycle
    conn = pool.getconn()
    second = backend_pid(conn)
    pool.putconn(conn)
    assert second != first
    assert first not in server_pids(wrapper.alias)
    c = counters(pool)
    assert c["recycled"] == 1 and c["connections_closed"] == 1 and c["connections_created"] == 2


def test_pre_ping_hides_killed_backends_promptly(small_pool):
    wrapper, pool = small_pool(pool_size=3, max_overflow=0, pool_timeout=2)
    killed = server_pids(wrapper.alias)
    assert len(killed) == 3
    terminate(killed)  # a mass disconnect: every idle connection is dead
    held = []
    for _ in range(3):
        conn = pool.getconn()  # psycopg alone: PoolTimeout after 2 s here (DESIGN.md trap)
        assert backend_pid(conn) not in killed
        held.append(conn)
    for conn in held:
        pool.putconn(conn)
    c = counters(pool)
    assert c["pre_ping_failures"] == 3
    assert c["connections_closed"] == 3
    assert c["connections_created"] == 6
    assert c["timeouts"] == 0
    assert len(server_pids(wrapper.alias)) == 3


def test_without_pre_ping_a_killed_backend_reaches_the_application(small_pool):
    wrapper, pool = small_pool(pool_size=1, max_overflow=0, pool_pre_ping=False)
    terminate(server_pids(wrapper.alias))
    conn = pool.getconn()
    with pytest.raises(Exception):  # noqa: B017 - psycopg's OperationalError/InterfaceError
        conn.execute("SELECT 1")
    pool.putconn(conn)
    assert counters(pool)["pre_ping_failures"] == 0
    assert wait_for(lambda: counters(pool)["connections_closed"] == 1)


def test_pre_ping_window_hands_out_a_connection_just_used_without_a_round_trip(small_pool):
    _wrapper, pool = small_pool(pool_size=1, max_overflow=0, pool_pre_ping_window=60)
    conn = pool.getconn()
    killed = backend_pid(conn)
    pool.putconn(conn)
    terminate([killed])
    conn = pool.getconn()  # proved alive moments ago: no ping...
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # ...which is what the window trades away
    pool.putconn(conn)
    assert counters(pool)["pre_ping_failures"] == 0


def test_pre_ping_window_pings_again_once_it_has_passed(small_pool):
    _wrapper, pool = small_pool(pool_size=1, max_overflow=0, pool_pre_ping_window=0.2)
    conn = pool.getconn()
    killed = backend_pid(conn)
    pool.putconn(conn)
    terminate([killed])
    time.sleep(0.3)
    conn = pool.getconn()
    assert backend_pid(conn) != killed
    pool.putconn(conn)
    assert counters(pool)["pre_ping_failures"] == 1


def test_lifo_hands_out_the_most_recently_returned_connection(small_pool):
    _wrapper, pool = small_pool(pool_size=3, max_overflow=0)
    conns = [pool.getconn() for _ in range(3)]
    pids = [backend_pid(c) for c in conns]
    for conn in conns:  # returned in order: pids[2] is the most recent
        pool.putconn(conn)
    for _ in range(5):
        conn = pool.getconn()
        assert backend_pid(conn) == pids[2]
        pool.putconn(conn)


def test_fifo_when_lifo_is_off(small_pool):
    _wrapper, pool = small_pool(pool_size=3, max_overflow=0, pool_use_lifo=False)
    conns = [pool.getconn() for _ in range(3)]
    pids = [backend_pid(c) for c in conns]
    for conn in conns:
        pool.putconn(conn)
    conn = pool.getconn()
    assert backend_pid(conn) == pids[0]
    pool.putconn(conn)


def test_server_refusing_connections_fails_fast_with_a_clear_error():
    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 1, "pool_timeout": 3}, port=free_port())
    try:
        pool = wrapper.pool
        # Without fail-fast each checkout waits for psycopg's background retries (1 s, 2 s,
        # 4 s apart...) and the third one raises PoolTimeout after the whole pool_timeout.
        for _ in range(4):
            with pytest.raises(DatabaseUnavailable, match="cannot open a new connection"):
                pool.getconn()
        with pytest.raises(OperationalError) as excinfo:
            wrapper.ensure_connection()
        assert isinstance(excinfo.value.__cause__, DatabaseUnavailable)
        c = counters(pool)
        assert c["connection_errors"] >= 1 and c["timeouts"] == 0 and c["checkouts"] == 0
    finally:
        dispose(wrapper)


def test_resize_grows_and_shrinks_a_live_pool(small_pool, monkeypatch):
    from connection_pools.backends.postgresql import live as postgres
    from connection_pools.signals import pool_resized

    wrapper, pool = small_pool(pool_size=1, max_overflow=0)
    monkeypatch.setattr(postgres, "get_pool", lambda alias: pool)
    sent = []

    def receiver(**kwargs):
        sent.append(kwargs)

    pool_resized.connect(receiver)
    try:
        result = postgres.resize_pool(wrapper.alias, pool_size=3, max_overflow=1)
        assert result["old"] == {"pool_size": 1, "max_overflow": 0}
        assert wait_for(lambda: len(server_pids(wrapper.alias)) == 3)
        assert snapshot_of(wrapper).config["pool_size"] == 3
        held = [pool.getconn() for _ in range(4)]
        assert len(server_pids(wrapper.alias)) == 4
        postgres.resize_pool(wrapper.alias, pool_size=1, max_overflow=0)
        for conn in held:
            pool.putconn(conn)
        # Surplus connections are closed as they come back: never more than the new max.
        assert len(server_pids(wrapper.alias)) == 1
        with pytest.raises(ValueError, match="pool_size"):
            postgres.resize_pool(wrapper.alias, pool_size=0, max_overflow=0)
    finally:
        pool_resized.disconnect(receiver)
    assert [s["new"] for s in sent] == [{"pool_size": 3, "max_overflow": 1}, {"pool_size": 1, "max_overflow": 0}]


def test_long_hold_is_logged_and_counted_once(small_pool, settings, caplog):
    settings.CONNECTION_POOLS = {"LONG_HOLD_SECONDS": 0.05}
    _wrapper, pool = small_pool()
    conn = pool.getconn()
    time.sleep(0.1)
    with caplog.at_level("WARNING", logger="connection_pools.postgres"):
        assert pool.report_long_holds() == 1  # still held: a leak is reported while it lasts
        pool.putconn(conn)  # and not counted a second time on return
    assert counters(pool)["long_holds"] == 1
    assert "held for" in caplog.text and "outside a web request" in caplog.text


def test_reset_zeroes_counters_without_touching_the_pool(small_pool):
    wrapper, pool = small_pool()
    conn = pool.getconn()
    pool.putconn(conn)
    pool.counters.reset()
    snap = snapshot_of(wrapper)
    assert snap.counters.checkouts == 0 and snap.wait.count == 0
    assert snap.gauges.open == 2 and len(server_pids(wrapper.alias)) == 2


def test_the_source_names_the_pool_db_alias_with_its_kind_and_role():
    wrapper = make_wrapper({"pool_size": 2, "max_overflow": 1})
    try:
        assert wrapper.pool.wait_ready(10)
        snap = snapshot_of(wrapper)
        assert (snap.name, snap.kind, snap.role, snap.alias) == (f"db_{wrapper.alias}", "postgresql", "primary",
                                                                 wrapper.alias)
        assert (snap.gauges.open, snap.gauges.capacity, snap.gauges.max_capacity, snap.gauges.available) == (2, 2, 3, 2)
    finally:
        dispose(wrapper)


def test_the_psycopg_pool_internals_we_rely_on_are_all_there(small_pool):
    # An upgrade of psycopg-pool that renames one of them must fail here, loudly,
    # rather than leave the fast paths or LIFO quietly broken.
    _wrapper, pool = small_pool()
    conn = pool.getconn()
    try:
        assert compat.missing_internals(pool, conn) == []
    finally:
        pool.putconn(conn)
    assert check_psycopg_pool_internals() == []


def test_a_missing_internal_is_named_by_the_check(monkeypatch):
    from psycopg_pool import ConnectionPool

    monkeypatch.delattr(ConnectionPool, "_add_to_pool")
    assert compat.missing_internals() == ["ConnectionPool._add_to_pool"]
    (error,) = check_psycopg_pool_internals()
    assert error.id == "connection_pools.E003" and "ConnectionPool._add_to_pool" in error.msg
    assert compat.missing_internals(object(), object())[1:] == [
        *(f"pool.{name}" for name in compat.POOL_ATTRIBUTES),
        *(f"connection.{name}" for name in compat.CONNECTION_ATTRIBUTES),
    ]


def test_pool_of_names_the_pool_a_connection_goes_back_to(small_pool) -> None:
    wrapper, pool = small_pool()
    conn = pool.getconn()
    try:
        assert compat.pool_of(conn) is pool
    finally:
        pool.putconn(conn)
    plain = psycopg.connect(**wrapper.get_connection_params())
    try:
        assert compat.pool_of(plain) is None and compat.pool_of(object()) is None
    finally:
        plain.close()
