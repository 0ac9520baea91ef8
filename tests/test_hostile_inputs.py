"""Hostile inputs: bad input gets a clear 4xx or one sentence and loses nothing -- never a 500, a
traceback, a password in a message, a silently wrong number or a widened reset.

Passwords in a URL's query string (even with a percent-encoded key) are masked; Redis URL
options redis-py cannot read, and a pool bigger than the engine takes, are refused at start-up;
reset-stats and the dashboard's reset form never widen an empty, misspelled, repeated or
conflicting pool to "every pool"; GET parameters are the endpoint's own, once each; numbers are
ASCII and finite.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from connection_pools.cluster.store import store
from connection_pools.conf import env
from tests.support.admin_api import API, make_user, unique_prefix

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-hostile"
DASHBOARD_RESET = "/admin/connection-pools/reset/"


@pytest.fixture(autouse=True)
def isolated(settings) -> Iterator[None]:
    """A private Redis namespace (resets here reach no other test or server) and a closed breaker."""
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("hostile")}
    store.forget_failure()
    yield
    store.forget_failure()
    try:
        store.clear()
    except Exception:  # cleanup only
        pass


@pytest.fixture
def staff() -> Client:
    _, token = make_user(staff=True)
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


@pytest.fixture
def staff_session() -> Client:
    user, _ = make_user(staff=True)
    client = Client()
    client.force_login(user)
    return client


def epoch() -> int:
    return store.resets().epoch


def environ(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}


# --- start-up errors mask a password given in a URL's query string -----------------------------------

@pytest.mark.parametrize(("reader", "name", "value"), [
    ("redis", "REDIS_URL", f"redis://127.0.0.1:6379/x?password={PASSWORD}"),         # bad db path
    ("redis", "REDIS_CACHE_URL", f"redis:///0?password={PASSWORD}"),                # no host
    ("redis", "REDIS_URL", f"http://127.0.0.1:6379/0?password={PASSWORD}"),         # wrong scheme
    ("databases", "DATABASE_URL", f"postgres://127.0.0.1:5432/?password={PASSWORD}"),  # no database name
    ("databases", "DATABASE_URL", f"postgres://pools@127.0.0.1:bad/pools?password={PASSWORD}"),  # bad port
    ("pgbouncer", "PGBOUNCER_ADMIN_URL", f"postgres://127.0.0.1:6432/pools?password={PASSWORD}"),  # not pgbouncer
], ids=["redis-db-path", "redis-no-host", "redis-scheme", "pg-no-name", "pg-bad-port", "pgbouncer-db"])
def test_env_error_never_echoes_a_password_given_as_a_query_parameter(reader: str, name: str, value: str) -> None:
    read = {"redis": env.redis_pools, "databases": env.databases, "pgbouncer": env.pgbouncer_admin_urls}[reader]
    with pytest.raises(ImproperlyConfigured) as caught:
        read(environ(**{name: value}))
    message = str(caught.value)
    assert name in message  # it is the refusal we meant
    assert PASSWORD not in message, message


# --- config masks a password whose query key is percent-encoded --------------------------------------

def test_config_masks_a_redis_password_with_a_percent_encoded_query_key(settings, staff: Client) -> None:
    import redis.connection

    url = f"redis://127.0.0.1:6379/1?pass%77ord={PASSWORD}"
    assert redis.connection.parse_url(url)["password"] == PASSWORD  # redis-py really uses it as the password
    pools = copy.deepcopy(settings.CONNECTION_POOLS)
    pools["REDIS"]["cache"]["url"] = url
    settings.CONNECTION_POOLS = pools
    response = staff.get(f"{API}config")
    assert response.status_code == 200
    assert PASSWORD.encode() not in response.content


# --- a Redis URL option redis-py cannot read: refused at start-up, never a 500 -----------------------

@pytest.mark.parametrize("query", ["db=x", "socket_timeout=abc", "health_check_interval=soon"])
def test_a_redis_url_option_redis_cannot_parse_is_refused_at_start_up(query: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        env.redis_pools(environ(REDIS_URL=f"redis://127.0.0.1:6379/0?{query}"))


def test_a_redis_url_option_in_the_settings_is_a_system_check_error_and_one_sentence(settings) -> None:
    """Set in settings.py (not from the environment): ``manage.py check`` says so (E006), and
    building the pool is one ImproperlyConfigured sentence, the password masked."""
    from connection_pools.backends.redis.pools import build_pool, pool_settings
    from connection_pools.checks import check_redis_urls

    pools = copy.deepcopy(settings.CONNECTION_POOLS)
    pools["REDIS"]["main"]["url"] = f"redis://:{PASSWORD}@127.0.0.1:6379/0?db=x"
    settings.CONNECTION_POOLS = pools
    errors = check_redis_urls()
    assert [error.id for error in errors] == ["connection_pools.E006"]
    assert "'db'" in errors[0].msg and PASSWORD not in errors[0].msg
    with pytest.raises(ImproperlyConfigured, match=r"\['main'\]\['url'\]") as caught:
        build_pool("main", pool_settings("main"))
    assert PASSWORD not in str(caught.value)


# --- DATABASE_POOL_SIZE + DATABASE_POOL_OVERFLOW above 1000: refused at start-up ---------------------

def test_pool_size_plus_overflow_above_the_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_POOL_OVERFLOW"):
        env.connection_pools(environ(DATABASE_POOL_SIZE="10", DATABASE_POOL_OVERFLOW="1000"))


# --- reset-stats: an empty pool name resets nothing --------------------------------------------------

@pytest.mark.parametrize(("query", "body", "content_type"), [
    ("", '{"pool": ""}', "application/json"),
    ("", "pool=", "application/x-www-form-urlencoded"),
    ("?pool=", "", "application/json"),
], ids=["json", "form", "query"])
def test_reset_stats_with_an_empty_pool_name_resets_nothing(staff: Client, query: str, body: str,
                                                            content_type: str) -> None:
    before = epoch()
    response = staff.post(f"{API}reset-stats{query}", body, content_type=content_type)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:200])
    assert epoch() == before


# --- reset-stats: a body nothing can be read from is a 400 -------------------------------------------

@pytest.mark.parametrize(("body", "content_type"), [
    (b"this is not a multipart document", "multipart/form-data; boundary=XX"),
    (b"&&", "application/x-www-form-urlencoded"),
], ids=["multipart", "form"])
def test_reset_stats_refuses_a_body_nothing_can_be_read_from(staff: Client, body: bytes, content_type: str) -> None:
    before = epoch()
    response = staff.generic("POST", f"{API}reset-stats", body, content_type=content_type)
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert epoch() == before


# --- reset-stats: a pool in the query and a body is a 400 --------------------------------------------

def test_reset_stats_does_not_ignore_the_query_pool_when_a_body_is_sent(staff: Client) -> None:
    before = epoch()
    response = staff.post(f"{API}reset-stats?pool=db_default", '{"pool": null}', content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert epoch() == before


# --- the dashboard's reset form: a misspelled or repeated field resets nothing -----------------------

@pytest.mark.parametrize("form", [{"pol": "db_default"}, {"pool": ["db_default", "redis_main"]}],
                         ids=["misspelled", "repeated"])
def test_dashboard_reset_refuses_a_form_it_does_not_take(staff_session: Client, form: dict) -> None:
    before = epoch()
    staff_session.post(DASHBOARD_RESET, form)
    assert epoch() == before


# --- warmpools --timeout: a finite number of seconds -------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "1e309"])
def test_warmpools_refuses_a_timeout_that_is_not_a_finite_number(monkeypatch, value: str) -> None:
    from connection_pools.management.commands import warmpools

    def never(*args, **kwargs):
        raise AssertionError(f"warm_pools ran with timeout={kwargs.get('timeout')!r}")

    monkeypatch.setattr(warmpools, "warm_pools", never)
    with pytest.raises(CommandError, match="--timeout"):
        call_command("warmpools", "--timeout", value)


# --- GET parameters: once each -----------------------------------------------------------------------

@pytest.mark.parametrize("query", ["history?pool=db_default&pool=redis_main", "history?minutes=60&minutes=5",
                                   "stats?per_process=1&per_process=0", "health?live=1&live=0",
                                   "server?minutes=5&minutes=0"])
def test_get_endpoints_refuse_a_repeated_parameter(staff: Client, query: str) -> None:
    response = staff.get(f"{API}{query}")
    assert response.status_code == 400, (query, response.status_code, response.content[:200])


# --- numbers: ASCII digits only ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1_0", "\u0663", "\uff11\uff10"], ids=["underscore", "arabic-indic", "fullwidth"])
def test_env_whole_numbers_are_ascii_digits_only(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_POOL_SIZE"):
        env.database_pool_settings(environ(DATABASE_POOL_SIZE=value))


@pytest.mark.parametrize("query", ["history?minutes=1_0", "history?minutes=%D9%A3", "server?minutes=%D9%A3",
                                   "server?minutes=1_0"])
def test_minutes_are_ascii_numbers_only(staff: Client, query: str) -> None:
    response = staff.get(f"{API}{query}")
    assert response.status_code == 400, (query, response.status_code, response.content[:200])


# --- GET parameters: only the endpoint's own ---------------------------------------------------------

@pytest.mark.parametrize("query", ["history?minute=5", "stats?per_proces=1", "server?minute=5"])
def test_get_endpoints_refuse_an_unknown_parameter(staff: Client, query: str) -> None:
    response = staff.get(f"{API}{query}")
    assert response.status_code == 400, (query, response.status_code, response.content[:200])
