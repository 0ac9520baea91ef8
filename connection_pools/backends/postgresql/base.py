"""PostgreSQL engine: Django's backend with django-prometheus' query metrics and our pool.

``ENGINE: "connection_pools.backends.postgresql"``. With ``OPTIONS["pool"]`` (a dict of
the guide's keys, possibly empty, or True) the alias gets an
:class:`~connection_pools.pools.postgres.InstrumentedPool`, built once per alias and
per process; without it, connections are Django's usual ones (``CONN_MAX_AGE``
persistent mode, with statistics from :mod:`connection_pools.pools.persistent`).
"""

from __future__ import annotations

import os
from typing import Any

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoDatabaseWrapper
from django_prometheus.db.backends.postgresql.base import DatabaseWrapper as PrometheusDatabaseWrapper
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from ...pools import persistent, postgres
from ...pools.requestctx import current_request
from .metered import metered_cursor_class


class DatabaseWrapper(PrometheusDatabaseWrapper):
    """Django's PostgreSQL ``DatabaseWrapper`` with an instrumented pool per alias and process."""

    # Our own registry (Django's is shared by every PostgreSQL wrapper class).
    _connection_pools: dict[str, postgres.InstrumentedPool] = {}

    def _pool_options(self) -> Any:
        return self.settings_dict["OPTIONS"].get("pool", False)

    @property
    def pool(self) -> postgres.InstrumentedPool | None:
        """This alias's pool in this process (None when the alias is not pooled).

        Rebuilt when the process forked (a pid change) or when the alias's settings
        moved (tests switch NAME to the test database, or mirror a replica).
        """
        pool = self._connection_pools.get(self.alias)
        if pool is not None and pool.pid == postgres.Process.pid:
            settings_dict = self.settings_dict
            # Identity checks first: this runs several times per checkout.
            if pool.settings_ref is settings_dict and pool.name_ref is settings_dict["NAME"]:
                return pool
            if pool.target == postgres.target_of(settings_dict):
                return pool
        if self.alias == NO_DB_ALIAS or self._pool_options() in (False, None):
            return None
        return self._replace_pool(pool)

    def _replace_pool(self, stale: postgres.InstrumentedPool | None) -> postgres.InstrumentedPool:
        if stale is not None:
            if stale.pid != os.getpid():
                if self.connection is not None and getattr(self.connection, "_pool", None) is stale:
                    postgres.detach_connection(self.connection)
                    self.connection = None
                postgres.forget_inherited(self.alias, stale)
            else:
                self._connection_pools.pop(self.alias, None)
                stale.close()
        pool = postgres.build_pool(self)
        # Two threads may race to build: the first one stored wins, the other is discarded unopened.
        winner = self._connection_pools.setdefault(self.alias, pool)
        if winner is pool:
            from ... import conf

            pool.open()
            if conf.get("WARM_ON_STARTUP"):
                pool.wait_ready(pool.config.pool_timeout)
        return winner

    def close_pool(self) -> None:
        """Close this alias's pool (Django calls it around test-database creation)."""
        pool = self._connection_pools.pop(self.alias, None)
        if pool is not None and pool.pid == os.getpid():
            pool.close()

    def get_connection_params(self) -> dict[str, Any]:
        pool = self._connection_pools.get(self.alias)
        if pool is not None and pool.pid == postgres.Process.pid and pool.settings_ref is self.settings_dict:
            # With a pool, Django's connect() ignores these (the pool has its own copy):
            # skip rebuilding them, and re-wrapping the cursor class, on every checkout.
            return pool.kwargs
        # Django's parameters, with django-prometheus' query metrics on a cursor class
        # built once per alias (see metered.py) instead of django-prometheus' per-call wrapper.
        params = DjangoDatabaseWrapper.get_connection_params(self)
        params["cursor_factory"] = metered_cursor_class(params["cursor_factory"], self.alias, self.vendor)
        return params

    def close_if_health_check_failed(self) -> None:
        """Drop a connection already known to be broken before the next cursor.

        Django skips health checks with a pool ("the pool only returns healthy
        connections"), so a connection that broke while this wrapper held it (server
        restart, killed backend) would fail every later query in this thread until a
        request boundary. Outside a transaction, give it back (the pool discards it)
        and let the next cursor check out a working one. No I/O: a status flag only.
        """
        if "pool" not in self.settings_dict["OPTIONS"]:
            return super().close_if_health_check_failed()
        if self.connection is not None and self.connection.closed and not self.in_atomic_block:
            self.close()

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            return super().get_new_connection(conn_params)
        except PoolTimeout:
            raise
        except OperationalError as exc:
            # Connecting failed (server down, refused, auth...): the middleware answers 503.
            exc.connection_pools_failure = "unavailable"
            request = current_request.get()
            if request is not None and request.db_failure is None:
                request.db_failure = "unavailable"
                request.failed_aliases.append(self.alias)
            raise

    def _close(self) -> None:
        if self.connection is not None and "pool" not in self.settings_dict["OPTIONS"]:
            persistent.connection_closing(self)
        return super()._close()
