"""Helpers for tests that read from the real streaming replica (issue 4)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

REPLICA = "replica1"


def primary_lsn() -> str:
    with connections["default"].cursor() as cursor:
        # The insert position: with synchronous_commit=off a commit record may not be written yet.
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        return cursor.fetchone()[0]


def wait_for_replica(*, replayed: bool = True, timeout: float = 20.0) -> None:
    """Wait until the replica has received (or replayed) everything the primary wrote so far."""
    lsn = primary_lsn()
    func = "pg_last_wal_replay_lsn" if replayed else "pg_last_wal_receive_lsn"
    deadline = time.monotonic() + timeout
    while True:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(f"SELECT coalesce({func}() >= %s::pg_lsn, false)", [lsn])
            if cursor.fetchone()[0]:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"replica did not reach {lsn} ({func}) in {timeout}s")
        time.sleep(0.05)


def _set_delay(value: str | None) -> None:
    with connections[REPLICA].cursor() as cursor:
        if value is None:
            cursor.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
        else:
            cursor.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{value}'")
        cursor.execute("SELECT pg_reload_conf()")
        expected = value or "0"
        deadline = time.monotonic() + 10
        while True:
            cursor.execute("SHOW recovery_min_apply_delay")
            if cursor.fetchone()[0] == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"recovery_min_apply_delay did not become {expected}")
            time.sleep(0.05)


def _commit_is_held_back() -> bool:
    """Commit on the primary; True when the replica receives it but does not apply it soon."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT txid_current()")  # an xid: its commit record is replayed late
    lsn = primary_lsn()
    wait_for_replica(replayed=False)
    time.sleep(0.3)  # an undelayed replica applies it within milliseconds
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", [lsn])
        return cursor.fetchone()[0]


@contextmanager
def delayed_replay(delay: str) -> Iterator[None]:
    """Make the replica apply commits ``delay`` late (recovery_min_apply_delay); undone on exit.

    On entry the delay is in force: the replica's startup process reloads its
    configuration a moment after the backends do, so we watch a commit be held back.
    """
    _set_delay(delay)
    try:
        for _ in range(20):
            if _commit_is_held_back():
                break
        else:
            raise AssertionError(f"recovery_min_apply_delay = {delay} never took effect")
        yield
    finally:
        _set_delay(None)
        wait_for_replica()
