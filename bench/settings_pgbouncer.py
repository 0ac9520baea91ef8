"""The project's settings for a ``DATABASE_URL`` that points at a PgBouncer in transaction mode.

Kept for commands written before ``DATABASE_POOLER=pgbouncer`` existed: that variable now does all
of this from the environment with ``project.settings`` (and marks the alias as behind PgBouncer,
so the engine refuses session state and the checks know)::

    DATABASE_URL=$PGBOUNCER_DATABASE_URL DATABASE_POOLER=pgbouncer gunicorn project.wsgi
"""

from __future__ import annotations

from project.settings import *  # noqa: F403 - a variant of the project's settings
from project.settings import CONNECTION_POOLS, DATABASES

DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
CONNECTION_POOLS["POOLERS"] = {"default": "pgbouncer"}
