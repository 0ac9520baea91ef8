"""The common-case checkout and return (``PoolHooks.checkout_idle`` / ``put_idle``) and the vetting
at checkout (``PoolHooks._vetted``) behave as psycopg_pool 3.3's own ``getconn`` / ``putconn``:
its log lines (written by psycopg's own code, at its moments), its timeouts, its counters when a
checkout is interrupted. Where it helps, psycopg's behaviour is shown on a plain
``psycopg_pool.ConnectionPool`` built with the same connection parameters, beside ours, on the
real server. (Not kept: the origin of the "connection given by" record -- our check loop writes
it, from compat.py.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from connection_pools.backends.postgresql.pool import DatabaseUnavailable
from tests.support.pg import (
    backend_pid,
    reference_pool,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]

PSYCOPG_LOGGER = "psycopg.pool"


# -- helpers ---------------------------------------------------------------------------------
class Recorder(logging.Handler):
    """Every psycopg.pool record, with the pool's state at the moment it was written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.pools: list[Any] = []
        self.records: list[tuple[logging.LogRecord, int, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        for pool in self.pools:
            if repr(pool.name) in record.getMessage():
                stats = pool.get_stats()
                self.records.append((record, stats["pool_available"], stats.get("requests_num", 0)))
                return
        self.records.append((record, -1, -1))

    def lines(self, pool: Any) -> list[str]:
        """The messages about ``pool``, its name taken out (so two pools' lines compare)."""
        name = repr(pool.name)
        return [record.getMessage().replace(name, "<pool>") for record, _a, _r in self.records
                if name in record.getMessage()]

    def with_state(self, pool: Any) -> list[tuple[str, int, int]]:
        name = repr(pool.name)
        return [(record.getMessage().replace(name, "<pool>"), available, requests)
                for record, available, requests in self.records if name in record.getMessage()]


@contextlib.contextmanager
def recording(*pools: Any) -> Iterator[Recorder]:
    recorder = Recorder()
    recorder.pools.extend(pools)
    psycopg_logger = logging.getLogger(PSYCOPG_LOGGER)
    level = psycopg_logger.level
    psycopg_logger.addHandler(recorder)
    psycopg_logger.setLevel(logging.INFO)
    try:
        yield recorder
    finally:
        psycopg_logger.removeHandler(recorder)
        psycopg_logger.setLevel(level)


CHECKOUT_LINES = ("connection requested from <pool>", "connection given by <pool>")


def checkout_lines(recorder: Recorder, pool: Any) -> list[str]:
    return [line for line in recorder.lines(pool) if line in CHECKOUT_LINES]


# -- psycopg's log lines: written whatever the outcome, at psycopg's moments, on every path ----------
def test_a_checkout_interrupted_in_its_check_logs_its_request_and_gives_the_connection_back(pooled):
    # psycopg's getconn() writes "connection requested from" first, before anything can fail: a
    # checkout that fails in its check still leaves the line; and, as psycopg's loop does, the
    # connection goes back to the pool (its one slot serves the next client).
    interrupt = threading.Event()

    def check(conn):
        if interrupt.is_set():
            raise KeyboardInterrupt

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5, "check": check})
    with reference_pool(pool, check=check) as plain, recording(pool, plain) as recorder:
        interrupt.set()
        with pytest.raises(KeyboardInterrupt):
            plain.getconn()
        with pytest.raises(KeyboardInterrupt):
            pool.getconn()
        interrupt.clear()
        assert checkout_lines(recorder, plain) == ["connection requested from <pool>"]  # psycopg
        assert checkout_lines(recorder, pool) == ["connection requested from <pool>"]
    assert wait_for(lambda: pool.idle_count() == 1)
    conn = pool.getconn()
    backend_pid(conn)
    pool.putconn(conn)
    assert pool.get_stats()["pool_size"] == 1


def test_a_checkout_failing_during_an_outage_still_logs_connection_requested(pooled, proxy):
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5}, port=proxy.port)
    proxy.cut()  # the idle connection dies; its successor is refused
    with recording(pool) as recorder:
        with pytest.raises(DatabaseUnavailable):
            pool.getconn()
    assert checkout_lines(recorder, pool) == ["connection requested from <pool>"]


def test_psycopgs_log_lines_are_written_at_the_same_point_of_the_checkout_and_return(pooled):
    # psycopg: "connection requested" before the connection leaves the pool and before
    # requests_num counts it; "returning connection" before the connection is back in the pool
    # (so no other thread can have taken it and logged first).
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5, "check": None})
    with reference_pool(pool) as plain, recording(pool, plain) as recorder:
        plain.putconn(plain.getconn())
        pool.putconn(pool.getconn())
    wanted = [line for line in recorder.with_state(plain)
              if line[0] in (*CHECKOUT_LINES, "returning connection to <pool>")]
    assert wanted == [("connection requested from <pool>", 1, 0), ("connection given by <pool>", 0, 1),
                      ("returning connection to <pool>", 0, 1)]  # psycopg's, as its code reads
    got = [line for line in recorder.with_state(pool)
           if line[0] in (*CHECKOUT_LINES, "returning connection to <pool>")]
    assert got == wanted


