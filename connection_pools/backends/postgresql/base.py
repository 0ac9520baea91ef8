"""PostgreSQL engine: Django's pooled backend, a drop-in, with our pool and django-prometheus' metrics.

django-prometheus' metrics (new connections, their errors, queries) are counted here and in
:mod:`.metered` with label children bound once per alias, not through its per-call
wrappers.

``ENGINE: "connection_pools.backends.postgresql"``. ``OPTIONS["pool"]`` takes what
Django's own engine takes -- ``True``, ``False`` or absent, or a dict of psycopg's keyword
names -- and also the guide's names (see :mod:`connection_pools.conf.pool_options`). A pooled alias gets an
:class:`~.pool.InstrumentedPool`, built once per alias and per process; ``OPTIONS["pool"]``
is read at every call, so a wrapper with the pool turned off never uses one. Without a
pool, connections are Django's usual ones (``CONN_MAX_AGE`` persistent mode, with
statistics from :mod:`connection_pools.pools.persistent`).
"""

from __future__ import annotations

import os
from time import perf_counter
from typing import Any

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoDatabaseWrapper
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from ... import conf
from ...conf import pool_options as options
from ...core.context import current_request
from .. import persistent
from . import attribution, failover, fork
from .compat import pool_of
from .leases import add_query_time
from .metered import MeteredCursorDebugWrapper, MeteredCursorWrapper, metrics_for
from .pool import DatabaseUnavailable, InstrumentedPool, Process
from .release import ReleasePerTransaction


def _pooled(settings_dict: dict[str, Any]) -> bool:
    """:func:`~connection_pools.conf.pool_options.is_pooled` for a settings dict Django has completed."""
    pool = settings_dict["OPTIONS"].get("pool")
    return pool is not None and pool is not False and pool != 0


