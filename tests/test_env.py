"""Env vars -> settings: defaults, valid values, and one clear error per bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from connection_pools import env
from connection_pools.service import mask_text
from project.dev_services import DEFAULTS as DEV


def test_the_library_has_no_default_server() -> None:
    # An adopter's project says where its servers are: no development port is assumed.
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL is not set"):
        env.databases({})
    pools = env.connection_pools({})
    assert pools["REDIS"]["main"]["url"] is None and pools["REDIS"]["cache"]["url"] is None
    assert pools["KEY_PREFIX"] is None  # derived from the primary database (conf.derived.namespace)
    assert env.caches(pools["REDIS"])["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert list(env.databases({"DATABASE_URL": DEV["DATABASE_URL"]})) == ["default"]  # replicas: none unless named


def test_the_example_project_defaults_to_its_development_servers() -> None:
    dbs = env.databases(DEV)
    assert dbs["default"]["ENGINE"] == "connection_pools.backends.postgresql"
    assert (dbs["default"]["HOST"], dbs["default"]["PORT"]) == ("127.0.0.1", 55432)
    assert (dbs["replica1"]["HOST"], dbs["replica1"]["PORT"]) == ("127.0.0.1", 55433)
    assert dbs["replica1"]["TEST"] == {"MIRROR": "default"}
    assert dbs["default"]["CONN_MAX_AGE"] == 0
    assert dbs["default"]["OPTIONS"]["pool"] == {}
    pools = env.connection_pools(DEV)
    assert pools["DATABASE_POOL"] == {
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": 30.0,
        "pool_recycle": 3600.0,
        "pool_pre_ping": True,
        "pool_use_lifo": True,
        "pool_pre_ping_window": 0.0,
        "release": "request",
    }
    assert pools["REDIS"]["main"]["max_connections"] == 10
    assert pools["REDIS"]["cache"]["max_connections"] == 50
    assert pools["REDIS"]["main"]["url"] == "redis://127.0.0.1:56379/0"


def test_guide_tuning_variables_are_read() -> None:
    pools = env.connection_pools(
        {
            "DATABASE_POOL_SIZE": "20",
            "DATABASE_POOL_OVERFLOW": "30",
            "DATABASE_POOL_TIMEOUT": "2.5",
            "DATABASE_POOL_RECYCLE": "60",
            "DATABASE_POOL_PRE_PING": "off",
            "DATABASE_POOL_USE_LIFO": "false",
            "DATABASE_POOL_PRE_PING_WINDOW": "0.5",
            "DATABASE_POOL_RELEASE": "Transaction",
            "REDIS_POOL_SIZE": "15",
            "REDIS_MAX_CONNECTIONS": "70",
        }
    )
    assert pools["DATABASE_POOL"] == {
        "pool_size": 20,
        "max_overflow": 30,
        "pool_timeout": 2.5,
        "pool_recycle": 60.0,
        "pool_pre_ping": False,
        "pool_use_lifo": False,
        "pool_pre_ping_window": 0.5,
        "release": "transaction",
    }
    assert pools["REDIS"]["main"]["max_connections"] == 15
    assert pools["REDIS"]["cache"]["max_connections"] == 70


def test_replica_urls_many_or_none() -> None:
    urls = "postgres://u:p@h1:5432/d, postgres://u:p@h2:5433/d"
    dbs = env.databases({**DEV, "DATABASE_REPLICA_URLS": urls})
    assert [a for a in dbs] == ["default", "replica1", "replica2"]
    assert dbs["replica2"]["HOST"] == "h2"
    assert list(env.databases({**DEV, "DATABASE_REPLICA_URLS": ""})) == ["default"]


def test_persistent_mode_without_pool() -> None:
    dbs = env.databases({**DEV, "DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "60"})
    assert "pool" not in dbs["default"]["OPTIONS"]
    assert dbs["default"]["CONN_MAX_AGE"] == 60


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("DATABASE_POOL_SIZE", "ten", "whole number >= 1"),
        ("DATABASE_POOL_SIZE", "0", "whole number >= 1"),
        ("DATABASE_POOL_OVERFLOW", "-1", "whole number >= 0"),
        ("DATABASE_POOL_TIMEOUT", "-5", "number of seconds > 0"),
        ("DATABASE_POOL_TIMEOUT", "soon", "number of seconds > 0"),
        ("DATABASE_POOL_RECYCLE", "nan", "number of seconds > 0"),
        ("DATABASE_POOL_PRE_PING", "maybe", "one of 1/true"),
        ("DATABASE_POOL_USE_LIFO", "2", "one of 1/true"),
        ("DATABASE_POOL_PRE_PING_WINDOW", "-1", "number of seconds >= 0"),
        ("DATABASE_POOL_RELEASE", "statement", "one of request, transaction"),
        ("REDIS_POOL_SIZE", "many", "whole number >= 1"),
        ("REDIS_MAX_CONNECTIONS", "-3", "whole number >= 1"),
        ("DATABASE_URL", "mysql://u:p@h/db", "PostgreSQL URL"),
        ("DATABASE_URL", "postgres://u:p@h:notaport/db", "well-formed URL"),
        ("DATABASE_URL", "not a url", "PostgreSQL URL"),
        ("DATABASE_URL", "postgres://u:p@h:5432/", "names the database"),
        ("DATABASE_REPLICA_URLS", "postgres://u:p@h/db,http://h/x", "PostgreSQL URL"),
        ("REDIS_URL", "memcached://h:11211", "Redis URL"),
        ("REDIS_CACHE_URL", "redis://h:port/1", "well-formed URL"),
        ("REDIS_CACHE_URL", "redis://h:6379/cache", "database number"),
    ],
)
def test_bad_value_gives_one_clear_error(variable: str, value: str, accepted: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({**DEV, variable: value})
        env.connection_pools({variable: value})
    message = str(info.value)
    assert message.startswith(f"Environment variable {variable}=")
    assert accepted in message
    # The value is named, but never a password.
    assert ":p@" not in message


def test_password_masked_in_errors() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({**DEV, "DATABASE_URL": "mysql://admin:s3cr3t-pw@db.example:3306/app"})
    assert "s3cr3t-pw" not in str(info.value)
    assert "admin:***@db.example:3306" in str(info.value)
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({**DEV, "DATABASE_URL": "postgres://admin:s3cr3t-pw@db.example:bad/app"})
    assert "s3cr3t-pw" not in str(info.value)


def test_pool_and_persistent_connections_exclude_each_other() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_CONN_MAX_AGE"):
        env.databases({**DEV, "DATABASE_CONN_MAX_AGE": "60"})


def test_secret_key_required_outside_debug() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        env.secret_key({}, debug=False)
    assert env.secret_key({"SECRET_KEY": "x" * 50}, debug=False) == "x" * 50
    assert env.secret_key({}, debug=True)


def test_bad_env_stops_manage_py_with_one_line(tmp_path) -> None:
    """Start-up with a bad value: the message names the variable, no driver traceback."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**os.environ, "DATABASE_POOL_SIZE": "ten"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_POOL_SIZE='ten' is invalid: expected a whole number >= 1" in result.stderr
    assert "Traceback" not in result.stderr


