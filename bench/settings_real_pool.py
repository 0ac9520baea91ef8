"""``bench.settings_plain`` with django-pg-real-pool 1.1.0 as the engine (``requirements-bench.txt``), for
``bench/bench_release.py``: Django's pooled engine with its ASAP release (the connection back after each
cursor outside ``atomic()`` and after commit/rollback), sized and checked exactly as the plain one
(``min_size``/``max_size`` from the same ``DATABASE_POOL_*`` values, ``CONN_HEALTH_CHECKS`` when our
pre-ping is on), without our middleware.

    DJANGO_SETTINGS_MODULE=bench.settings_real_pool gunicorn project.wsgi ...
"""

from __future__ import annotations

from bench.settings_plain import *  # noqa: F403 - a variant of the plain settings
from bench.settings_plain import DATABASES

for _config in DATABASES.values():
    if "pool" in _config.get("OPTIONS", {}):
        _config["ENGINE"] = "django_pg_real_pool"
