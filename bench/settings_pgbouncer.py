"""The project's settings for a ``DATABASE_URL`` that points at a PgBouncer in transaction
mode, for ``bench/bench_pgbouncer.py``: our engine and pool unchanged, plus what
transaction pooling needs from Django -- no server-side cursors (a ``WITH HOLD`` cursor
lives on one server connection, its ``FETCH`` may run on another) and no prepared
statements (``prepare_threshold=None``; Django's default already, set here explicitly).

Until ``DATABASE_POOLER=pgbouncer`` does this from the environment::

    DATABASE_URL=$PGBOUNCER_DATABASE_URL DJANGO_SETTINGS_MODULE=bench.settings_pgbouncer gunicorn project.wsgi
"""

from __future__ import annotations

from project.settings import *  # noqa: F403 - a variant of the project's settings
from project.settings import DATABASES

DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
