"""Under which interface this process serves requests (WSGI or ASGI), and what ASGI forbids.

ASGI is known two ways, and either one is enough:

* **declared**: ``CONNECTION_POOLS["ASGI"] = True`` (env ``CONNECTION_POOLS_ASGI=true``), so
  that ``manage.py check`` -- run where no server runs, in CI or before a deployment --
  judges the configuration for ASGI;
* **detected**: Django's ASGI handler built its middleware chain in async mode, which the
  request middleware sees when it is constructed (:func:`note_asgi_handler`). That is the
  server in use, whatever it is called (uvicorn, daphne, hypercorn...), and it happens while
  the application loads, before the first request.

Why it matters: under ASGI each request's synchronous ORM work runs on a thread of its own
(asgiref's per-request executor), and Django keeps a persistent connection (``CONN_MAX_AGE > 0``)
per thread -- so every request opens one and leaves it behind (Django ticket 33497).
:func:`persistent_under_asgi` is the system check ``connection_pools.E301`` that refuses it.
"""

from __future__ import annotations

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

from ..core.runtime import runtime
from . import get as conf_get
from .aliases import alias_specs

E301 = "connection_pools.E301"

_seen = {"asgi": False}


def note_asgi_handler() -> None:
    """An ASGI handler is loading the application in this process."""
    _seen["asgi"] = True


def _forget() -> None:
    _seen["asgi"] = False


# Not reset after a fork: a child of a process that loaded the ASGI application serves it too.
runtime.register("conf.serving", _forget)


def is_asgi() -> bool:
    """True when this process serves under ASGI (declared, or its handler was seen)."""
    return _seen["asgi"] or bool(conf_get("ASGI"))


def persistent_under_asgi() -> list[CheckMessage]:
    """connection_pools.E301: no persistent-connection alias while serving under ASGI."""
    if not is_asgi():
        return []
    aliases = sorted(spec.alias for spec in alias_specs().values() if spec.mode == "persistent")
    if not aliases:
        return []
    names = ", ".join(repr(alias) for alias in aliases)
    return [Error(
        f"Database alias(es) {names} keep persistent connections (CONN_MAX_AGE > 0, no pool) while "
        "serving under ASGI: each request's ORM work runs on a thread of its own there, so every "
        "request would open a connection and leave it open (Django ticket 33497).",
        hint="Use the pool (OPTIONS['pool'], or DATABASE_POOL_ENABLED=true) or CONN_MAX_AGE = 0 for "
             "these aliases; silence connection_pools.E301 only to watch the leak in the statistics.",
        id=E301,
    )]


def refuse_unsafe_asgi() -> None:
    """Raise ``ImproperlyConfigured`` (one sentence and its hint) when E301 fires and is not silenced.

    Called as the ASGI application loads, so the server refuses to start rather than leak.
    """
    for message in persistent_under_asgi():
        if message.is_serious() and not message.is_silenced():
            raise ImproperlyConfigured(f"{message.id}: {message.msg} {message.hint}")
