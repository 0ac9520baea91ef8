"""Settings for ``bench/profile_asgi.py``: the project's, with the engine and the middleware chosen
by environment variables, and a no-database view at ``/noop/``.

* ``PROFILE_ENGINE``: ``ours`` (default, ``connection_pools.backends.postgresql``) or ``django``
  (``django.db.backends.postgresql`` with its native psycopg pool, sized as in
  ``bench/settings_plain.py``);
* ``PROFILE_MIDDLEWARE``: ``full`` (default, the project's), ``ours`` (only
  ``RequestContextMiddleware``, as ``bench/settings_lean.py``), ``none``, or ``full-hops``: the
  project's list as it was before ``project/middleware.py``, Django's and django-prometheus' own
  async-capable classes (one thread hop per hook under ASGI), ours second.
"""

from __future__ import annotations

import os

from project.settings import *  # noqa: F403 - a variant of the project's settings
from project.settings import CONNECTION_POOLS, DATABASES, MIDDLEWARE

_engine = os.environ.get("PROFILE_ENGINE", "ours")
_middleware = os.environ.get("PROFILE_MIDDLEWARE", "full")

if _engine == "django":
    _pool = CONNECTION_POOLS["DATABASE_POOL"]
    for _config in DATABASES.values():
        _config["ENGINE"] = "django.db.backends.postgresql"
        _options = _config.setdefault("OPTIONS", {})
        if "pool" in _options:
            _options["pool"] = {"min_size": _pool["pool_size"], "max_size": _pool["pool_size"] + _pool["max_overflow"],
                                "timeout": _pool["pool_timeout"], "max_lifetime": _pool["pool_recycle"]}
            _config["CONN_HEALTH_CHECKS"] = _pool["pool_pre_ping"]
elif _engine != "ours":
    raise ValueError(f"PROFILE_ENGINE={_engine!r}")

if _middleware == "ours":
    MIDDLEWARE = ["connection_pools.middleware.RequestContextMiddleware"]
elif _middleware == "none":
    MIDDLEWARE = []
elif _middleware == "full-hops":
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *(["connection_pools.middleware.RequestContextMiddleware"] if _engine == "ours" else []),
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
elif _middleware == "full":
    if _engine == "django":  # as bench/settings_plain.py: Django's engine knows no request context
        MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("connection_pools.")]
else:
    raise ValueError(f"PROFILE_MIDDLEWARE={_middleware!r}")

ROOT_URLCONF = "bench.urls_profile"
