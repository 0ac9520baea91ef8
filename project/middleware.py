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
django-prometheus' own, subclassed with one attribute; ``isinstance`` and Django's checks that
look for a middleware (the admin's) accept subclasses.
"""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Message
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptions
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _CsrfView
from django.middleware.security import SecurityMiddleware as _Security
from django_prometheus.middleware import PrometheusAfterMiddleware as _PrometheusAfter
from django_prometheus.middleware import PrometheusBeforeMiddleware as _PrometheusBefore


class PrometheusBeforeMiddleware(_PrometheusBefore):
    async_capable = False


class SecurityMiddleware(_Security):
    async_capable = False


class SessionMiddleware(_Session):
    async_capable = False


class CommonMiddleware(_Common):
    async_capable = False


class CsrfViewMiddleware(_CsrfView):
    async_capable = False


class AuthenticationMiddleware(_Authentication):
    async_capable = False


class MessageMiddleware(_Message):
    async_capable = False


class XFrameOptionsMiddleware(_XFrameOptions):
    async_capable = False


class PrometheusAfterMiddleware(_PrometheusAfter):
    async_capable = False
