"""Where a query goes: scopes and read-your-writes state (:mod:`.scopes`), the router
(:mod:`.router`), the replica set with its health, lag and balancing (:mod:`.replicas`), and
which statements a request sent (:mod:`.statements`).

The public names stay importable from here: ``from connection_pools.routing import read_only, primary``.
"""

from __future__ import annotations

from ..conf.aliases import PRIMARY
from ..core.context import RouteState
from .scopes import (
    Scope,
    Session,
    alias_for_read,
    alias_for_write,
    choose_read_alias,
    current_scope,
    current_state,
    note_write,
    primary,
    read_only,
    reset_pinning,
    session,
    task,
)

__all__ = [
    "PRIMARY", "RouteState", "Scope", "Session", "alias_for_read", "alias_for_write", "choose_read_alias",
    "current_scope", "current_state", "note_write", "primary", "read_only",
    "reset_pinning", "session", "task",
]
