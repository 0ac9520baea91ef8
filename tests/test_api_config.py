"""``config`` shows every pool's effective settings and never a secret: passwords in every
URL (primary, replica, both Redis URLs) and the SECRET_KEY, on a real server."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from django.db import connection

from connection_pools.service import mask, mask_text
from tests.support import server as server_support
from tests.support.admin_api import API, make_user
from tests.support.server import GunicornServer
from tests.support.traffic import request

DB_PASSWORD = "Db-" + uuid.uuid4().hex  # a real role's password: the server must work with it
REDIS_MAIN_PASSWORD = "RedisMain-" + uuid.uuid4().hex
REDIS_CACHE_PASSWORD = "RedisCache-" + uuid.uuid4().hex
SECRET_KEY = "Secret-" + uuid.uuid4().hex
ROLE = "cp_config_test"


def with_credentials(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest.rsplit('@', 1)[-1]}"


@pytest.fixture
def role(django_db_blocker):
    """A login role with a distinctive password that can read the test database."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {ROLE}")
        cursor.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s", [DB_PASSWORD])
        cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")
    yield ROLE
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {ROLE}")
        cursor.execute(f"DROP ROLE {ROLE}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_config_masks_every_password_and_secret(role: str) -> None:
    _, token = make_user(staff=True)
    urls = server_support.database_urls_for_tests()
    env = {
        "DATABASE_URL": with_credentials(urls["DATABASE_URL"], role, DB_PASSWORD),
        "DATABASE_REPLICA_URLS": ",".join(with_credentials(u, role, DB_PASSWORD)
                                          for u in urls["DATABASE_REPLICA_URLS"].split(",")),
        "REDIS_URL": with_credentials(os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0"), "",
                                      REDIS_MAIN_PASSWORD),
        "REDIS_CACHE_URL": with_credentials(os.environ.get("REDIS_CACHE_URL", "redis://127.0.0.1:56379/1"),
                                            "default", REDIS_CACHE_PASSWORD),
        "SECRET_KEY": SECRET_KEY,
    }
    with GunicornServer(workers=1, threads=2, env=env) as server:
        headers = {"Authorization": f"Token {token}"}
        status, _, body, error = request("GET", server.url + API + "config", headers=headers)
        for _ in range(50):  # the token must reach the replica that serves the lookup
            if status != 401:
                break
            status, _, body, error = request("GET", server.url + API + "config", headers=headers)
        assert status == 200, (status, body, error)
        text = body.decode()
        for secret in (DB_PASSWORD, REDIS_MAIN_PASSWORD, REDIS_CACHE_PASSWORD, SECRET_KEY):
            assert secret not in text
        config = json.loads(text)
        assert config["database_pools"]["default"]["password"] == "***"
        assert config["database_pools"]["default"]["user"] == role  # the rest is shown
        assert config["redis_pools"]["main"]["url"].startswith("redis://:***@")
        assert config["redis_pools"]["cache"]["url"].startswith("redis://default:***@")
        assert config["caches"]["default"]["LOCATION"].startswith("redis://default:***@")
        assert config["database_pools"]["default"]["pool_settings"]["pool_size"] >= 1
        # Every other endpoint is secret-free too.
        for endpoint in ("stats?per_process=1", "health", "optimize", "recommendations"):
            _, _, other, _ = request("GET", server.url + API + endpoint, headers=headers)
            for secret in (DB_PASSWORD, REDIS_MAIN_PASSWORD, REDIS_CACHE_PASSWORD, SECRET_KEY):
                assert secret not in other.decode(), endpoint


def test_masking_covers_keys_urls_and_dsn_text() -> None:
    masked = mask({
        "PASSWORD": "p1", "nested": {"api_token": "t1", "list": ["redis://u:p2@h:1/0", "x"]},
        "OPTIONS": {"options": "-c search_path=x password=p3", "sslpassword": "p4"},
        "urls": "postgres://a:p5@h/db,postgres://b:p6@h2/db", "KEY_PREFIX": "kept",
    })
    text = json.dumps(masked)
    for secret in ("p1", "t1", "p2", "p3", "p4", "p5", "p6"):
        assert f'"{secret}"' not in text and f":{secret}@" not in text and f"={secret}" not in text
    assert masked["KEY_PREFIX"] == "kept"
    assert masked["urls"] == "postgres://a:***@h/db,postgres://b:***@h2/db"
    assert mask_text("host=h password='a b' user=u") == "host=h password=*** user=u"
