"""django-prometheus' query metrics, counted in Django's cursor wrapper, not in psycopg's cursor.

django-prometheus counts queries by replacing the connection's ``cursor_factory`` with
a subclass built per call (its issue 445: the class chain grew with every checkout), and
that replacement also changes what ``connection.cursor_factory`` is, so a user's own
``cursor_factory`` or ``server_side_binding`` no longer shows through. We count the very
same metrics (``django_db_execute_total``, ``django_db_execute_many_total``,
``django_db_errors_total``, ``django_db_query_duration_seconds``) in the wrapper Django
puts around every cursor (``make_cursor`` / ``make_debug_cursor``): two fixed classes,
label children bound once per alias, and psycopg's cursor left exactly as configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from time import perf_counter
from typing import Any

from django.db.backends.postgresql.base import CursorDebugWrapper as PostgresCursorDebugWrapper
from django.db.backends.utils import CursorWrapper
from django_prometheus.db import (
    connection_errors_total,
    connections_total,
    errors_total,
    execute_many_total,
    execute_total,
    query_duration_seconds,
)

from . import release, transaction_pooling
from .leases import add_query_time


class QueryMetrics:
    """django-prometheus' metric children of one alias, looked up once."""

    __slots__ = ("alias", "connection_errors", "connections", "duration", "executed", "executed_many", "vendor")

    def __init__(self, alias: str, vendor: str) -> None:
        self.alias = alias
        self.vendor = vendor
        self.connections = connections_total.labels(alias, vendor)
        self.connection_errors = connection_errors_total.labels(alias, vendor)
        self.executed = execute_total.labels(alias, vendor)
        self.executed_many = execute_many_total.labels(alias, vendor)
        self.duration = query_duration_seconds.labels(alias, vendor)

    def error(self, exc: BaseException) -> None:
        # Django wraps the driver's error (SyntaxError -> ProgrammingError); django-prometheus
        # labels with the driver's class, so do we.
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        errors_total.labels(alias=self.alias, vendor=self.vendor, type=type(cause).__name__).inc()


@cache
def metrics_for(alias: str, vendor: str) -> QueryMetrics:
    """The metric children of ``alias`` (one object per alias and process)."""
    return QueryMetrics(alias, vendor)


class _Metering:
    """Counts and times ``execute`` / ``executemany`` of Django's cursor wrapper (the time also goes to
    the connection's current hold: the pool's ``query`` histogram), and reports ``close()`` to the
    per-transaction release (:mod:`.release`)."""

    db: Any
    cursor: Any

    def execute(self, sql: Any, params: Any = None) -> Any:
        db = self.db
        transaction_pooling.guard(db.alias, sql, per_transaction=db.releases_per_transaction)
        metrics = metrics_for(db.alias, db.vendor)
        metrics.executed.inc()
        started = perf_counter()
        try:
            return super().execute(sql, params)  # type: ignore[misc]
        except Exception as exc:
            metrics.error(exc)
            raise
        finally:
            elapsed = perf_counter() - started
            metrics.duration.observe(elapsed)
            add_query_time(db.connection, elapsed)

    def executemany(self, sql: Any, param_list: Sequence[Any]) -> Any:
        db = self.db
        transaction_pooling.guard(db.alias, sql, per_transaction=db.releases_per_transaction)
        metrics = metrics_for(db.alias, db.vendor)
        param_list = list(param_list)
        metrics.executed.inc(len(param_list))
        metrics.executed_many.inc(len(param_list))
        started = perf_counter()
        try:
            return super().executemany(sql, param_list)  # type: ignore[misc]
        except Exception as exc:
            metrics.error(exc)
            raise
        finally:
            elapsed = perf_counter() - started
            metrics.duration.observe(elapsed)
            add_query_time(db.connection, elapsed)

    def close(self) -> None:
        """Close the cursor (as Django's wrapper does through ``__getattr__``); with per-transaction
        release, the connection goes back if this cursor was the last thing holding it."""
        try:
            self.cursor.close()
        finally:  # (a server-side cursor whose connection broke fails to close: it holds nothing now)
            db = self.db
            if db.releases_per_transaction:
                release.cursor_closed(db, self)


class MeteredCursorWrapper(_Metering, CursorWrapper):
    """Django's ``CursorWrapper`` with django-prometheus' query metrics."""


class MeteredCursorDebugWrapper(_Metering, PostgresCursorDebugWrapper):
    """Django's PostgreSQL ``CursorDebugWrapper`` (``DEBUG`` / ``queries_log``) with the same metrics."""
