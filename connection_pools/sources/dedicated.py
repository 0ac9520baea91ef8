"""One dedicated server connection a report source may keep between samples (never from a pool).

At most one connection, opened on demand with the caller's parameters (connect timeout,
its own ``application_name``). A connection that failed is dropped, and one inherited
across a fork is detached first, so that closing it cannot end the parent's session.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from ..backends.postgresql.fork import detach_connection


class DedicatedConnection:
    """A lazily opened connection, owned by one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()

    def get(self, params: Callable[[], dict[str, Any]]) -> psycopg.Connection[Any]:
        """The open connection, or a new one made with ``params()``."""
        with self._lock:
            self._drop_inherited()
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(**params())
            return self._conn

    def discard(self) -> None:
        """Close the connection (after a failure, or when the process no longer samples)."""
        with self._lock:
            self._drop_inherited()
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    @property
    def is_open(self) -> bool:
        return self._conn is not None and not self._conn.closed and self._pid == os.getpid()

    def _drop_inherited(self) -> None:
        if self._pid != os.getpid():
            if self._conn is not None:
                detach_connection(self._conn)
            self._conn, self._pid = None, os.getpid()
