"""django-prometheus' query metrics, with the label lookups done once per class.

django-prometheus' ``ExportingCursorWrapper`` calls ``.labels(...)`` on every
``execute`` (a lock and a dict lookup each). Ours increments the very same
metrics (``django_db_execute_total``, ``django_db_execute_many_total``,
``django_db_errors_total``, ``django_db_query_duration_seconds``) through label
children bound once. Classes are cached per (base class, alias, vendor), so a
connection's cursor class is built once per pool -- never once per checkout
(django-prometheus issue 445).
"""

from __future__ import annotations

from functools import cache
from time import perf_counter
from typing import Any

from django_prometheus.db import errors_total, execute_many_total, execute_total, query_duration_seconds


@cache
def metered_cursor_class(base: type, alias: str, vendor: str) -> type:
    """A subclass of ``base`` that records django-prometheus' query metrics for ``alias``."""
    executed = execute_total.labels(alias, vendor)
    executed_many = execute_many_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)

    class MeteredCursor(base):  # type: ignore[misc, valid-type]
        """A cursor that counts and times its statements (django-prometheus metrics)."""

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            executed.inc()
            started = perf_counter()
            try:
                return super().execute(*args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias=alias, vendor=vendor, type=type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)

        def executemany(self, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            executed.inc(len(params_seq))
            executed_many.inc(len(params_seq))
            started = perf_counter()
            try:
                return super().executemany(query, params_seq, *args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias=alias, vendor=vendor, type=type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)

    MeteredCursor.__qualname__ = f"MeteredCursor[{alias}]"
    return MeteredCursor
