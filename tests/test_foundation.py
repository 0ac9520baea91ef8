"""The project boots on the real services: primary, streaming replica, Redis."""

from __future__ import annotations

import time

import pytest
import redis
from django.core.management import call_command
from django.db import connections

from connection_pools import conf

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)


def test_app_boots_and_checks_pass() -> None:
    call_command("check")


def test_primary_accepts_writes() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (False,)
        cursor.execute("CREATE TABLE foundation_probe (id serial primary key, note text)")
        cursor.execute("INSERT INTO foundation_probe (note) VALUES ('hello') RETURNING id")
        assert cursor.fetchone()[0] == 1
        cursor.execute("DROP TABLE foundation_probe")


def test_replica_is_a_streaming_hot_standby_that_receives_rows() -> None:
    with connections["replica1"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (True,)
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE replication_probe (note text)")
        cursor.execute("INSERT INTO replication_probe VALUES ('from the primary')")
    try:
        deadline = time.monotonic() + 15
        rows = None
        while time.monotonic() < deadline:
            with connections["replica1"].cursor() as cursor:
                cursor.execute("SELECT to_regclass('replication_probe') IS NOT NULL")
                if cursor.fetchone()[0]:
                    cursor.execute("SELECT note FROM replication_probe")
                    rows = cursor.fetchall()
                    if rows:
                        break
            time.sleep(0.1)
        assert rows == [("from the primary",)]
        with connections["replica1"].cursor() as cursor:
            cursor.execute("SELECT status FROM pg_stat_wal_receiver")
            assert cursor.fetchone() == ("streaming",)
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TABLE replication_probe")


def test_redis_answers() -> None:
    for name in ("main", "cache"):
        client = redis.Redis.from_url(conf.get("REDIS")[name]["url"], socket_timeout=2)
        try:
            assert client.ping() is True
        finally:
            client.close()
