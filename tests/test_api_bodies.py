"""Strict bodies on every admin API endpoint: a JSON object (or form) with known keys, else 400
naming what is accepted; a wrongly typed body never widens to "reset every pool"; deep
nesting and NaN are a 400, never a 500; OPTIONS answers on every endpoint, docs included."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client, override_settings

from connection_pools.cluster.store import store
from tests.support.admin_api import API, make_user, unique_prefix
from tests.support.replication import wait_for_replicas
from tests.test_security import admin_routes

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)

DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = ['"db_default"', "null", "[]", "1", "true", '{"pol": "db_default"}', '{"pool": 1}',
              '{"pool": ["db_default"]}', '{"pool": "db_default", "pool": "redis_main"}', DEEP,
              '{"pool": NaN}', '{"pool": "\\ud800"}', "{" + '"a":{' * 5000 + "}" * 5001, "not json"]


@pytest.fixture
def staff_client() -> Iterator[Client]:
    user, _ = make_user(staff=True)
    client = Client(raise_request_exception=True)
    client.force_login(user)
    wait_for_replicas()  # the session is read through the replica router
    current = settings.CONNECTION_POOLS  # merged: the test servers' Redis, not the defaults' ports
    with override_settings(CONNECTION_POOLS={**current, "KEY_PREFIX": unique_prefix("bodies"),
                                             "TUNER": {**current["TUNER"], "ALLOW_APPLY": True}}):
        yield client


def epoch() -> int:
    return store.resets().epoch


def post_json(client: Client, path: str, body: str, **extra: str):
    return client.post(path, body, content_type="application/json", **extra)


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: b[:24])
def test_reset_stats_refuses_every_body_that_is_not_an_object_of_known_keys(staff_client: Client, body: str) -> None:
    before = epoch()
    response = post_json(staff_client, f"{API}reset-stats", body)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    detail = response.json()["detail"]
    assert detail.startswith("Invalid") and ("pool" in detail or "JSON body" in detail), detail
    assert epoch() == before  # nothing was reset, least of all every pool


def test_reset_stats_still_resets_one_pool_or_all(staff_client: Client) -> None:
    before = epoch()
    assert post_json(staff_client, f"{API}reset-stats", '{"pool": "db_default"}').json()["reset"] == "db_default"
    assert post_json(staff_client, f"{API}reset-stats", '{"pool": null}').json()["reset"] == "all"
    assert staff_client.post(f"{API}reset-stats").json()["reset"] == "all"
    assert staff_client.post(f"{API}reset-stats?pool=redis_main").json()["reset"] == "redis_main"
    assert staff_client.post(f"{API}reset-stats", {"pool": "db_default"}).json()["reset"] == "db_default"  # form
    assert epoch() == before + 5


@pytest.mark.parametrize("query", ["pol=db_default", "pool=db_default&pool=redis_main", "pool=" + "x" * 201])
def test_reset_stats_query_string_is_as_strict(staff_client: Client, query: str) -> None:
    before = epoch()
    response = staff_client.post(f"{API}reset-stats?{query}")
    assert response.status_code == 400, response.content[:300]
    assert "pool" in response.json()["detail"]
    assert epoch() == before


def test_a_form_with_an_unknown_field_is_refused(staff_client: Client) -> None:
    response = staff_client.post(f"{API}reset-stats", {"pol": "db_default"})
    assert response.status_code == 400
    assert "'pol'" in response.json()["detail"]


@pytest.mark.parametrize("body", [*BAD_BODIES, '{"apply": true}'], ids=lambda b: b[:24])
def test_optimize_takes_no_body(staff_client: Client, body: str) -> None:
    response = post_json(staff_client, f"{API}optimize", body)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert "body" in response.json()["detail"]


def test_deep_nesting_through_session_auth_and_csrf_is_a_400(staff_client: Client) -> None:
    """The staff 500: with session authentication, DRF's CSRF check parses the body first."""
    client = Client(enforce_csrf_checks=True)
    client.cookies = staff_client.cookies
    assert client.get("/admin/connection-pools/").status_code == 200
    csrf = client.cookies["csrftoken"].value
    for endpoint in ("reset-stats", "optimize"):
        response = post_json(client, f"{API}{endpoint}", DEEP, HTTP_X_CSRFTOKEN=csrf)
        assert response.status_code == 400, (endpoint, response.status_code, response.content[:200])


def test_every_endpoint_refuses_a_body_it_does_not_take_and_answers_options(staff_client: Client) -> None:
    api_paths = [path for kind, path in admin_routes() if kind == "api"]
    assert len(api_paths) >= 9  # the guide's six, history, and the docs pages
    for path in api_paths:
        for method in ("GET", "POST"):
            response = staff_client.generic(method, path, "[1]", content_type="application/json")
            assert response.status_code in (400, 405), (method, path, response.status_code)
            deep = staff_client.generic(method, path, DEEP, content_type="application/json")
            assert deep.status_code in (400, 405), (method, path, deep.status_code)
        options = staff_client.options(path)
        assert options.status_code == 200, (path, options.status_code)
        assert json.loads(options.content)["name"]