# --- passwords whatever their characters ---------------------------------------------------------

SECRET = "Sek{}retPw4"
#: Characters a password may hold raw (unencoded): each one ends or splits the netloc for urlsplit.
RAW_CHARACTERS = ["/", "#", "?", "@", ":", " ", "/#?@"]
URL_VARIABLES = {
    "DATABASE_URL": "postgres://app:{password}@127.0.0.1:5432/pools",
    "DATABASE_REPLICA_URLS": "postgres://app:{password}@127.0.0.1:5433/pools",
    "REDIS_URL": "redis://:{password}@127.0.0.1:6379/0",
    "REDIS_CACHE_URL": "redis://default:{password}@127.0.0.1:6379/1",
}


def _pieces(password: str) -> list[str]:
    """The password and every fragment of it a half-masking would leave visible."""
    parts = [password, *(piece for piece in re.split(r"[/#?@: ]", password) if len(piece) >= 3)]
    return sorted(set(parts))


def _settings_from(environ: dict[str, str]) -> None:
    """The example project's settings from ``environ`` over its development servers."""
    env.databases({**DEV, **environ})
    env.connection_pools({**DEV, **environ})


@pytest.mark.parametrize("variable", sorted(URL_VARIABLES))
@pytest.mark.parametrize("character", RAW_CHARACTERS)
def test_a_password_with_raw_url_characters_is_never_printed(variable: str, character: str) -> None:
    password = SECRET.format(character)
    value = URL_VARIABLES[variable].format(password=password)
    try:
        _settings_from({variable: value})
    except ImproperlyConfigured as exc:
        message = str(exc)
        assert message.startswith(f"Environment variable {variable}")
        for piece in _pieces(password):
            assert piece not in message, (piece, message)
    else:
        # Accepted: only when the URL still reads unambiguously; where it is shown, it is masked.
        assert character in (":", " ", "@"), value
        for piece in _pieces(password):
            assert piece not in mask_text(value), piece


