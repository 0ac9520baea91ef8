"""Fork safety with a real os.fork: the child never reuses the parent's pool or sessions."""

from __future__ import annotations

import json
import os

import pytest

from connection_pools.backends.postgresql.live import InstrumentedPool
from tests.support.pg import (
    dispose,
    make_wrapper,
    server_pids,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]


def _run_in_child(func) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running any cleanup of the parent's objects
        try:
            os.close(read_fd)
            result = func()
        except BaseException as exc:
            result = {"error": repr(exc)}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_pool_opened_before_fork_is_replaced_in_the_child():
    # No pre-ping: if the child had terminated the parent's sessions, the parent would see it.
    wrapper = make_wrapper({"pool_size": 2, "max_overflow": 0, "pool_pre_ping": False})
    try:
        parent_pool = wrapper.pool
        assert parent_pool.wait_ready(10)
        with wrapper.cursor() as cursor:  # the wrapper holds a checked-out connection across the fork
            cursor.execute("SELECT pg_backend_pid()")
            (held_pid,) = cursor.fetchone()
        parent_pids = server_pids(wrapper.alias)

        def child():
            inherited = list(parent_pool._pool)
            pool = wrapper.pool  # detects the pid change by itself
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
            wrapper.close()
            for conn in inherited:  # closing what was inherited must not reach the parent's sessions
                conn.close()
            return {"new_pool": pool is not parent_pool and isinstance(pool, InstrumentedPool),
                    "pool_pid": pool.pid, "backend": pid,
                    "checkouts": pool.counters.count("checkouts")}

        result = _run_in_child(child)
        assert "error" not in result, result
        assert result["new_pool"] and result["pool_pid"] != os.getpid()
        assert result["backend"] not in parent_pids
        assert result["checkouts"] == 1  # the child's stats start from zero
        # The parent's sessions are intact: the held one and the idle ones still work.
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] == held_pid
        wrapper.close()
        conns = [parent_pool.getconn() for _ in range(2)]
        assert sorted(c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in conns) == parent_pids
        for conn in conns:
            parent_pool.putconn(conn)
        assert wrapper.pool is parent_pool
    finally:
        dispose(wrapper)


def test_after_fork_hook_replaces_inherited_pools():
    from connection_pools import lifecycle
    from connection_pools.backends.postgresql.base import DatabaseWrapper

    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0})
    try:
        parent_pool = wrapper.pool

        def child():
            lifecycle.after_fork()
            return {"still_there": DatabaseWrapper._connection_pools.get(wrapper.alias) is parent_pool,
                    "inert": parent_pool.closed}

        result = _run_in_child(child)
        assert result == {"still_there": False, "inert": True}
        assert not parent_pool.closed
    finally:
        dispose(wrapper)


@pytest.mark.slow
def test_gunicorn_preload_workers_warm_their_own_pools(gunicorn_server):
    from tests.support.pg import wait_for

    app_name = f"warm-test-{os.getpid()}"
    env = {"CONNECTION_POOLS_WARM": "1", "DATABASE_POOL_SIZE": "3", "DATABASE_POOL_OVERFLOW": "2",
           "PGAPPNAME": app_name}
    with gunicorn_server(workers=2, threads=2, env=env, extra_args=["--preload"]) as server:
        # Each worker opened pool_size connections to the primary at start-up, none before the fork.
        assert wait_for(lambda: len(server_pids(app_name)) == 6, timeout=20)
        assert len(server_pids(app_name)) == 6
        assert len(server.worker_pids()) == 2