class DatabaseWrapper(ReleasePerTransaction, DjangoDatabaseWrapper):
    """Django's PostgreSQL ``DatabaseWrapper`` with an instrumented pool per alias and process (and, with
    ``OPTIONS["pool"]["release"] = "transaction"``, its connection back after each transaction: :mod:`.release`)."""

    # Our own registry (Django's is shared by every PostgreSQL wrapper class).
    _connection_pools: dict[str, InstrumentedPool] = {}

    @property
    def pool(self) -> InstrumentedPool | None:
        """This alias's pool in this process, or None when ``OPTIONS["pool"]`` asks for none.

        Rebuilt when the process forked (a pid change) or when the alias's settings moved
        to another server or database (tests switch NAME to the test database).
        """
        settings_dict = self.settings_dict
        pool = self._connection_pools.get(self.alias)
        # This runs several times per checkout: identity checks first, OPTIONS["pool"] read every time.
        if (pool is not None and pool.settings_ref is settings_dict and pool.name_ref is settings_dict["NAME"]
                and pool.pid == Process.pid and _pooled(settings_dict)):
            return pool
        if not options.is_pooled(settings_dict) or self.alias == NO_DB_ALIAS:
            return None
        if pool is not None and pool.pid == Process.pid:
            if pool.target == options.target_of(settings_dict):
                return pool
        return self._replace_pool(pool)

    def pool_releases_per_transaction(self) -> bool:
        # Right after a connect the pool property has already run: the registry holds the current pool.
        pool = self._connection_pools.get(self.alias)
        return (pool is not None and pool.per_transaction and pool.pid == Process.pid
                and _pooled(self.settings_dict))

    def _replace_pool(self, stale: InstrumentedPool | None) -> InstrumentedPool:
        if stale is not None:
            if stale.pid != os.getpid():
                if self.connection is not None and pool_of(self.connection) is stale:
                    fork.detach_connection(self.connection)
                    self.connection = None
                fork.forget_inherited(self.alias, stale, self._connection_pools)
            else:
                self._connection_pools.pop(self.alias, None)
                stale.close()
        pool = self._build_pool()
        # Two threads may race to build: the first one stored wins, the other is discarded unopened.
        winner = self._connection_pools.setdefault(self.alias, pool)
        if winner is pool:
            pool.open()
            if conf.get("WARM_ON_STARTUP"):
                pool.wait_ready(pool.timeout)
        return winner

    def _build_pool(self) -> InstrumentedPool:
        """Build (not open) this alias's pool from its settings."""
        settings_dict = self.settings_dict
        config = options.resolve(self.alias, settings_dict, conf.get("DATABASE_POOL"))
        connect_kwargs = attribution.apply(self.alias, DjangoDatabaseWrapper.get_connection_params(self))
        connect_kwargs["autocommit"] = True  # Django sets the real mode on checkout
        # Django's _configure_connection (the pool's configure hook) is missing from django-stubs.
        pool = InstrumentedPool(alias=self.alias, config=config, kwargs=connect_kwargs,
                                configure=self._configure_connection)  # type: ignore[attr-defined]
        pool.target = options.target_of(settings_dict)
        pool.settings_ref = settings_dict
        pool.name_ref = settings_dict["NAME"]
        return pool

    def close_pool(self) -> None:
        """Close this alias's pool, as Django's does (Django calls it around test-database creation)."""
        if not options.is_pooled(self.settings_dict):
            return
        pool = self._connection_pools.pop(self.alias, None)
        if pool is not None and pool.pid == os.getpid():
            pool.close()

    def get_connection_params(self) -> dict[str, Any]:
        pool = self._connection_pools.get(self.alias)
        if (pool is not None and pool.settings_ref is self.settings_dict and pool.pid == Process.pid
                and _pooled(self.settings_dict) and isinstance(pool.kwargs, dict)):
            # With a pool, Django's get_new_connection() ignores these (the pool has its own
            # copy): skip rebuilding them on every checkout.
            return pool.kwargs
        return attribution.apply(self.alias, super().get_connection_params())

    def make_cursor(self, cursor: Any) -> MeteredCursorWrapper:
        wrapped = (failover.ReplicaCursorWrapper(cursor, self) if failover.is_replica(self.alias)
                   else MeteredCursorWrapper(cursor, self))
        if self.releases_per_transaction:
            self.track_cursor(wrapped)
        return wrapped

    def make_debug_cursor(self, cursor: Any) -> MeteredCursorDebugWrapper:
        wrapped = (failover.ReplicaCursorDebugWrapper(cursor, self) if failover.is_replica(self.alias)
                   else MeteredCursorDebugWrapper(cursor, self))
        if self.releases_per_transaction:
            self.track_cursor(wrapped)
        return wrapped

    def _commit(self) -> None:
        started = perf_counter()
        try:
            super()._commit()  # type: ignore[misc]  # Django's private hook, missing from django-stubs
        finally:
            add_query_time(self.connection, perf_counter() - started)  # the pool's query time per hold

    def _rollback(self) -> None:
        started = perf_counter()
        try:
            super()._rollback()  # type: ignore[misc]  # Django's private hook, missing from django-stubs
        finally:
            add_query_time(self.connection, perf_counter() - started)

    def close_if_health_check_failed(self) -> None:
        """Drop a connection already known to be broken before the next cursor.

        Django skips health checks with a pool ("the pool only returns healthy
        connections"), so a connection that broke while this wrapper held it (server
        restart, killed backend) would fail every later query in this thread until a
        request boundary. Outside a transaction, give it back (the pool discards it)
        and let the next cursor check out a working one. No I/O: a status flag only.
        """
        failover.release_if_lent(self)
        if not _pooled(self.settings_dict):
            return super().close_if_health_check_failed()
        if self.connection is not None and self.connection.closed and not self.in_atomic_block:
            self.close()
        return None

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """A connection for this alias; a replica that cannot be reached gets one lent by another
        server (:mod:`.failover`)."""
        if failover.is_replica(self.alias):
            return failover.open_replica_connection(self, conn_params, self.open_without_failover)
        return self.open_without_failover(conn_params)

    def open_without_failover(self, conn_params: dict[str, Any]) -> Any:
        """This alias's own connection (a checkout of its pool, or a new connection)."""
        metrics = metrics_for(self.alias, self.vendor)
        metrics.connections.inc()  # django-prometheus' django_db_new_connections_total
        try:
            return super().get_new_connection(conn_params)
        except Exception as exc:
            metrics.connection_errors.inc()
            if isinstance(exc, DatabaseUnavailable) or (isinstance(exc, OperationalError)
                                                          and not isinstance(exc, PoolTimeout)):
                # Connecting failed (server down, refused, auth...): the middleware answers 503.
                _note_unavailable(self.alias, exc)
            raise

    def _close(self) -> None:
        if self.connection is not None and not _pooled(self.settings_dict):
            persistent.connection_closing(self)
        if self.connection is not None and failover.lent_to(self.connection) == self.alias:
            with self.wrap_database_errors:
                failover.give_back(self.connection)  # to the lender's pool, whatever this alias's mode
            self.connection = None
            return None
        super()._close()  # type: ignore[misc]  # Django's private hook, missing from django-stubs
        return None


def live_pool(alias: str) -> InstrumentedPool | None:
    """``alias``'s pool in this process, if it has been built here (never builds one)."""
    pool = DatabaseWrapper._connection_pools.get(alias)
    return pool if pool is not None and pool.pid == os.getpid() else None


def _note_unavailable(alias: str, exc: Exception) -> None:
    exc.connection_pools_failure = "unavailable"  # type: ignore[attr-defined]
    request = current_request.get()
    if request is not None and request.db_failure is None:
        request.db_failure = "unavailable"
        request.failed_aliases.append(alias)