def test_the_issue_example_is_one_masked_sentence_from_manage_py() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**os.environ, "DATABASE_URL": "postgres://app:Sek/retPw4@127.0.0.1:5432/pools"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_URL='postgres://app:***@127.0.0.1:5432/pools' is invalid" in result.stderr
    assert "percent-encoded" in result.stderr
    assert "retPw4" not in result.stderr + result.stdout and "Sek" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_comma_in_a_replica_password_does_not_print_either_half() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({**DEV, "DATABASE_REPLICA_URLS": "postgres://app:first,second@h:5432/pools"})
    assert "first" not in str(info.value) and "second" not in str(info.value)
    assert "%2C" in str(info.value)


# --- bounds on every env var -------------------------------------------------------------------------

#: Every numeric env var: (name, a value just beyond its bound).
NUMERIC_VARIABLES = [
    ("DATABASE_POOL_SIZE", "1001"), ("DATABASE_POOL_OVERFLOW", "1001"), ("DATABASE_POOL_TIMEOUT", "3601"),
    ("DATABASE_POOL_RECYCLE", "604801"), ("REDIS_POOL_SIZE", "100000000"), ("REDIS_MAX_CONNECTIONS", "10001"),
    ("REDIS_POOL_TIMEOUT", "3601"), ("REDIS_SOCKET_TIMEOUT", "3601"), ("REDIS_SOCKET_CONNECT_TIMEOUT", "3601"),
    ("REDIS_HEALTH_CHECK_INTERVAL", "3601"), ("DATABASE_REPLICA_MAX_LAG", "86401"),
    ("DATABASE_REPLICA_LAG_INTERVAL", "3601"), ("DATABASE_REPLICA_COOLDOWN", "3601"),
    ("DATABASE_REPLICA_PIN_SECONDS", "3601"), ("CONNECTION_POOLS_HISTORY_INTERVAL", "3601"),
    ("CONNECTION_POOLS_HISTORY_SECONDS", "604801"), ("CONNECTION_POOLS_TUNER_INTERVAL", "86401"),
    ("CONNECTION_POOLS_TUNER_MIN_POOL_SIZE", "1001"), ("CONNECTION_POOLS_TUNER_MAX_POOL_SIZE", "1001"),
    ("CONNECTION_POOLS_TUNER_MAX_OVERFLOW", "1001"), ("CONNECTION_POOLS_PUBLISH_INTERVAL", "3601"),
    ("CONNECTION_POOLS_SNAPSHOT_TTL", "86401"), ("CONNECTION_POOLS_HEALTH_CHECK_TIMEOUT", "61"),
    ("CONNECTION_POOLS_PROCESSES", "10001"),
]


@pytest.mark.parametrize(("variable", "beyond"), NUMERIC_VARIABLES)
@pytest.mark.parametrize("kind", ["beyond", "huge", "1e400", "nan", "-inf", "9" * 5000])
def test_every_numeric_variable_is_bounded_with_one_sentence(variable: str, beyond: str, kind: str) -> None:
    value = {"beyond": beyond, "huge": "1" + "0" * 30}.get(kind, kind)
    with pytest.raises(ImproperlyConfigured) as info:
        _settings_from({variable: value})
    message = str(info.value)
    assert message.startswith(f"Environment variable {variable}="), message
    assert "\n" not in message and len(message) < 400


