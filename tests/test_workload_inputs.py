"""The example workload answers 400 with a sentence to every bad input (never a 500, never a
silent guess), and every URL that answers GET answers HEAD the same way (health checkers use HEAD)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from project.workload.models import Item
from tests.support.admin_api import make_user
from tests.support.replication import wait_for_replicas

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)

#: The issue's list, and their neighbours: each must be a 400 and write nothing.
BAD_ITEM_BODIES = [
    "null", "[]", "1", '"s"', "true",
    '{"name": "a", "quantity": 2147483648}', '{"name": "a", "quantity": -2147483649}',
    '{"name": "a", "quantity": 1e400}', '{"name": "a", "quantity": Infinity}', '{"name": "a", "quantity": NaN}',
    '{"name": "a", "quantity": 5.7}', '{"name": "a", "quantity": "5"}', '{"name": "a", "quantity": true}',
    '{"name": "a\\u0000b"}', '{"name": "a\\ud800"}', '{"name": ["a"]}', '{"name": ""}', '{"quantity": 1}',
    '{"name": "' + "x" * 201 + '"}', '{"name": "a", "qty": 1}', '{"name": "a", "name": "b"}',
    "[" * 100_000, '{"name": ' + "[" * 5000 + "]" * 5000 + "}", "not json",
    '{"name": "a", "quantity": 1' + "0" * 5000 + "}",
]


def anonymous() -> Client:
    return Client(raise_request_exception=True)


@pytest.mark.parametrize("body", BAD_ITEM_BODIES, ids=lambda b: b[:30])
def test_creating_an_item_from_bad_json_is_a_400_and_writes_nothing(body: str) -> None:
    before = Item.objects.using("default").count()
    response = anonymous().post("/items/", body.encode("utf-8", "surrogatepass"), content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["error"]
    assert Item.objects.using("default").count() == before


def test_bytes_that_are_not_utf8_are_a_400() -> None:
    response = anonymous().post("/items/", b'{"name": "\xff\xfe"}', content_type="application/json")
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]


def test_a_good_item_is_created_with_exactly_its_values() -> None:
    name = f"input-{uuid.uuid4().hex[:6]}"
    response = anonymous().post("/items/", {"name": f"  {name} ", "quantity": 2147483647},
                                content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name and response.json()["quantity"] == 2147483647
    assert anonymous().post("/items/", {"name": name}, content_type="application/json").json()["quantity"] == 0


@pytest.mark.parametrize("query", ["limit=²", "limit=٣", "limit=0", "limit=101", "limit=-1", "limit=1e3",
                                   "limit=" + "9" * 30, "limit=%00", "limit="])
def test_a_bad_limit_is_a_400(query: str) -> None:
    response = anonymous().get(f"/items/?{query}")
    assert response.status_code == 400, (query, response.status_code)
    assert "limit" in response.json()["error"]


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1e309", "-1", "31", "x", "%00"])
def test_a_bad_sleep_is_a_400(seconds: str) -> None:
    for path in (f"/slow/?seconds={seconds}", f"/wait-between-queries/?seconds={seconds}"):
        response = anonymous().get(path)
        assert response.status_code == 400, (path, response.status_code)
    response = anonymous().post("/slow-write/", f'{{"name": "x", "seconds": "{seconds}"}}',
                                content_type="application/json")
    assert response.status_code == 400


def sample_routes() -> list[str]:
    """Every route of the project outside Django's own admin (the dashboard included), with
    sample values for converters."""
    routes: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            if not isinstance(pattern.pattern, RoutePattern):
                continue  # regex routes: format-suffix duplicates and the static files
            route = prefix + str(pattern.pattern)
            if route.startswith("admin/") and not route.startswith("admin/connection-pools/"):
                continue
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                routes.append("/" + re.sub(r"<(?:(\w+):)?\w+>", "1", route))

    walk(get_resolver().url_patterns, "")
    return sorted(set(routes))


def test_head_is_answered_wherever_get_is() -> None:
    user, _ = make_user(staff=True)
    client = Client()
    client.force_login(user)
    wait_for_replicas()  # the session is read through the replica router
    routes = sample_routes()
    assert "/admin/connection-pools/" in routes and "/items/" in routes and "/metrics" in routes
    for route in routes:
        path = route + ("?seconds=0" if route in ("/slow/", "/wait-between-queries/") else "")
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, (route, get.status_code, head.status_code)
        assert head.content == b"", route
