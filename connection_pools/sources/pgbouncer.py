"""Source: one PgBouncer, read from its admin console (kind ``pgbouncer``, role ``pooler``).

One source per URL of ``CONNECTION_POOLS["PGBOUNCER"]["ADMIN_URLS"]`` (env
``PGBOUNCER_ADMIN_URL``, comma-separated), named ``pgbouncer_1``, ``pgbouncer_2``... Its
:meth:`~PgBouncerSource.sample` reads ``SHOW POOLS``, ``STATS``, ``SERVERS``, ``CLIENTS``,
``CONFIG``, ``DATABASES`` and ``LISTS`` (:func:`~.pgbouncer_admin.read_admin`, one short-lived
connection within one deadline) into a :class:`~connection_pools.core.pooler.PgBouncerReport`.
An unreachable console is a report with its error (one sentence, password masked), which is
what PgBouncer's health shows. The admin database's own pool (``pgbouncer``) and our own
console client are left out.

``KIND`` is how every surface shows PgBouncer: a report kind, whose pools are ``pgbouncer_pools``
in ``GET stats`` (:mod:`.pgbouncer_figures`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg

from .. import conf
from ..core.kinds import PoolKind
from ..core.pooler import PgBouncerReport, count_states, recent_logins, server_pids
from ..core.responses import PgBouncerPoolJSON
from ..core.snapshots import Config
from . import pgbouncer_figures as figures
from .base import SampleContext
from .pgbouncer_admin import ADMIN_DATABASE, PgBouncerAdminError, read_admin

READER_NAME = "connection_pools.pgbouncer_admin"


def pgbouncer_settings() -> dict[str, Any]:
    return dict(conf.get("PGBOUNCER"))


def where(url: str) -> str:
    """``host:port`` of a console URL (no credentials), or ``?`` when it does not parse."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "?"
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 6432}"


class PgBouncerSource:
    """One PgBouncer's admin console (see the module docstring)."""

    kind = "pgbouncer"
    role = "pooler"

    def __init__(self, index: int, url: str) -> None:
        self.url = url
        self.name = f"pgbouncer_{index}"
        self.server = where(url)
        self.alias = self.server

    def interval(self) -> float:
        return max(float(pgbouncer_settings()["INTERVAL"]), 0.5)

    def timeout(self) -> float:
        return max(float(pgbouncer_settings()["TIMEOUT"]), 0.5)

    def config(self) -> Config:
        return {"server": self.server, "interval": self.interval(), "timeout": self.timeout()}

    def reset(self) -> None:
        return None  # PgBouncer's counters are its own

    def close(self) -> None:
        return None  # a connection per read

    def sample(self, context: SampleContext) -> PgBouncerReport:
        """Read the console now; an unreachable or failing console is a report with ``error``."""
        started = time.monotonic()
        try:
            snapshot = read_admin(self.url, connect_timeout=self.timeout(), deadline=self.timeout())
        except PgBouncerAdminError as exc:
            return PgBouncerReport(name=self.name, server=self.server, taken_at=time.time(), error=str(exc),
                                   error_kind=exc.kind, duration_ms=round((time.monotonic() - started) * 1000, 3))
        mine = [c for c in snapshot.clients if c.application_name == READER_NAME and c.database == ADMIN_DATABASE]
        clients = [c for c in snapshot.clients if c not in mine]
        # "now" by PgBouncer's own clock: the request time of our own console client.
        now = max((c.request_time for c in mine if c.request_time is not None), default=None)
        return PgBouncerReport(
            name=self.name, server=self.server, taken_at=snapshot.taken_at, version=snapshot.version,
            duration_ms=round(snapshot.duration * 1000, 3),
            pools=tuple(p for p in snapshot.pools if p.database != ADMIN_DATABASE),
            stats=tuple(s for s in snapshot.stats if s.database != ADMIN_DATABASE),
            databases=tuple(d for d in snapshot.databases if d.name != ADMIN_DATABASE),
            config=snapshot.config, clients=len(clients), client_states=count_states(clients),
            servers=len(snapshot.servers), server_states=snapshot.server_states,
            recent_logins=recent_logins(clients, now=now), server_pids=server_pids(snapshot.servers),
        )


def discover() -> Iterator[PgBouncerSource]:
    """One source per admin console URL."""
    for index, url in enumerate(pgbouncer_settings().get("ADMIN_URLS") or (), start=1):
        yield PgBouncerSource(index, url)


KIND = PoolKind(
    kind="pgbouncer", group="pgbouncer_pools", schema_name="PgBouncerPool", entry_shape=PgBouncerPoolJSON,
    help="By `<database>/<user>`; empty without PGBOUNCER_ADMIN_URL.", metrics=frozenset(), reports=True,
    card=figures.CARD, poolstats=figures.LINES, check_keys=figures.CHECK_KEYS, entries=figures.entries,
    report_health=figures.health, families=figures.FAMILIES, samples=figures.samples,
)
