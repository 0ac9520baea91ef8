"""The system checks that name what docs/adopting.md asks for, when it is missing (connection_pools.W4xx/E4xx)."""

from __future__ import annotations

from django.test import override_settings
from django.urls import clear_url_caches

from connection_pools import wiring
from tests.support import urlconfs


def ids(messages) -> list[str]:
    return sorted(message.id for message in messages)


def test_the_example_project_has_every_piece() -> None:
    assert ids(wiring.check_shared_statistics() + wiring.check_middleware() + wiring.check_engine()
               + wiring.check_urls()) == []


def test_no_redis_anywhere_is_named_with_the_line_to_add(settings) -> None:
    pools = {**settings.CONNECTION_POOLS, "REDIS": {"main": {"url": None}, "cache": {"url": None}}}
    with override_settings(CONNECTION_POOLS=pools,
                           CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        (warning,) = wiring.check_shared_statistics()
    assert warning.id == "connection_pools.W401"
    assert '"source": "local"' in warning.msg and "connection_pools.backends.redis.cache.RedisCache" in warning.hint


def test_a_redis_cache_is_enough_for_the_shared_statistics(settings) -> None:
    pools = {**settings.CONNECTION_POOLS, "REDIS": {"main": {"url": None}, "cache": {"url": None}}}
    location = settings.CACHES["default"]["LOCATION"]
    with override_settings(CONNECTION_POOLS=pools, CACHES={"default": {
            "BACKEND": "connection_pools.backends.redis.cache.RedisCache", "LOCATION": location}}):
        assert wiring.check_shared_statistics() == []
        from connection_pools import conf

        assert {name: pool["url"] for name, pool in conf.get("REDIS").items()} == {"main": location,
                                                                                    "cache": location}


def test_a_redis_cache_on_a_pool_not_ours_is_named(settings) -> None:
    location = settings.CACHES["default"]["LOCATION"]
    pools = {**settings.CONNECTION_POOLS, "REDIS": {"main": {"url": None}, "cache": {"url": None}}}
    with override_settings(CONNECTION_POOLS=pools,
                           CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location}}):
        assert ids(wiring.check_shared_statistics()) == ["connection_pools.W402"]  # main still has a server
        from connection_pools import conf

        assert list(conf.get("REDIS")) == ["main"]  # no redis_cache pool that the cache does not use


def test_a_missing_middleware_is_named(settings) -> None:
    others = [m for m in settings.MIDDLEWARE if not m.startswith("connection_pools.")]
    with override_settings(MIDDLEWARE=others):
        (warning,) = wiring.check_middleware()
    assert warning.id == "connection_pools.W403"
    assert "connection_pools.middleware.RequestContextMiddleware" in warning.hint
    with override_settings(MIDDLEWARE=[*others, "connection_pools.middleware.PoolStatsMiddleware"]):
        assert wiring.check_middleware() == []  # the older name is the same class


def test_no_alias_on_the_engine_is_named(settings) -> None:
    # A pure function of DATABASES: the live connections' settings are left alone (another thread of this
    # process would open connections on whatever they say).
    plain = {alias: {**db, "ENGINE": "django.db.backends.postgresql"} for alias, db in settings.DATABASES.items()}
    (warning,) = wiring.engine_warnings(plain)
    assert warning.id == "connection_pools.W404" and "connection_pools.backends.postgresql" in warning.hint
    assert wiring.engine_warnings(settings.DATABASES) == []


def _url_errors(urlconf: type) -> list[str]:
    with override_settings(ROOT_URLCONF=urlconf):
        clear_url_caches()
        try:
            return ids(wiring.check_urls())
        finally:
            clear_url_caches()


def test_the_urls_as_documented_pass() -> None:
    assert _url_errors(urlconfs.AsDocumented) == []


def test_the_dashboard_without_the_api_is_an_error() -> None:
    assert _url_errors(urlconfs.DashboardWithoutApi) == ["connection_pools.E401"]


def test_the_include_shadowed_by_the_admin_is_an_error() -> None:
    assert _url_errors(urlconfs.IncludedAfterTheAdmin) == ["connection_pools.E403"]


def test_the_dashboard_without_the_admin_is_an_error() -> None:
    assert _url_errors(urlconfs.WithoutTheAdmin) == ["connection_pools.E402"]
