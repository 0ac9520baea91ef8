"""The streaming replica in tests: wait until it has received or replayed the
primary's writes, and hold its replay back on purpose.

Rows a test writes on the primary (users, tokens, sessions, items) are read back
through the replica router, by this process or by a gunicorn, and may lag a few
milliseconds behind: wait for the replica before reading them that way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from tests.support import server

#: The alias of the (first) replica in tests.
REPLICA = "replica1"


def _urls() -> tuple[str, list[str]]:
    urls = server.database_urls_for_tests()
    return urls["DATABASE_URL"], [url for url in urls["DATABASE_REPLICA_URLS"].split(",") if url]


def _primary_lsn(primary_url: str) -> str:
    # The insert position, not pg_current_wal_lsn() (the write position): with
    # synchronous_commit=off a just-committed transaction's commit record may not be
    # written yet, and a replica caught up to the write position would miss it.
    with psycopg.connect(primary_url, autocommit=True, connect_timeout=5) as primary:
        return primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]


def _wait_lsn(replica_url: str, lsn: str, *, replayed: bool, deadline: float) -> None:
    position = "pg_last_wal_replay_lsn()" if replayed else "pg_last_wal_receive_lsn()"
    query = f"SELECT coalesce({position} >= %s::pg_lsn, false)"
    # The positions are the server's: ask in the maintenance database, which exists before the
    # replica has replayed the creation of the test database.
    with psycopg.connect(replica_url, dbname="postgres", autocommit=True, connect_timeout=5) as replica:
        while not replica.execute(query, [lsn]).fetchone()[0]:
            if time.monotonic() > deadline:
                where = replica_url.rsplit("@", 1)[-1]
                raise TimeoutError(f"replica {where} has not {'replayed' if replayed else 'received'} {lsn}")
            time.sleep(0.01)


def wait_for_replica(*, replayed: bool = True, timeout: float = 30.0) -> None:
    """Return once the replica has received (``replayed=False``) or replayed
    everything the primary has written so far."""
    primary_url, replica_urls = _urls()
    lsn = _primary_lsn(primary_url)
    _wait_lsn(replica_urls[0], lsn, replayed=replayed, deadline=time.monotonic() + timeout)


def wait_for_replicas(timeout: float = 30.0) -> None:
    """Return once every replica has replayed everything the primary has written so far."""
    primary_url, replica_urls = _urls()
    lsn = _primary_lsn(primary_url)
    deadline = time.monotonic() + timeout
    for url in replica_urls:
        _wait_lsn(url, lsn, replayed=True, deadline=deadline)


def _set_apply_delay(replica_url: str, delay: str | None) -> None:
    with psycopg.connect(replica_url, autocommit=True, connect_timeout=5) as replica:
        if delay is None:
            replica.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
        else:
            replica.execute(sql.SQL("ALTER SYSTEM SET recovery_min_apply_delay = {}").format(sql.Literal(delay)))
        replica.execute("SELECT pg_reload_conf()")
        # The reload is asynchronous: wait until a fresh session sees the new value.
        deadline = time.monotonic() + 10
        while True:
            with psycopg.connect(replica_url, autocommit=True, connect_timeout=5) as probe:
                value = probe.execute("SHOW recovery_min_apply_delay").fetchone()[0]
            if (value == "0") == (delay is None):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"recovery_min_apply_delay is still {value!r}")
            time.sleep(0.02)


def _commit_is_held_back(primary_url: str, replica_url: str) -> bool:
    """Commit a transaction on the primary: True when the replica receives it but has
    not applied it 0.3 s later (an undelayed replica applies it within milliseconds)."""
    with psycopg.connect(primary_url, autocommit=True, connect_timeout=5) as primary:
        primary.execute("SELECT txid_current()")  # takes an xid: a commit record the delay holds back
    lsn = _primary_lsn(primary_url)
    _wait_lsn(replica_url, lsn, replayed=False, deadline=time.monotonic() + 10)
    time.sleep(0.3)
    with psycopg.connect(replica_url, autocommit=True, connect_timeout=5) as replica:
        return replica.execute("SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", [lsn]).fetchone()[0]


@contextmanager
def delayed_replay(delay: str) -> Iterator[None]:
    """Inside the block the replica applies each commit only ``delay`` (e.g. ``"5s"``)
    after it happened (``recovery_min_apply_delay``); afterwards the delay is removed
    and the replica has caught up."""
    primary_url, replica_urls = _urls()
    _set_apply_delay(replica_urls[0], delay)
    try:
        # Sessions see the new value before the startup process (which applies WAL)
        # rereads its configuration: watch a commit being held back before going on.
        for _ in range(20):
            if _commit_is_held_back(primary_url, replica_urls[0]):
                break
        else:
            raise TimeoutError(f"recovery_min_apply_delay = {delay} never took effect")
        yield
    finally:
        _set_apply_delay(replica_urls[0], None)
        wait_for_replica()


@contextmanager
def fresh_routing_state() -> Iterator[None]:
    """No replica state and no read-your-writes state before and after a test (every replica in rotation)."""
    from connection_pools.routing import replicas, scopes

    replicas.reset_state()
    token = scopes._state.set(None)
    try:
        yield
    finally:
        scopes._state.reset(token)
        replicas.reset_state()
