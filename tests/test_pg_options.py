"""OPTIONS["pool"]: Django's own vocabulary (psycopg's names), the guide's, and the engine as a drop-in."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import override_settings

from connection_pools.backends.postgresql.base import DatabaseWrapper
from connection_pools.conf.pool_options import PoolConfig, is_pooled, resolve
from tests.support.pg import (
    dispose,
    make_wrapper,
    server_pids,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("quiet_background")

DEFAULTS = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30.0, "pool_recycle": 3600.0, "pool_pre_ping": True,
            "pool_use_lifo": True, "pool_pre_ping_window": 0.0}


def resolved(pool, **settings) -> PoolConfig:
    return resolve("reports", {"OPTIONS": {"pool": pool}, **settings}, DEFAULTS)


def test_defaults_are_the_guides():
    config = resolved(True)
    assert config.guide_settings() == {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30.0,
                                       "pool_recycle": 3600.0, "pool_pre_ping": True, "pool_use_lifo": True,
                                       "pool_pre_ping_window": 0.0, "max_idle": 600.0, "release": "request"}
    assert (config.min_size, config.max_size, config.check) == (10, 30, None)
    assert resolved({}) == config


def test_psycopgs_names_are_the_native_vocabulary():
    def configure(conn):
        return None

    config = resolved({"min_size": 2, "max_size": 8, "timeout": 5, "max_lifetime": 60, "max_idle": 30,
                       "max_waiting": 4, "reconnect_timeout": 20, "num_workers": 2, "name": "reports-pool",
                       "configure": configure, "close_returns": True})
    assert (config.min_size, config.max_size, config.timeout, config.max_lifetime) == (2, 8, 5.0, 60.0)
    assert (config.max_idle, config.max_waiting, config.reconnect_timeout, config.num_workers) == (30.0, 4, 20.0, 2)
    assert (config.name, config.configure, config.close_returns) == ("reports-pool", configure, True)
    assert (config.pool_size, config.max_overflow) == (2, 6)


def test_the_guides_names_map_onto_psycopgs():
    guide = resolved({"pool_size": 2, "max_overflow": 6, "pool_timeout": 5, "pool_recycle": 60})
    native = resolved({"min_size": 2, "max_size": 8, "timeout": 5, "max_lifetime": 60})
    assert guide == native


def test_only_a_maximum_keeps_the_default_minimum_under_it():
    assert (resolved({"max_size": 4}).min_size, resolved({"max_size": 4}).max_size) == (4, 4)
    # psycopg's rule (and Django's pool's): min_size alone is also the maximum; the guide's overflow adds to it.
    assert (resolved({"min_size": 2}).min_size, resolved({"min_size": 2}).max_size) == (2, 2)
    assert resolved({"min_size": 2, "max_overflow": 3}).max_size == 5
    assert resolved({"pool_size": 2}).max_size == 22  # the guide's name keeps the guide's default overflow
    assert resolved({"min_size": 0, "max_size": 2}).min_size == 0  # Django's own tests use min_size 0


def test_the_pre_ping_in_both_vocabularies():
    def check(conn):
        return None

    assert resolved({"check": check}).check is check and resolved({"check": check}).pre_ping
    assert not resolved({"check": None}).pre_ping
    assert not resolved({"pool_pre_ping": False}).pre_ping
    assert resolved({"check": "psycopg_pool.ConnectionPool.check_connection"}).check is not None  # a dotted path
    health = resolved(True, CONN_HEALTH_CHECKS=True)
    from psycopg_pool import ConnectionPool

    assert health.check is ConnectionPool.check_connection  # Django's own engine does the same
    assert resolved({"pool_pre_ping_window": 0.5}).pre_ping_window == 0.5


def test_release_per_alias_or_by_default():
    assert not resolved(True).per_transaction  # "request": Django's
    assert resolved({"release": "transaction"}).per_transaction
    assert resolve("reports", {"OPTIONS": {"pool": True}}, {**DEFAULTS, "release": "transaction"}).per_transaction


@pytest.mark.parametrize(("pool", "message"), [
    ({"min_size": 2, "pool_size": 2}, "as psycopg's 'min_size' and as the guide's 'pool_size'"),
    ({"max_size": 8, "max_overflow": 6}, "as psycopg's 'max_size' and as the guide's 'max_overflow'"),
    ({"timeout": 5, "pool_timeout": 5}, "'timeout'"),
    ({"max_lifetime": 5, "pool_recycle": 5}, "'max_lifetime'"),
    ({"check": None, "pool_pre_ping": True}, "'check'"),
    ({"poolsize": 3}, "unknown key 'poolsize'"),
    ({"kwargs": {}}, r"\['kwargs'\] cannot be set"),
    ({"open": True}, r"\['open'\] cannot be set"),
    ({"min_size": -1}, r"\['min_size'\] is -1: expected a whole number from 0"),
    ({"max_size": 0}, r"\['max_size'\] is 0"),
    ({"min_size": 5, "max_size": 2}, "expected a whole number >= min_size"),
    ({"max_size": 10**9}, "from 1 to 1000"),
    ({"pool_timeout": "soon"}, "expected a number of seconds > 0"),
    ({"timeout": float("inf")}, "finite"),
    ({"pool_recycle": 0}, "expected a number of seconds > 0"),
    ({"pool_pre_ping": "yes"}, "expected True or False"),
    ({"pool_pre_ping_window": -1}, "seconds >= 0"),
    ({"release": "statement"}, r"\['release'\] is 'statement': expected one of 'request', 'transaction'"),
    ({"release": True}, r"\['release'\] is True: expected one of 'request', 'transaction'"),
    ({"check": 3}, "expected a callable"),
    ({"check": "no.such.module.check"}, "a callable or the dotted path of one"),
    ({"connection_class": dict}, "a subclass of psycopg.Connection"),
    ({"name": ""}, "a non-empty string"),
    ([1, 2], "expected True, False or a dict"),
])
def test_bad_pool_options_are_one_clear_error_naming_the_key(pool, message):
    with pytest.raises(ImproperlyConfigured, match=message) as excinfo:
        resolved(pool)
    assert "DATABASES['reports']['OPTIONS']['pool']" in str(excinfo.value)


def test_bad_defaults_name_the_setting():
    with pytest.raises(ImproperlyConfigured, match=r"CONNECTION_POOLS\['DATABASE_POOL'\]\['pool_size'\] is 'ten'"):
        resolve("reports", {"OPTIONS": {"pool": True}}, {**DEFAULTS, "pool_size": "ten"})


def test_pooling_and_persistent_connections_exclude_each_other_with_djangos_message():
    with pytest.raises(ImproperlyConfigured, match="Pooling doesn't support persistent connections"):
        resolved(True, CONN_MAX_AGE=60)


@pytest.mark.parametrize(("pool", "pooled"), [
    (True, True), ({}, True), ({"min_size": 1}, True), (False, False), (None, False),
])
def test_which_aliases_are_pooled(pool, pooled):
    assert is_pooled({"OPTIONS": {"pool": pool}}) is pooled
    assert is_pooled({"OPTIONS": {}}) is False


def test_the_system_check_reports_a_bad_alias():
    from connection_pools.checks import check_pool_options

    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 2, "pool_size": 2}
    connections.settings["broken_pool"] = settings_dict
    try:
        (error,) = check_pool_options()
    finally:
        del connections.settings["broken_pool"]
    assert error.id == "connection_pools.E004" and "'broken_pool'" in error.msg and "'min_size'" in error.msg
    assert check_pool_options() == []
    settings_dict["OPTIONS"]["pool"] = {"release": "per-query"}
    connections.settings["broken_release"] = settings_dict
    try:
        (error,) = check_pool_options()
    finally:
        del connections.settings["broken_release"]
    assert error.id == "connection_pools.E004" and error.msg == (
        "DATABASES['broken_release']['OPTIONS']['pool']['release'] is 'per-query': expected one of 'request', "
        "'transaction'.")


@pytest.mark.django_db(transaction=True)
def test_a_settings_entry_from_a_project_on_djangos_pool_runs_unchanged():
    # As Django's docs write it, with only ENGINE changed.
    base = connections["default"].settings_dict
    settings_dict = {
        "ENGINE": "connection_pools.backends.postgresql",
        "NAME": base["NAME"], "USER": base["USER"], "PASSWORD": base["PASSWORD"], "HOST": base["HOST"],
        "PORT": base["PORT"], "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"pool": {"min_size": 2, "max_size": 4, "timeout": 10}, "application_name": "django-native"},
    }
    configured = connections.configure_settings({"default": copy.deepcopy(base), "native": settings_dict})
    wrapper = DatabaseWrapper(configured["native"], "native")
    try:
        assert isinstance(wrapper, DatabaseWrapper)
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        pool = wrapper.pool
        assert (pool.min_size, pool.max_size, pool.timeout) == (2, 4, 10)
        assert wait_for(lambda: len(server_pids("django-native")) >= 2)  # min_size filled in the background
    finally:
        dispose(wrapper)


@pytest.mark.django_db(transaction=True)
def test_pool_false_is_honoured_at_every_call_with_a_pool_already_built():
    from django.db.backends.postgresql.base import Cursor

    class MyCursor(Cursor):
        pass

    assert connection.pool is not None  # the alias's pool exists
    copied = connection.copy()
    copied.settings_dict = copy.deepcopy(connection.settings_dict)
    copied.settings_dict["OPTIONS"]["pool"] = False
    copied.settings_dict["OPTIONS"]["cursor_factory"] = MyCursor
    try:
        assert copied.pool is None
        copied.connect()
        assert copied.connection.cursor_factory is MyCursor  # its own connection, its own cursor factory
        assert getattr(copied.connection, "_pool", None) is None
    finally:
        copied.close()
    assert connection.pool is not None  # the alias's own pool is untouched
    copied.close_pool()  # Django's close_pool of an unpooled copy closes nothing
    assert not connection.pool.closed


@pytest.mark.django_db(transaction=True)
def test_with_override_settings_the_defaults_follow():
    with override_settings(CONNECTION_POOLS={"DATABASE_POOL": {"pool_size": 1, "max_overflow": 0}}):
        wrapper = make_wrapper(True)
        try:
            assert (wrapper.pool.min_size, wrapper.pool.max_size) == (1, 1)
        finally:
            dispose(wrapper)
