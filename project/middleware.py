"""The project's Django and django-prometheus middleware, declared sync-only: under ASGI, one thread
hop for all of them instead of one per hook.

Django runs every hook of a ``MiddlewareMixin`` middleware that says it is async-capable (all of
Django's own, and django-prometheus') through ``sync_to_async`` when the stack is async: a hop to
the request's thread and back for each ``process_request``, ``process_view`` and
``process_response`` -- 18 hops per request with the nine below, each about 80-130 us of CPU on a
2-core machine (``bench/profile_asgi.py``). Declared sync-only (``async_capable = False``),
a run of them is adapted once: Django calls the whole run in one hop on the request's thread and
comes back to the event loop once for URL resolution and the view (a sync view runs on that same
thread). The request middleware, between them, runs in that block too, on the request's thread (Django
adapts a middleware that can do both to the mode of what it wraps); the ASGI handler of
``project.asgi`` (``connection_pools.asgi``) notes that the process serves ASGI itself
(``connection_pools.E301``).

Under WSGI nothing changes: the chain is synchronous there anyway. The classes are Django's and
django-prometheus' own, subclassed with one attribute (:func:`sync_only`); ``isinstance`` and
Django's checks that look for a middleware (the admin's) accept subclasses.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security
from django_prometheus import middleware as prometheus

M = TypeVar("M", bound=type)


def sync_only(middleware: M) -> M:
    """A subclass of ``middleware`` under the same name, here, declared sync-only."""
    attributes = {"async_capable": False, "__module__": __name__, "__qualname__": middleware.__name__,
                  "__doc__": f"{middleware.__module__}.{middleware.__qualname__}, declared sync-only."}
    return type(middleware.__name__, (middleware,), attributes)  # type: ignore[return-value]


PrometheusBeforeMiddleware = sync_only(prometheus.PrometheusBeforeMiddleware)
SecurityMiddleware = sync_only(security.SecurityMiddleware)
SessionMiddleware = sync_only(sessions.SessionMiddleware)
CommonMiddleware = sync_only(common.CommonMiddleware)
CsrfViewMiddleware = sync_only(csrf.CsrfViewMiddleware)
AuthenticationMiddleware = sync_only(auth.AuthenticationMiddleware)
MessageMiddleware = sync_only(messages.MessageMiddleware)
XFrameOptionsMiddleware = sync_only(clickjacking.XFrameOptionsMiddleware)
PrometheusAfterMiddleware = sync_only(prometheus.PrometheusAfterMiddleware)
