"""Env vars -> settings: defaults, valid values, and one clear error per bad value."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from connection_pools import env


def test_defaults_point_at_local_services() -> None:
    dbs = env.databases({})
    assert dbs["default"]["ENGINE"] == "connection_pools.backends.postgresql"
    assert (dbs["default"]["HOST"], dbs["default"]["PORT"]) == ("127.0.0.1", 55432)
    assert (dbs["replica1"]["HOST"], dbs["replica1"]["PORT"]) == ("127.0.0.1", 55433)
    assert dbs["replica1"]["TEST"] == {"MIRROR": "default"}
    assert dbs["default"]["CONN_MAX_AGE"] == 0
    assert dbs["default"]["OPTIONS"]["pool"] == {}
    pools = env.connection_pools({})
    assert pools["DATABASE_POOL"] == {
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": 30.0,
        "pool_recycle": 3600.0,
        "pool_pre_ping": True,
        "pool_use_lifo": True,
        "pool_pre_ping_window": 0.0,
    }
    assert pools["REDIS"]["main"]["max_connections"] == 10
    assert pools["REDIS"]["cache"]["max_connections"] == 50


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
    }
    assert pools["REDIS"]["main"]["max_connections"] == 15
    assert pools["REDIS"]["cache"]["max_connections"] == 70


def test_replica_urls_many_or_none() -> None:
    urls = "postgres://u:p@h1:5432/d, postgres://u:p@h2:5433/d"
    dbs = env.databases({"DATABASE_REPLICA_URLS": urls})
    assert [a for a in dbs] == ["default", "replica1", "replica2"]
    assert dbs["replica2"]["HOST"] == "h2"
    assert list(env.databases({"DATABASE_REPLICA_URLS": ""})) == ["default"]


def test_persistent_mode_without_pool() -> None:
    dbs = env.databases({"DATABASE_POOL_ENABLED": "false", "DATABASE_CONN_MAX_AGE": "60"})
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
        env.databases({variable: value})
        env.connection_pools({variable: value})
    message = str(info.value)
    assert message.startswith(f"Environment variable {variable}=")
    assert accepted in message
    # The value is named, but never a password.
    assert ":p@" not in message


def test_password_masked_in_errors() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({"DATABASE_URL": "mysql://admin:s3cr3t-pw@db.example:3306/app"})
    assert "s3cr3t-pw" not in str(info.value)
    assert "admin:***@db.example:3306" in str(info.value)
    with pytest.raises(ImproperlyConfigured) as info:
        env.databases({"DATABASE_URL": "postgres://admin:s3cr3t-pw@db.example:bad/app"})
    assert "s3cr3t-pw" not in str(info.value)


def test_pool_and_persistent_connections_exclude_each_other() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_CONN_MAX_AGE"):
        env.databases({"DATABASE_CONN_MAX_AGE": "60"})


def test_secret_key_required_outside_debug() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        env.secret_key({}, debug=False)
    assert env.secret_key({"SECRET_KEY": "x" * 50}, debug=False) == "x" * 50
    assert env.secret_key({}, debug=True)


def test_bad_env_stops_manage_py_with_one_line(tmp_path) -> None:
    """Start-up with a bad value: the message names the variable, no driver traceback."""
    import os
    import subprocess
    import sys

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
