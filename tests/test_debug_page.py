"""With DEBUG on, the technical 500 page shows no password: not in settings (the cache LOCATION,
the Redis pool URLs, DATABASES), not in request.META, not in a traceback frame's variables,
not in the exception messages.

The project sets ``DEFAULT_EXCEPTION_REPORTER_FILTER`` and ``DEFAULT_EXCEPTION_REPORTER``
to :mod:`connection_pools.debug`'s; Django's defaults hide settings by key name only, so
every URL below would show its password.
"""

from __future__ import annotations

import html
import sys

from django.conf import settings
from django.test import RequestFactory, override_settings
from django.views.debug import get_default_exception_reporter_filter, technical_500_response

#: Passwords holding raw URL characters, one per place a URL can show.
PASSWORDS = {
    "cache": "Cache/pw#1?a",
    "redis": "Redis/pw#2?b",
    "broker": "Broker/pw3",
    "meta": "Meta/pw#4",
    "local": "Local/pw?5",
    "object": "Object/pw#6",
    "database": "Database/pw7",
}


class Target:
    """Something whose repr holds a URL, as a client or a pool object might."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<Target {self.url}>"


def fail_with_urls_in_locals() -> None:
    url = f"redis://:{PASSWORDS['local']}@cache.example:6379/0"
    target = Target(f"postgres://app:{PASSWORDS['object']}@db.example:5432/app")
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError as exc:  # a cause whose message quotes the URL, shown on the page too
        raise RuntimeError(f"cannot reach {target!r}") from exc


def debug_page() -> str:
    request = RequestFactory().get("/boom/")
    request.META["DATABASE_URL"] = f"postgres://app:{PASSWORDS['meta']}@db.example:5432/app"
    try:
        fail_with_urls_in_locals()
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    return response.content.decode()


def test_the_debug_page_masks_every_url_password() -> None:
    redis = {name: dict(values) for name, values in settings.CONNECTION_POOLS["REDIS"].items()}
    redis["main"]["url"] = f"redis://:{PASSWORDS['redis']}@redis.example:6379/0"
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "LOCATION": f"redis://default:{PASSWORDS['cache']}@redis.example:6379/1"}}
    with override_settings(DEBUG=True, CACHES=caches, CONNECTION_POOLS={**settings.CONNECTION_POOLS, "REDIS": redis},
                           CELERY_BROKER="amqp://user:" + PASSWORDS["broker"] + "@broker.example//"):
        page = debug_page()
    assert "redis://default:***@redis.example:6379/1" in html.unescape(page)  # shown, masked
    for where, password in PASSWORDS.items():
        if where == "database":
            continue
        assert password not in page and html.escape(password) not in page, where


def test_databases_hide_their_passwords_by_key_and_in_urls() -> None:
    cleanse = get_default_exception_reporter_filter().cleanse_setting
    cleansed = cleanse("DATABASES", {"default": {
        "PASSWORD": PASSWORDS["database"],
        "OPTIONS": {"service": f"postgres://app:{PASSWORDS['database']}@db.example/app"}}})
    assert PASSWORDS["database"] not in repr(cleansed)
    assert cleansed["default"]["OPTIONS"]["service"] == "postgres://app:***@db.example/app"