def test_a_queued_checkout_logs_connection_given_by_as_psycopg_does(pooled):
    # Our _getconn_with_check_loop override replaces psycopg's loop, which is where psycopg writes
    # "connection given by": a checkout that waited (the pool growing) gets the line too.
    _wrapper, pool = pooled({"min_size": 0, "max_size": 1, "timeout": 5})
    with reference_pool(pool, min_size=0, max_size=1) as plain, recording(pool, plain) as recorder:
        plain.putconn(plain.getconn())  # nothing idle: queued while the pool grows
        conn = pool.getconn()  # the same, on ours
        backend_pid(conn)
        pool.putconn(conn)
    assert checkout_lines(recorder, plain) == list(CHECKOUT_LINES)
    assert checkout_lines(recorder, pool) == list(CHECKOUT_LINES)


# -- timeouts: the effective one, and the time left -----------------------------------------------
def test_the_pools_own_timeout_of_zero_refuses_a_checkout_as_psycopgs_does(pooled):
    # psycopg's getconn(): timeout None -> self.timeout; <= 0 raises PoolTimeout (in
    # _get_ready_connection) even with a connection idle. (Settings validation keeps
    # pool_timeout > 0; the attribute is psycopg's public one.)
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5, "check": None})
    with reference_pool(pool, timeout=0) as plain:
        with pytest.raises(PoolTimeout):
            plain.getconn()
    pool.timeout = 0
    try:
        with pytest.raises(PoolTimeout):
            conn = pool.getconn()
            pool.putconn(conn)
    finally:
        pool.timeout = 5


def test_a_timeout_shorter_than_the_checkout_itself_is_a_pool_timeout_as_in_psycopg(pooled):
    # psycopg passes deadline - monotonic() down to _get_ready_connection, which raises
    # PoolTimeout when it is <= 0 by then: a positive timeout shorter than getconn's own
    # bookkeeping fails even with a connection idle.
    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5, "check": None})
    tiny = 1e-9
    with reference_pool(pool) as plain:
        with pytest.raises(PoolTimeout):
            plain.getconn(timeout=tiny)
    with pytest.raises(PoolTimeout):
        conn = pool.getconn(timeout=tiny)
        pool.putconn(conn)


# -- an interrupted replacement -------------------------------------------------------------------
@pytest.mark.parametrize("why", ["dead", "expired"])
def test_a_replacement_interrupted_counts_no_extra_lost_connection(pooled, why):
    # An interrupted *check* gives the connection back (_putconn(from_getconn=True)), as psycopg's
    # loop does. An interrupt in the replacement, after the old connection was closed, must not:
    # psycopg would see a closed connection "found broken" and count it lost once more (a dead
    # one twice, an expired one at all). The slot still comes back (psycopg's reconnection).
    failing = threading.Event()

    def check(conn):
        if failing.is_set():
            raise psycopg.OperationalError("told to fail")

    options: dict[str, Any] = {"min_size": 1, "max_size": 1, "timeout": 5, "check": check}
    if why == "expired":
        options["max_lifetime"] = 0.3
    _wrapper, pool = pooled(options)
    params = dict(pool.kwargs)
    caller = threading.get_ident()
    interrupt = threading.Event()

    def kwargs() -> dict[str, Any]:  # psycopg 3.3 accepts a callable; the interrupt hits the caller only
        if interrupt.is_set() and threading.get_ident() == caller:
            interrupt.clear()
            raise KeyboardInterrupt
        return params

    before = pool.get_stats().get("connections_lost", 0)
    pool.kwargs = kwargs
    try:
        if why == "dead":
            failing.set()  # the pre-ping finds the idle connection dead...
        else:
            assert wait_for(lambda: pool.idle_connections()[0]._expire_at < time.monotonic(), 2)
        interrupt.set()  # ...and the successor's connect, in the caller, is interrupted
        with pytest.raises(KeyboardInterrupt):
            pool.getconn()
        failing.clear()
        assert wait_for(lambda: pool.idle_count() == 1)  # the slot is refilled in the background
    finally:
        pool.kwargs = params
    lost = pool.get_stats().get("connections_lost", 0) - before
    assert lost == (1 if why == "dead" else 0)


# -- a failed check ---------------------------------------------------------------------------------
def test_a_failed_check_writes_psycopgs_connection_failed_check_line(pooled):
    # psycopg's _check_connection: logger.info("connection failed check: %s", e) on psycopg.pool;
    # ours writes the same line when the user's check fails (and replaces the connection in the caller).
    failing = threading.Event()

    def check(conn):
        if failing.is_set():
            failing.clear()  # fails once
            raise psycopg.OperationalError("told to fail")

    _wrapper, pool = pooled({"min_size": 1, "max_size": 1, "timeout": 5, "check": check})
    with reference_pool(pool, check=check) as plain, recording(pool, plain) as recorder:
        failing.set()
        plain.putconn(plain.getconn())  # psycopg: logged, put back, checked again after ~1 s
        failing.set()
        pool.putconn(pool.getconn())
    psycopg_lines = [record.getMessage() for record, _a, _q in recorder.records
                     if record.getMessage().startswith("connection failed check")]
    assert psycopg_lines == ["connection failed check: told to fail"] * 2
