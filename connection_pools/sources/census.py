"""Source: the census of one PostgreSQL server (kind ``server``): every connection on it.

One source per server (``host:port``) among the PostgreSQL aliases -- the primary and each
replica -- named ``server_<alias>`` after the first alias on it. Its :meth:`~CensusSource.sample`
reads ``pg_stat_activity`` and ``pg_settings`` over one dedicated connection (its own
``application_name`` ``connection_pools.census``; never a pooled one) in one transaction with
``SET LOCAL statement_timeout``, so it also works through PgBouncer, and summarises the rows
(:mod:`.census_summary`). Only the census job calls it, in one process of the cluster; a
request or a scrape never does. The query text is selected only when
``CENSUS["QUERY_TEXT_LENGTH"]`` > 0, and cut by the server to that many characters.

``KIND``: a report kind, on ``GET server`` (not in ``GET stats``), with its ``/metrics`` families
(:mod:`.census_metrics`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from .. import conf
from ..backends.postgresql.attribution import settings as attribution_settings
from ..conf.aliases import AliasSpec, alias_specs, probe_params
from ..core.census import ServerCensus
from ..core.kinds import PoolKind
from ..core.masking import mask_text
from ..core.snapshots import Config
from . import census_metrics
from .base import SampleContext
from .census_summary import Backend, Limits, Options, Suspect, summarise
from .dedicated import DedicatedConnection

logger = logging.getLogger(__name__)

APPLICATION_NAME = "connection_pools.census"

SETTINGS_SQL = """
SELECT name, setting FROM pg_settings
 WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections',
                'idle_in_transaction_session_timeout')
