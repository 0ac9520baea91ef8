"""Attribution: every connection the engine opens names its owner in ``application_name``."""

from __future__ import annotations

import os
import socket

import pytest

from connection_pools.backends.postgresql import attribution
from connection_pools.backends.postgresql.attribution import application_name, host_matches, parse
from tests.support.pg import admin_connect, backend_pid, dispose, make_wrapper


def test_the_name_says_prefix_alias_pid_and_host():
    name = application_name("default", prefix="django", pid=4242, host="web-1")
    assert name == "django[default:4242@web-1]"
    assert parse(name) == attribution.Attribution(prefix="django", alias="default", pid=4242, host="web-1")


def test_a_users_own_name_comes_first_and_is_kept():
    name = application_name("replica1", "billing worker", prefix="django", pid=7, host="db-client")
    assert name == "billing worker django[replica1:7@db-client]"
    found = parse(name)
    assert found is not None and found.user_name == "billing worker" and found.alias == "replica1"


def test_attributing_twice_does_not_repeat_the_token():
    once = application_name("default", "billing", prefix="django", pid=7, host="h")
    assert application_name("default", once, prefix="django", pid=7, host="h") == once


def test_the_name_fits_postgresqls_63_bytes_cutting_the_host_then_the_users_name():
    host = "a-very-long-kubernetes-pod-name-7d9f8c6b5-abcde.namespace.svc.cluster.local"
    name = application_name("default", "an application with a rather long name", prefix="django", pid=1234567,
                            host=host)
    assert len(name.encode()) <= 63
    found = parse(name)
    assert found is not None and found.pid == 1234567 and found.alias == "default"
    assert found.user_name.startswith("an application w")  # at least 16 bytes of the user's name stay
    assert host_matches(found.host, host) and not host_matches(found.host, "other-host")
    alone = application_name("default", prefix="django", pid=1, host=host)
    assert len(alone) == 63 and host_matches(parse(alone).host, host)


def test_non_printable_ascii_reads_as_postgresql_stores_it():
    name = application_name("default", "café", prefix="django", pid=1, host="hôte")
    assert name == "caf? django[default:1@h?te]"
    assert host_matches(parse(name).host, "hôte")


def test_names_that_are_not_ours_do_not_parse():
    for name in ("", "psql", "django", "django[default]", "django[default:12@host] trailing", "x[y:z@h]"):
        assert parse(name) is None, name
    assert parse("django[default:1@h]", prefix="other") is None


@pytest.mark.django_db
def test_pooled_and_unpooled_connections_carry_it_on_the_server():
    pooled, plain = make_wrapper({"pool_size": 1, "max_overflow": 0}), make_wrapper(None)
    try:
        for wrapper in (pooled, plain):
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
            with admin_connect() as admin:
                (shown,) = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                                         [pid]).fetchone()
            found = parse(shown)
            assert found is not None, shown
            assert (found.user_name, found.alias, found.pid) == (wrapper.alias, wrapper.alias, os.getpid())
            assert host_matches(found.host, socket.gethostname())
    finally:
        dispose(pooled)
        dispose(plain)


@pytest.mark.django_db
def test_it_can_be_turned_off(settings):
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "APPLICATION_NAME": {"ENABLED": False}}
    wrapper = make_wrapper(None)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        pid = backend_pid(wrapper.connection)
        with admin_connect() as admin:
            (shown,) = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                                     [pid]).fetchone()
        assert shown == wrapper.alias  # exactly the user's own name
    finally:
        dispose(wrapper)


def test_libpqs_pgappname_is_the_users_own_name_too(monkeypatch):
    monkeypatch.setenv("PGAPPNAME", "nightly-report")
    params = attribution.apply("default", {"host": "db"})
    assert parse(params["application_name"]).user_name == "nightly-report"
    assert attribution.apply("default", {"application_name": "explicit"})["application_name"].startswith("explicit ")
