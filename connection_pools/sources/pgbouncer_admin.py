"""Read PgBouncer's admin console (the virtual ``pgbouncer`` database) into typed snapshots.

One call, :func:`read_admin`, opens one short-lived connection (with a connect timeout),
runs ``SHOW VERSION``, ``POOLS``, ``STATS``, ``SERVERS``, ``CLIENTS``, ``CONFIG``,
``DATABASES`` and ``LISTS`` within one total deadline, and returns a
:class:`PgBouncerSnapshot` of frozen dataclasses. Whatever goes wrong (bad URL,
unreachable, authentication, not a console, deadline) is one :class:`PgBouncerAdminError`
whose message is one sentence with the password masked.

The console speaks only the simple query protocol. psycopg 3 sends a query over the
simple protocol only when it has no parameters, asks for text results, runs outside a
pipeline and is not (yet) prepared -- its default ``prepare_threshold=5`` switches a query
executed often enough on one connection to the extended protocol, which the console
refuses ("extended query protocol not supported by admin console"). So the reader uses
a :class:`psycopg.ClientCursor` (never prepares, always text) on a connection with
``prepare_threshold=None`` and ``autocommit=True`` (no ``BEGIN`` is sent), and no parameters.

Columns differ between PgBouncer versions, and the parsers are tolerant: unknown columns
are ignored; a column every supported version (1.8+) has reads as 0 when missing; a
column only some versions have is ``None`` when missing. Column history (PgBouncer's
changelog): 1.8 ``maxwait_us`` (POOLS), ``paused``/``disabled`` (DATABASES),
``wait``/``wait_us`` (CLIENTS/SERVERS); 1.16 ``cl_cancel_req`` (POOLS); 1.18 replaced it
by ``cl_active_cancel_req``, ``cl_waiting_cancel_req``, ``sv_active_cancel``,
``sv_being_canceled`` and added ``application_name`` (CLIENTS/SERVERS); 1.21
``prepared_statements`` (CLIENTS/SERVERS) and the ``max_prepared_statements`` setting;
1.23 ``total_server_assignment_count``/``avg_server_assignment_count`` (STATS) and
``server_lifetime`` (DATABASES); 1.24 ``total_client_parse_count``,
``total_server_parse_count``, ``total_bind_count`` and their averages (STATS); 1.25
``load_balance_hosts`` (POOLS). ``reserve_pool`` (DATABASES, up to 1.2x) is read as
``reserve_pool_size`` too.

:func:`is_pgbouncer` tells whether an open psycopg connection talks to a PgBouncer.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import pq

from ..core.pooler import (
    PgBouncerConfig,
    PgBouncerConnection,
    PgBouncerDatabase,
    PgBouncerPool,
    PgBouncerSnapshot,
    PgBouncerStats,
)

__all__ = [
    "ADMIN_DATABASE",
    "PgBouncerAdminError",
    "PgBouncerConfig",
    "PgBouncerConnection",
    "PgBouncerDatabase",
    "PgBouncerPool",
    "PgBouncerSnapshot",
    "PgBouncerStats",
    "is_pgbouncer",
    "parse_clients",
    "parse_config",
    "parse_databases",
    "parse_lists",
    "parse_pools",
    "parse_servers",
    "parse_stats",
    "parse_version",
    "read_admin",
]

ADMIN_DATABASE = "pgbouncer"
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_DEADLINE = 5.0
# libpq (and psycopg, following it) waits at least 2 s for a connection.
_MIN_CONNECT_TIMEOUT = 2

ErrorKind = Literal["config", "unreachable", "auth", "not_console", "timeout", "query"]
Row = Mapping[str, object]
Result = tuple[list[str], list[tuple[object, ...]]]  # column names, rows
_T = TypeVar("_T")


class PgBouncerAdminError(Exception):
    """Reading the admin console failed; ``str(error)`` is one sentence with the password
    masked (and anything equal to it, such as a user name that is its own password).

    ``kind`` says why: ``config`` (the URL is unusable), ``unreachable``, ``auth``
    (authentication failed or the user may not use the console), ``not_console``
    (the URL leads to something that is not PgBouncer's admin console), ``timeout``
    (the total deadline passed) or ``query`` (a ``SHOW`` command failed).
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


# --- parsing (pure: column names and row values in, typed rows out) -------------------------------


def _rows(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[Row]:
    return [dict(zip(columns, row, strict=False)) for row in rows]


def _number(value: object) -> float | None:
    """int, Decimal (``numeric`` since 1.12), or text of a number -> float; else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _int(row: Row, name: str) -> int:
    """A column every supported version has: 0 when missing or empty."""
    value = _number(row.get(name))
    return int(value) if value is not None else 0


def _opt_int(row: Row, name: str) -> int | None:
    """A column only some versions have: None when missing."""
    value = _number(row.get(name))
    return int(value) if value is not None else None


def _float(row: Row, name: str) -> float:
    value = _number(row.get(name))
    return value if value is not None else 0.0


def _us(row: Row, name: str) -> float:
    """A microseconds column as seconds (0 when missing)."""
    return _float(row, name) / 1e6


def _text(row: Row, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    return str(value)


def _time(row: Row, name: str) -> float | None:
    """A ``'2024-05-03 10:11:12 UTC'`` column (or a datetime) as Unix time; None when missing or unreadable."""
    value = row.get(name)
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip().removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return None


def parse_pools(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerPool, ...]:
    """``SHOW POOLS`` rows -> :class:`PgBouncerPool` (any PgBouncer version from 1.8)."""
    return tuple(
        PgBouncerPool(
            database=_text(row, "database") or "",
            user=_text(row, "user") or "",
            cl_active=_int(row, "cl_active"),
            cl_waiting=_int(row, "cl_waiting"),
            sv_active=_int(row, "sv_active"),
            sv_idle=_int(row, "sv_idle"),
            sv_used=_int(row, "sv_used"),
            sv_tested=_int(row, "sv_tested"),
            sv_login=_int(row, "sv_login"),
            maxwait=_float(row, "maxwait") + _us(row, "maxwait_us"),
            pool_mode=_text(row, "pool_mode"),
            cl_active_cancel_req=_opt_int(row, "cl_active_cancel_req"),
            cl_waiting_cancel_req=_opt_int(row, "cl_waiting_cancel_req"),
            sv_active_cancel=_opt_int(row, "sv_active_cancel"),
            sv_being_canceled=_opt_int(row, "sv_being_canceled"),
        )
        for row in _rows(columns, rows)
    )


def parse_stats(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerStats, ...]:
    """``SHOW STATS`` rows -> :class:`PgBouncerStats`, microseconds made seconds."""
    result = []
    for row in _rows(columns, rows):
        assignments = _number(row.get("avg_server_assignment_count"))
        result.append(PgBouncerStats(
            database=_text(row, "database") or "",
            total_xact_count=_int(row, "total_xact_count"),
            total_query_count=_int(row, "total_query_count"),
            total_received=_int(row, "total_received"),
            total_sent=_int(row, "total_sent"),
            total_xact_time=_us(row, "total_xact_time"),
            total_query_time=_us(row, "total_query_time"),
            total_wait_time=_us(row, "total_wait_time"),
            avg_xact_count=_float(row, "avg_xact_count"),
            avg_query_count=_float(row, "avg_query_count"),
            avg_recv=_float(row, "avg_recv"),
            avg_sent=_float(row, "avg_sent"),
            avg_xact_time=_us(row, "avg_xact_time"),
            avg_query_time=_us(row, "avg_query_time"),
            avg_wait_time=_us(row, "avg_wait_time"),
            total_server_assignment_count=_opt_int(row, "total_server_assignment_count"),
            avg_server_assignment_count=assignments,
            total_client_parse_count=_opt_int(row, "total_client_parse_count"),
            total_server_parse_count=_opt_int(row, "total_server_parse_count"),
            total_bind_count=_opt_int(row, "total_bind_count"),
        ))
    return tuple(result)


def _parse_connections(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerConnection, ...]:
    return tuple(
        PgBouncerConnection(
            type=_text(row, "type") or "",
            user=_text(row, "user") or "",
            database=_text(row, "database") or "",
            state=_text(row, "state") or "",
            addr=_text(row, "addr"),
            port=_opt_int(row, "port"),
            wait=_float(row, "wait") + _us(row, "wait_us"),
            # 0 = unknown (a client over TCP)
            remote_pid=_opt_int(row, "remote_pid") or None,
            application_name=_text(row, "application_name"),
            prepared_statements=_opt_int(row, "prepared_statements"),
            connect_time=_time(row, "connect_time"),
            request_time=_time(row, "request_time"),
        )
        for row in _rows(columns, rows)
    )


def parse_servers(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerConnection, ...]:
    """``SHOW SERVERS`` rows -> :class:`PgBouncerConnection`."""
    return _parse_connections(columns, rows)


def parse_clients(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerConnection, ...]:
    """``SHOW CLIENTS`` rows -> :class:`PgBouncerConnection`."""
    return _parse_connections(columns, rows)


def parse_databases(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> tuple[PgBouncerDatabase, ...]:
    """``SHOW DATABASES`` rows -> :class:`PgBouncerDatabase`."""
    result = []
    for row in _rows(columns, rows):
        reserve = "reserve_pool_size" if "reserve_pool_size" in row else "reserve_pool"
        result.append(PgBouncerDatabase(
            name=_text(row, "name") or "",
            host=_text(row, "host"),
            port=_opt_int(row, "port"),
            database=_text(row, "database") or "",
            pool_size=_int(row, "pool_size"),
            min_pool_size=_int(row, "min_pool_size"),
            reserve_pool_size=_int(row, reserve),
            pool_mode=_text(row, "pool_mode"),
            max_connections=_int(row, "max_connections"),
            current_connections=_int(row, "current_connections"),
            paused=_int(row, "paused") != 0,
            disabled=_int(row, "disabled") != 0,
        ))
    return tuple(result)


def parse_config(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> PgBouncerConfig:
    """``SHOW CONFIG`` rows (``key``, ``value``, ...) -> :class:`PgBouncerConfig`."""
    settings = {str(row.get("key")): str(row.get("value") or "") for row in _rows(columns, rows)
                if row.get("key") is not None}

    def number(name: str) -> int | None:
        value = _number(settings.get(name))
        return int(value) if value is not None else None

    return PgBouncerConfig(
        max_client_conn=number("max_client_conn"),
        default_pool_size=number("default_pool_size"),
        min_pool_size=number("min_pool_size"),
        reserve_pool_size=number("reserve_pool_size"),
        max_db_connections=number("max_db_connections"),
        max_user_connections=number("max_user_connections"),
        pool_mode=settings.get("pool_mode"),
        max_prepared_statements=number("max_prepared_statements"),
        query_wait_timeout=number("query_wait_timeout"),
        server_lifetime=number("server_lifetime"),
        server_idle_timeout=number("server_idle_timeout"),
        settings=settings,
    )


def parse_lists(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> dict[str, int]:
    """``SHOW LISTS`` rows (``list``, ``items``) -> ``{"pools": 2, "used_clients": 3, ...}``."""
    return {str(row.get("list")): _int(row, "items") for row in _rows(columns, rows) if row.get("list") is not None}


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"PgBouncer 1.18.0"`` (``SHOW VERSION``) or ``"1.18.0/bouncer"`` (the console's
    ``server_version``) -> ``(1, 18, 0)``; None when there is no version in it."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


# --- reading the console ----------------------------------------------------------------------------


def _where(params: Mapping[str, str]) -> str:
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user")
    return f"{host}:{port}" + (f" as {user}" if user else "")


def _sentence(text: str) -> str:
    """libpq's message as one sentence: its lines joined, prefixes and hints dropped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Is the server running", "HINT:"))]
    message = " ".join(lines) or "unknown error"
    # libpq prefixes: 'connection failed: connection to server at "h", port p failed: FATAL:  ...'
    message = message.rsplit(" failed: ", 1)[-1]
    message = re.sub(r"^(FATAL|ERROR):\s+", "", message)
    return message.rstrip(".")


def _masked(message: str, password: str | None) -> str:
    """``message`` with the password replaced by ``***`` wherever it stands on its own (a
    user name equal to the password included), not inside other words."""
    if not password:
        return message
    return re.sub(rf"(?<![\w]){re.escape(password)}(?![\w])", "***", message)


def _classify_connect_error(message: str) -> ErrorKind:
    lowered = message.lower()
    if any(text in lowered for text in ("authentication failed", "not allowed", "no password supplied",
                                         "not permitted to log in", "password")):
        return "auth"
    if "does not exist" in lowered:
        return "not_console"
    return "unreachable"


class _Watchdog:
    """Shuts the connection's socket down when the deadline passes, so that a read blocked
    on a hung PgBouncer returns (psycopg then raises). The lock makes sure the socket is
    never touched after :meth:`disarm`, when its descriptor may already belong to another
    connection of the process."""

    def __init__(self, fileno: int, seconds: float) -> None:
        self.fired = False
        self._fileno = fileno
        self._lock = threading.Lock()
        self._armed = True
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            try:
                # fromfd duplicates the descriptor; shutting the duplicate down ends the
                # TCP connection for both, and closing it leaves psycopg's own open.
                with socket.fromfd(self._fileno, socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


_COMMANDS: tuple[str, ...] = ("SHOW VERSION", "SHOW POOLS", "SHOW STATS", "SHOW SERVERS", "SHOW CLIENTS",
                              "SHOW CONFIG", "SHOW DATABASES", "SHOW LISTS")


def _fetch(cursor: psycopg.ClientCursor[tuple[object, ...]], command: str) -> Result:
    cursor.execute(command)  # no parameters: the simple query protocol (see the module docstring)
    if cursor.description is None:  # e.g. SHOW VERSION before 1.12 answers with a NOTICE
        return [], []
    return [column.name for column in cursor.description], cursor.fetchall()


def read_admin(url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
               deadline: float = DEFAULT_DEADLINE) -> PgBouncerSnapshot:
    """Read PgBouncer's admin console at ``url`` (``postgres://user:password@host:port/pgbouncer``
    or a libpq ``key=value`` string) and return a :class:`PgBouncerSnapshot`.

    ``connect_timeout`` bounds the connection (libpq rounds it to whole seconds, at least 2);
    ``deadline`` bounds the whole read, connection included. The reader's own client shows in
    ``SHOW CLIENTS`` as ``application_name=connection_pools.pgbouncer_admin``. Raises
    :class:`PgBouncerAdminError` (one sentence, password masked) on any failure; never anything
    else for a failure of the console.
    """
    started = time.monotonic()
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise PgBouncerAdminError("config", "The PgBouncer admin URL is not a valid PostgreSQL connection "
                                  "URL; expected postgres://user:password@host:port/pgbouncer.") from None
    password = str(params["password"]) if params.get("password") else None

    def error(kind: ErrorKind, message: str) -> PgBouncerAdminError:
        return PgBouncerAdminError(kind, _masked(message, password))

    where = _where({k: str(v) for k, v in params.items() if v is not None})
    dbname = str(params.get("dbname") or "")
    if dbname != ADMIN_DATABASE:
        raise error("config", f"The PgBouncer admin URL for {where} names the database {dbname or '(none)'!r}; "
                    "the admin console is the database 'pgbouncer'.")
    timeout = max(_MIN_CONNECT_TIMEOUT, round(min(connect_timeout, deadline)))
    params.update(connect_timeout=str(timeout), application_name="connection_pools.pgbouncer_admin")
    try:
        conn = psycopg.connect(psycopg.conninfo.make_conninfo("", **params), autocommit=True,
                               prepare_threshold=None, cursor_factory=psycopg.ClientCursor)
    except psycopg.errors.ConnectionTimeout:
        raise error("unreachable", f"PgBouncer's admin console at {where} did not accept a connection "
                    f"within {timeout} s.") from None
    except psycopg.Error as exc:
        reason = _sentence(str(exc))
        raise error(_classify_connect_error(reason), f"Cannot connect to PgBouncer's admin console at "
                    f"{where}: {reason}.") from None
    with conn:
        version = conn.info.parameter_status("server_version") or ""
        if not version.endswith("/bouncer"):
            # A PostgreSQL server with a database called pgbouncer, for example.
            raise error("not_console", f"The server at {where} is not PgBouncer's admin console "
                        f"(it reports server_version {version!r}).")
        watchdog = _Watchdog(conn.pgconn.socket, deadline - (time.monotonic() - started))
        results: dict[str, Result] = {}
        try:
            with psycopg.ClientCursor(conn) as cursor:
                for command in _COMMANDS:
                    results[command] = _fetch(cursor, command)
        except psycopg.Error as exc:
            if watchdog.fired:
                raise error("timeout", f"PgBouncer's admin console at {where} did not answer {command} "
                            f"within the {deadline:g} s deadline.") from None
            raise error("query", f"PgBouncer's admin console at {where} failed {command}: "
                        f"{_sentence(str(exc))}.") from None
        finally:
            watchdog.disarm()
    return _snapshot(results, version, started)


def _snapshot(results: Mapping[str, Result], server_version: str, started: float) -> PgBouncerSnapshot:
    def parsed(command: str, parser: Callable[[Sequence[str], Iterable[Sequence[object]]], _T]) -> _T:
        columns, rows = results[command]
        return parser(columns, rows)

    version_rows = results["SHOW VERSION"][1]
    version_text = str(version_rows[0][0]) if version_rows and version_rows[0] else server_version
    version = ".".join(map(str, parse_version(version_text) or ())) or None
    return PgBouncerSnapshot(
        version=version,
        pools=parsed("SHOW POOLS", parse_pools),
        stats=parsed("SHOW STATS", parse_stats),
        servers=parsed("SHOW SERVERS", parse_servers),
        clients=parsed("SHOW CLIENTS", parse_clients),
        databases=parsed("SHOW DATABASES", parse_databases),
        config=parsed("SHOW CONFIG", parse_config),
        lists=parsed("SHOW LISTS", parse_lists),
        taken_at=time.time(),
        duration=time.monotonic() - started,
    )


# --- is this a PgBouncer? ------------------------------------------------------------------------------


def is_pgbouncer(conn: psycopg.Connection[Any]) -> bool:
    """True when ``conn`` is connected through a PgBouncer (or to its admin console).

    PgBouncer answers the startup with its own cancel key, so the backend pid the client
    was told (``conn.info.backend_pid``) is a random number, not the pid of the PostgreSQL
    backend that runs the query (``pg_backend_pid()``); connected directly, the two are equal.
    On the admin console, ``server_version`` ends with ``/bouncer``. The check costs one
    round trip; any pooler that hands out its own cancel keys (pgcat, Odyssey...) answers
    True as well, which is what a transaction-pooling safety check wants. When the
    connection was idle outside autocommit, the transaction the query opened is rolled back,
    so that a pooler in transaction mode gets its server connection back. A failing query
    raises the caller's own ``psycopg.Error``.
    """
    if (conn.info.parameter_status("server_version") or "").endswith("/bouncer"):
        return True
    was_idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    with psycopg.ClientCursor(conn) as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    if was_idle and not conn.autocommit:
        conn.rollback()
    return row is None or row[0] != conn.info.backend_pid