"""
ACTIVITY_SQL = """
SELECT pid, coalesce(backend_type, ''), state, coalesce(application_name, ''), coalesce(usename::text, ''),
       coalesce(host(client_addr), ''),
       extract(epoch FROM clock_timestamp() - backend_start)::float8,
       extract(epoch FROM backend_start)::float8,
       extract(epoch FROM clock_timestamp() - state_change)::float8,
       extract(epoch FROM clock_timestamp() - query_start)::float8,
       extract(epoch FROM clock_timestamp() - xact_start)::float8,
       wait_event_type, wait_event,
       CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END,
       {query}
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid()
"""


def census_settings() -> dict[str, Any]:
    return dict(conf.get("CENSUS"))


def query_text_length() -> int:
    length = census_settings().get("QUERY_TEXT_LENGTH") or 0
    return max(int(length), 0) if isinstance(length, int | float) and not isinstance(length, bool) else 0


class CensusSource:
    """The census of one server (see the module docstring)."""

    kind = "server"

    def __init__(self, spec: AliasSpec, aliases: tuple[str, ...]) -> None:
        self.spec = spec
        self.name = f"server_{spec.alias}"
        self.role = spec.role
        self.alias = spec.alias
        self.server = spec.server
        self.aliases = aliases
        self.connection = DedicatedConnection()
        self._lock = threading.Lock()
        #: Leak suspects of the previous sample (a leak must be seen twice).
        self._suspects: set[Suspect] = set()

    def interval(self) -> float:
        return max(float(census_settings()["INTERVAL"]), 0.5)

    def timeout(self) -> float:
        return max(float(census_settings()["TIMEOUT"]), 0.1)

    def config(self) -> Config:
        return {"server": self.server, "aliases": ",".join(self.aliases), "interval": self.interval(),
                "timeout": self.timeout(), "query_text_length": query_text_length()}

    def reset(self) -> None:
        with self._lock:
            self._suspects = set()

    def close(self) -> None:
        self.connection.discard()

    def sample(self, context: SampleContext) -> ServerCensus:
        """One census of the server now; a failure is a census with ``error`` (one sentence, masked)."""
        with self._lock:
            started = time.monotonic()
            try:
                limits, rows = self._read()
            except (psycopg.Error, OSError) as exc:
                self.connection.discard()
                reason = " ".join(str(exc).split()) or type(exc).__name__
                return ServerCensus(name=self.name, server=self.server, alias=self.alias, role=self.role,
                                    taken_at=time.time(), aliases=self.aliases,
                                    error=mask_text(f"The census of {self.server} failed: {reason}"))
            finally:
                if not context.keep_connection:
                    self.connection.discard()
            _, prefix = attribution_settings()
            settings = census_settings()
            options = Options(prefix=prefix, pooled_aliases=frozenset(
                alias for alias, spec in alias_specs().items() if spec.pooler), top_owners=int(settings["TOP_OWNERS"]),
                leak_grace=float(settings["LEAK_GRACE_SECONDS"]), query_text=query_text_length() > 0,
                pooler_pids=self.pooler_pids(context))
            census, self._suspects = summarise(
                name=self.name, server=self.server, alias=self.alias, role=self.role, aliases=self.aliases, rows=rows,
                limits=limits, fleet=context.fleet, options=options, now=time.time(), suspects=self._suspects,
                duration_ms=(time.monotonic() - started) * 1000)
            return census

    def pooler_pids(self, context: SampleContext) -> dict[int, str]:
        """The backends of this server that PgBouncers hold (matched by port, and by address when the
        alias names the server by its IP address)."""
        host, _, port = self.server.rpartition(":")
        found: dict[int, str] = {}
        for where, pids in context.pooler_backends.items():
            addr, _, their_port = where.rpartition(":")
            if their_port == port and (addr == host or not _is_ip(host)):
                found.update(pids)
        return found

    def _params(self) -> dict[str, Any]:
        params = probe_params(self.alias, timeout=self.timeout(), application_name=APPLICATION_NAME)
        params.pop("options", None)  # statement_timeout is SET LOCAL below (a PgBouncer refuses "options")
        params["prepare_threshold"] = None
        return params

    def _read(self) -> tuple[Limits, list[Backend]]:
        conn = self.connection.get(self._params)
        length = query_text_length()
        query = f"left(query, {length})" if length else "NULL::text"
        with conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {max(int(self.timeout() * 1000), 1)}")
            settings = dict(conn.execute(SETTINGS_SQL).fetchall())
            rows = conn.execute(ACTIVITY_SQL.format(query=query)).fetchall()
        return _limits(settings), [_backend(row) for row in rows]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _whole(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _limits(settings: dict[str, Any]) -> Limits:
    return Limits(max_connections=_whole(settings.get("max_connections")),
                  superuser_reserved=_whole(settings.get("superuser_reserved_connections")),
                  reserved=_whole(settings.get("reserved_connections")) or 0,
                  idle_in_transaction_timeout_ms=_whole(settings.get("idle_in_transaction_session_timeout")))


def _backend(row: tuple[Any, ...]) -> Backend:
    (pid, backend_type, state, application_name, user, address, age, start, state_age, query_age, xact_age,
     wait_type, wait_event, blocked_by, query) = row
    return Backend(pid=int(pid), backend_type=backend_type, state=state, application_name=application_name,
                   user=user, address=address, backend_seconds=float(age or 0.0), backend_start=float(start or 0.0),
                   state_seconds=_seconds(state_age), query_seconds=_seconds(query_age),
                   transaction_seconds=_seconds(xact_age), wait_event_type=wait_type, wait_event=wait_event,
                   blocked_by=tuple(int(p) for p in blocked_by or ()), query=query)


def _seconds(value: Any) -> float | None:
    return None if value is None else max(float(value), 0.0)


def discover() -> Iterator[CensusSource]:
    """One census per PostgreSQL server of ``DATABASES`` (``CENSUS["ENABLED"]``)."""
    if not census_settings().get("ENABLED", True):
        return
    servers: dict[str, list[AliasSpec]] = {}
    for spec in alias_specs().values():
        if spec.is_postgresql:
            servers.setdefault(spec.server, []).append(spec)
    for specs in servers.values():
        first = next((s for s in specs if s.role == "primary"), specs[0])
        yield CensusSource(first, tuple(s.alias for s in specs))


KIND = PoolKind(kind="server", metrics=frozenset(), reports=True, families=census_metrics.FAMILIES,
                samples=census_metrics.samples)
