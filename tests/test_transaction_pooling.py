"""DATABASE_POOLER=pgbouncer: the settings it makes, the engine refusing session state behind the real
PgBouncer, and the system checks (unsafe settings; a PgBouncer the engine was not told about)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import NotSupportedError, connections, transaction

from connection_pools import checks, env
from connection_pools.backends.postgresql.transaction_pooling import session_state
from project.dev_services import DEFAULTS as DEV
from tests.support import pgbouncer as pgb
from tests.support.pg import dispose, make_wrapper


def test_database_pooler_pgbouncer_makes_the_primary_safe_for_transaction_pooling():
    environ = {**DEV, "DATABASE_URL": "postgres://u:p@pgb:6432/app", "DATABASE_POOLER": "pgbouncer"}
    dbs = env.databases(environ)
    assert dbs["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert dbs["default"]["OPTIONS"]["prepare_threshold"] is None
    assert not dbs["replica1"].get("DISABLE_SERVER_SIDE_CURSORS")  # replicas keep their direct connections
    assert env.connection_pools(environ)["POOLERS"] == {"default": "pgbouncer"}
    assert env.connection_pools({})["POOLERS"] == {}
    assert not env.databases(DEV)["default"].get("DISABLE_SERVER_SIDE_CURSORS")


@pytest.mark.parametrize(("variable", "value", "accepted"), [
    ("DATABASE_POOLER", "pgpool", "one of pgbouncer, none"),
    ("PGBOUNCER_ADMIN_URL", "postgres://stats:S3cret@pgb:6432/app", "database is 'pgbouncer'"),
    ("PGBOUNCER_ADMIN_URL", "redis://pgb:6432/pgbouncer", "a PostgreSQL URL"),
    ("CONNECTION_POOLS_APPLICATION_NAME_PREFIX", "has space", "1 to 16 letters"),
    ("CONNECTION_POOLS_CENSUS_QUERY_TEXT", "-1", "a whole number >= 0"),
    ("CONNECTION_POOLS_CENSUS_INTERVAL", "0", "a number of seconds >= 0.5"),
])
def test_bad_server_tier_values_are_one_sentence_without_the_password(variable, value, accepted):
    with pytest.raises(ImproperlyConfigured) as caught:
        env.connection_pools({variable: value})
    message = str(caught.value)
    assert variable in message and accepted in message and "S3cret" not in message and "\n" not in message


def test_pgbouncer_admin_urls_are_read_comma_separated():
    urls = "postgres://s:p@pgb1:6432/pgbouncer,postgres://s:p@pgb2:6432/pgbouncer"
    assert env.connection_pools({"PGBOUNCER_ADMIN_URL": urls})["PGBOUNCER"]["ADMIN_URLS"] == tuple(urls.split(","))


@pytest.mark.parametrize(("sql", "state"), [
    ("SET search_path TO other", "SET"), ("  set statement_timeout = 5", "SET"), ("LISTEN jobs", "LISTEN"),
    ("PREPARE q AS SELECT 1", "PREPARE"), ("RESET ALL", "RESET"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE"),
    ("SELECT pg_advisory_lock(1)", "a session advisory lock"),
    ("SET LOCAL statement_timeout = 5", None), ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", None),
    ("SELECT pg_advisory_xact_lock(1)", None), ("SELECT 'SET x'", None), ("DECLARE c CURSOR FOR SELECT 1", None),
])
def test_what_counts_as_session_state(sql, state):
    assert session_state(sql) == state


@pytest.fixture
def through_pgbouncer(transactional_db, settings):
    """Our engine through the real PgBouncer, marked as such (as DATABASE_POOLER=pgbouncer does)."""
    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0}, port=pgb.port(), prepare_threshold=None)
    wrapper.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    connections[wrapper.alias] = wrapper
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "POOLERS": {wrapper.alias: "pgbouncer"}}
    try:
        yield wrapper
    finally:
        dispose(wrapper)
        del connections[wrapper.alias]
        assert pgb.release_servers(wrapper.settings_dict["NAME"])


def test_session_state_behind_pgbouncer_is_refused_and_transaction_state_works(through_pgbouncer):
    with through_pgbouncer.cursor() as cursor:
        with pytest.raises(NotSupportedError, match="SET LOCAL"):
            cursor.execute("SET search_path TO public")
        with pytest.raises(NotSupportedError, match="session advisory lock"):
            cursor.execute("SELECT pg_advisory_lock(%s)", [7])
    with transaction.atomic(using=through_pgbouncer.alias), through_pgbouncer.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1234")
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("1234ms",)
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [7])


@pytest.mark.django_db
def test_a_direct_alias_may_set_session_state():
    wrapper = make_wrapper(None)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SET application_name TO 'still-allowed'")
    finally:
        dispose(wrapper)


def test_unsafe_settings_behind_pgbouncer_are_errors(settings):
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "POOLERS": {"default": "pgbouncer"}}
    default = connections.settings["default"]
    saved = {key: default.get(key) for key in ("DISABLE_SERVER_SIDE_CURSORS",)}
    try:
        default["DISABLE_SERVER_SIDE_CURSORS"] = False
        messages = checks.check_transaction_pooling()
        assert [m.id for m in messages] == ["connection_pools.E302"]
        assert "DISABLE_SERVER_SIDE_CURSORS" in messages[0].msg
        default["DISABLE_SERVER_SIDE_CURSORS"] = True
        assert checks.check_transaction_pooling() == []
    finally:
        default.update(saved)
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "POOLERS": {"default": "pgpool"}}
    assert [m.id for m in checks.check_transaction_pooling()] == ["connection_pools.E302"]


@pytest.mark.django_db
def test_a_pgbouncer_the_engine_was_not_told_about_is_a_warning():
    wrapper = make_wrapper({"pool_size": 1, "max_overflow": 0}, port=pgb.port(), prepare_threshold=None)
    connections[wrapper.alias] = wrapper
    connections.settings[wrapper.alias] = wrapper.settings_dict  # as if it were in DATABASES
    try:
        assert checks.detect_pgbouncer(wrapper.alias, 2.0) is True
        assert checks.detect_pgbouncer("default", 2.0) is False
        messages = checks.check_pgbouncer_detected(databases=[wrapper.alias, "default"])
        assert [m.id for m in messages] == ["connection_pools.W301"]
        assert "DATABASE_POOLER=pgbouncer" in messages[0].hint
    finally:
        del connections.settings[wrapper.alias]
        dispose(wrapper)
        del connections[wrapper.alias]
        pgb.release_servers(wrapper.settings_dict["NAME"])
