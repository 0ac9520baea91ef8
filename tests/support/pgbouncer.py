"""The real PgBouncer that scripts/devservices runs in front of the primary (transaction mode):
its URLs, its admin console, and a TCP relay that can stop passing bytes on cue."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import pytest

from connection_pools.pgbouncer_admin import PgBouncerSnapshot, read_admin
from tests.support.pg import wait_for

T = TypeVar("T")
SINGLE_DB = "pools_single"  # devservices' database entry with pool_size=1 (the primary's `pools`)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: start PgBouncer with scripts/devservices start and load "
                    "its settings with eval \"$(scripts/devservices env)\"")
    return value


def admin_url() -> str:
    """The console as the read-only stats user (``PGBOUNCER_ADMIN_URL``)."""
    return _env("PGBOUNCER_ADMIN_URL")


def control_url() -> str:
    """The console as an admin user (PAUSE, RESUME...)."""
    return _env("PGBOUNCER_CONTROL_URL")


def database_url(dbname: str) -> str:
    """``PGBOUNCER_DATABASE_URL`` with another database name (PgBouncer forwards any name)."""
    base, _, _ = _env("PGBOUNCER_DATABASE_URL").rpartition("/")
    return f"{base}/{dbname}"


def port() -> int:
    """The port PgBouncer listens on."""
    return int(psycopg.conninfo.conninfo_to_dict(admin_url())["port"])


def connect(dbname: str, application_name: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A client connection through PgBouncer, safe for transaction pooling."""
    kwargs.setdefault("autocommit", True)
    kwargs.setdefault("prepare_threshold", None)
    return psycopg.connect(database_url(dbname), application_name=application_name, connect_timeout=10, **kwargs)


def console(sql: str) -> None:
    """Run one admin command (``PAUSE db``, ``RESUME db``...) on the console."""
    with psycopg.connect(control_url(), autocommit=True, prepare_threshold=None,
                         cursor_factory=psycopg.ClientCursor, connect_timeout=10) as conn:
        conn.execute(sql)


def release_servers(dbname: str, timeout: float = 20.0) -> bool:
    """Make PgBouncer close its server connections to ``dbname`` (``RECONNECT``) and wait until
    they are gone: a test database cannot be dropped while PgBouncer keeps connections to it,
    and server connections keep session state (prepared statements) from earlier clients.
    True when none is left."""
    console(f"RECONNECT {dbname}")
    return bool(wait_for(lambda: not any(s.database == dbname for s in read_admin(admin_url()).servers),
                         timeout=timeout, interval=0.05))


def wait_for_snapshot(predicate: Callable[[PgBouncerSnapshot], T], timeout: float = 20.0) -> PgBouncerSnapshot:
    """Read the console until ``predicate(snapshot)`` holds (or the timeout passes); the last snapshot."""
    last: list[PgBouncerSnapshot] = []

    def check() -> bool:
        last[:] = [read_admin(admin_url())]
        return bool(predicate(last[0]))

    wait_for(check, timeout=timeout, interval=0.05)
    return last[0]


class FreezingRelay:
    """A TCP relay on loopback to ``target``; once the client sends ``freeze_on`` (bytes),
    it stops passing anything in either direction, as a hung server would.

    ``with FreezingRelay(("127.0.0.1", 6432), freeze_on=b"SHOW STATS") as relay: relay.port``
    """

    def __init__(self, target: tuple[str, int], *, freeze_on: bytes) -> None:
        self.target = target
        self.freeze_on = freeze_on
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # accept() wakes up to notice the stop
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> FreezingRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            self._sockets += [client, server]
            self._spawn(self._pipe, client, server, True)
            self._spawn(self._pipe, server, client, False)

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if from_client and self.freeze_on in data:
                self.frozen.set()
            if self.frozen.is_set():
                continue  # swallow: the peer waits for an answer that never comes
            try:
                sink.sendall(data)
            except OSError:
                return
