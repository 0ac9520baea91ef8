"""Bare Django for ``bench/profile_asgi.py``: no apps, no middleware, no database, one sync view
(``/noop/``). What Django's own handlers cost, without anything of this project."""

from __future__ import annotations

SECRET_KEY = "bare"  # a benchmark's throwaway settings
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
ROOT_URLCONF = "bench.urls_bare"
USE_TZ = True
