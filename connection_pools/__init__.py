"""Connection-pool management for Django: real PostgreSQL and Redis pools, read
replicas, live statistics, health, recommendations, dashboard, API and metrics."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_session(*, read_only: bool = False, using: str | None = None) -> Any:
    """The guide's ``get_session(read_only=...)`` in Django's idiom.

    A context manager: inside it, ORM reads go to a healthy replica when
    ``read_only`` is true, and everything goes to the primary otherwise. It
    yields the database alias chosen for the scope.
    """
    from .routing import session

    return session(read_only=read_only, using=using)