def test_the_conn_max_age_is_bounded_too() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_CONN_MAX_AGE"):
        env.databases({**DEV, "DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "604801"})


def test_a_huge_redis_pool_is_refused_before_any_pool_is_built() -> None:
    from connection_pools.backends.redis import pools as redis_pools

    with pytest.raises(ImproperlyConfigured, match="REDIS_POOL_SIZE"):
        env.redis_pools({"REDIS_POOL_SIZE": "100000000"})
    settings = {**env.redis_pools(DEV)["main"], "max_connections": 100_000_000}
    with pytest.raises(ImproperlyConfigured, match="max_connections"):
        redis_pools.build_pool("main", settings)  # the settings-dict path, before redis-py fills its queue
    with pytest.raises(ImproperlyConfigured, match="REDIS_POOL_SIZE"):
        env.redis_pools({"REDIS_URL": "redis://127.0.0.1:6379/0?max_connections=100000000"})


@pytest.mark.parametrize("key", [" ", "   ", "\t\n"])
@pytest.mark.parametrize("debug", [True, False])
def test_a_blank_secret_key_is_refused(key: str, debug: bool) -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is blank"):
        env.secret_key({"SECRET_KEY": key}, debug=debug)


def test_a_tuner_minimum_above_its_maximum_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.connection_pools({"CONNECTION_POOLS_TUNER_MIN_POOL_SIZE": "20",
                              "CONNECTION_POOLS_TUNER_MAX_POOL_SIZE": "10"})
    assert "CONNECTION_POOLS_TUNER_MIN_POOL_SIZE=20" in str(info.value)
    assert "CONNECTION_POOLS_TUNER_MAX_POOL_SIZE=10" in str(info.value)


@pytest.mark.parametrize(("variables", "named"), [
    ({"CONNECTION_POOLS_SNAPSHOT_TTL": "5", "CONNECTION_POOLS_PUBLISH_INTERVAL": "5"}, "CONNECTION_POOLS_SNAPSHOT_TTL"),
    ({"CONNECTION_POOLS_HISTORY_SECONDS": "604800", "CONNECTION_POOLS_HISTORY_INTERVAL": "1"},
     "CONNECTION_POOLS_HISTORY_SECONDS"),
    ({"CONNECTION_POOLS_KEY_PREFIX": "has spaces"}, "CONNECTION_POOLS_KEY_PREFIX"),
    ({"CONNECTION_POOLS_KEY_PREFIX": "x" * 101}, "CONNECTION_POOLS_KEY_PREFIX"),
    ({"DATABASE_REPLICA_URLS": ",".join(["postgres://u:p@h:5432/d"] * 33)}, "DATABASE_REPLICA_URLS"),
])
def test_values_that_do_not_fit_together_or_are_malformed_are_refused(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        _settings_from(variables)


@pytest.mark.parametrize("hosts", ["https://example.com", "example.com:8000", "example.com/app", "::1",
                                   "[::1]:8000"])
def test_allowed_hosts_that_would_never_match_are_refused(hosts: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="ALLOWED_HOSTS"):
        env.allowed_hosts({"ALLOWED_HOSTS": hosts})
    assert env.allowed_hosts({"ALLOWED_HOSTS": "example.com,.example.org,[::1],*"}) == [
        "example.com", ".example.org", "[::1]", "*"]


def test_a_bad_log_level_is_one_sentence_not_a_logging_traceback() -> None:
    result = subprocess.run([sys.executable, "manage.py", "check"],
                            env={**os.environ, "CONNECTION_POOLS_LOG_LEVEL": "loud"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "ImproperlyConfigured: Environment variable CONNECTION_POOLS_LOG_LEVEL='loud' is invalid: "
        "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL."]
    assert env.log_level({"CONNECTION_POOLS_LOG_LEVEL": "debug"}) == "DEBUG"


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.connection_pools({"DATABASE_POOL_TIMEOUT": "x" * 10_000})
    assert len(str(info.value)) < 300
