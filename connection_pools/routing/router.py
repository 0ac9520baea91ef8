"""Database router for read replicas.

``DATABASE_ROUTERS = ["connection_pools.routers.ReplicaRouter"]``: reads go to a
healthy replica (see :mod:`connection_pools.routing.scopes` for scopes and pinning and
:mod:`connection_pools.routing.replicas` for health, lag and balancing), writes and
migrations to the primary; relations between the primary and its replicas are
allowed (they hold the same rows).
"""

from __future__ import annotations

from typing import Any

from ..conf.aliases import PRIMARY
from . import replicas
from . import scopes as routing


class ReplicaRouter:
    """Reads to a healthy replica, writes and migrations to the primary."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        """A replica in rotation, or the primary when scoped, pinned, in a transaction or none is healthy."""
        return routing.alias_for_read()

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        """The primary; the rest of the request (or context) is pinned to it."""
        return routing.alias_for_write()

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """Objects from the primary and its replicas may be related; others: no opinion."""
        family = {PRIMARY, *replicas.replica_aliases()}
        if obj1._state.db in family and obj2._state.db in family:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        """Never migrate a replica (it is read-only; it receives the primary's schema)."""
        if db in replicas.replica_aliases():
            return False
        return None
