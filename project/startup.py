"""One sentence instead of a traceback when the project cannot start.

Every start path -- ``manage.py``, ``gunicorn project.wsgi`` (master and workers),
``import project.wsgi`` / ``import project.asgi`` -- goes through :func:`start`: a
configuration mistake (``ImproperlyConfigured``: a bad env var, a bad setting) is
written to stderr as one line and the process exits with :data:`EXIT_CONFIGURATION`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: gunicorn's "App failed to load" status: its master stops at once instead of
#: restarting the worker in a loop.
EXIT_CONFIGURATION = 4


def start(load: Callable[[], T]) -> T:
    """``load()`` (set Django up, build the application...); on a configuration error, one line and exit."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        return load()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIGURATION) from None


def check_settings() -> None:
    """Load the settings module (env vars validated) without setting Django up: safe before a fork."""
    from django.conf import settings

    start(lambda: settings.INSTALLED_APPS)
