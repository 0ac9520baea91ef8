"""System checks of what docs/adopting.md asks a project to add (``connection_pools.W401``...).

Each piece the app needs from the project's settings or URLs, when it is missing or misplaced, is
named here in one sentence with the exact line to add, at ``manage.py check`` time: never a 500, a
blank page or a number silently missing later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning

DOCS = "See docs/adopting.md."
ENGINE = "connection_pools.backends.postgresql"
CACHE_BACKEND = "connection_pools.backends.redis.cache.RedisCache"
MIDDLEWARE = "connection_pools.middleware.RequestContextMiddleware"
URLS_LINE = 'path("", include("connection_pools.urls"))'


@register()
def check_shared_statistics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W401: no Redis for the shared statistics; W402: Django's cache is on Redis, but not on our pool."""
    from django.conf import settings

    from .cluster.store import configured
    from .conf.derived import cache_is_instrumented, cache_location

    caches = getattr(settings, "CACHES", {}) or {}
    messages: list[CheckMessage] = []
    if not configured():
        messages.append(CheckWarning(
            "No Redis is configured for the shared statistics: every process shows only its own numbers "
            '("source": "local") and manage.py poolstats finds nothing published.',
            hint=f"Make CACHES['default'] a Redis cache (BACKEND '{CACHE_BACKEND}', LOCATION 'redis://host:6379/1'), "
                 f"or set CONNECTION_POOLS['STORE']['URL']. {DOCS}",
            id="connection_pools.W401"))
    if cache_location(caches) and not cache_is_instrumented(caches):
        messages.append(CheckWarning(
            "CACHES['default'] is a Redis cache on a connection pool that is not ours: its connections are not "
            "counted and no redis_cache pool is shown.",
            hint=f"Use BACKEND '{CACHE_BACKEND}' (django-redis' backend on the instrumented pool). {DOCS}",
            id="connection_pools.W402"))
    return messages


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W403: the request middleware is not in ``MIDDLEWARE``."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    from .middleware import RequestContextMiddleware

    for path in getattr(settings, "MIDDLEWARE", None) or ():
        try:
            found = import_string(path) if isinstance(path, str) else path
        except ImportError:
            continue  # Django reports a middleware it cannot import when it loads them
        if isinstance(found, type) and issubclass(found, RequestContextMiddleware):
            return []
    return [CheckWarning(
        f"'{MIDDLEWARE}' is not in MIDDLEWARE: a pool timeout in a request is a 500 instead of a 503 with "
        "Retry-After, reads right after a write may go to a lagging replica, a safe request cut by a lost "
        "connection is not replayed, and no request is counted.",
        hint=f"Add '{MIDDLEWARE}' near the top of MIDDLEWARE. {DOCS}",
        id="connection_pools.W403")]


@register()
def check_engine(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W404: no alias uses the engine, so no PostgreSQL pool is ours to manage or show."""
    from django.conf import settings

    return engine_warnings(getattr(settings, "DATABASES", {}) or {})


def engine_warnings(databases: Mapping[str, Any]) -> list[CheckMessage]:
    """W404 for ``databases`` (``DATABASES``) when no alias uses the engine."""
    if any(isinstance(db, Mapping) and db.get("ENGINE") == ENGINE for db in databases.values()):
        return []
    return [CheckWarning(
        f"No DATABASES alias uses the engine '{ENGINE}': no PostgreSQL pool is managed, routed or shown.",
        hint=f"Set DATABASES['default']['ENGINE'] = '{ENGINE}' and OPTIONS['pool'] = {{}}. {DOCS}",
        id="connection_pools.W404")]


@register(Tags.urls)
def check_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E401: the dashboard without the admin API it reads; E402: without the Django admin it lives in;
    E403: its URL taken by the admin's own (our include placed after ``admin.site.urls``)."""
    from django.apps import apps
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    def reversible(name: str) -> str | None:
        try:
            return reverse(name)
        except NoReverseMatch:
            return None

    dashboard = reversible("connection-pools-dashboard")
    if dashboard is None:
        return []  # the dashboard is not mounted: nothing of it can break
    errors: list[CheckMessage] = []
    if reversible("connection-pools-history") is None:
        errors.append(Error(
            "The dashboard is mounted but not the admin API it reads its numbers from.",
            hint=f"Mount both with {URLS_LINE}, or add include('connection_pools.api.urls'). {DOCS}",
            id="connection_pools.E401"))
    if not apps.is_installed("django.contrib.admin") or reversible("admin:login") is None:
        errors.append(Error(
            "The dashboard is a page of the Django admin, which is not installed or not mounted.",
            hint="Keep 'django.contrib.admin' in INSTALLED_APPS and path('admin/', admin.site.urls) in urls.py. "
                 + DOCS,
            id="connection_pools.E402"))
    try:
        match = resolve(dashboard)
        answered_by = None if match.url_name == "connection-pools-dashboard" else match.view_name
    except Resolver404:
        answered_by = "none"
    if answered_by is not None:
        errors.append(Error(
            f"The dashboard's URL {dashboard} is answered by another view ({answered_by}): an include "
            "placed after path('admin/', admin.site.urls) is shadowed by the admin's own URLs.",
            hint=f"Put {URLS_LINE} before path('admin/', admin.site.urls). {DOCS}",
            id="connection_pools.E403"))
    return errors
