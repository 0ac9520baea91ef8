"""Real responses of the admin API validate against its own OpenAPI schema, strictly.

Every object the schema describes must have exactly the declared keys (none missing, none
undeclared), so the serializers (the schema) and the presenter (the responses) cannot drift
apart without this failing.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from django.test import Client

from connection_pools.cluster import publish
from connection_pools.cluster.store import store
from connection_pools.insight import health
from tests.support.admin_api import API, make_user, unique_prefix

pytestmark = pytest.mark.django_db(databases=["default", "replica1"])


@pytest.fixture
def staff(settings) -> Client:
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("schema")}
    store.forget_failure()
    health.forget()
    _, token = make_user(staff=True)
    yield Client(HTTP_AUTHORIZATION=f"Token {token}")
    store.clear()
    publish.forget()


def strict(schema: Any, components: dict[str, Any]) -> Any:
    """The OpenAPI 3.0 schema as JSON Schema: refs inlined, ``nullable`` as a type, objects closed."""
    if isinstance(schema, list):
        return [strict(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return strict(components[schema["$ref"].rsplit("/", 1)[1]], components)
    result = {key: strict(value, components) for key, value in schema.items()}
    if result.pop("nullable", False):
        if "type" in result:
            result["type"] = [result["type"], "null"]
        elif "allOf" in result or "oneOf" in result:
            result = {"anyOf": [{k: v for k, v in result.items()}, {"type": "null"}]}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False  # no undeclared key
        result["required"] = sorted(result["properties"])  # and no missing one (optional ones are listed below)
    return result


#: Keys a response may leave out (DRF's ``required=False``): only some pools or modes have them (``other_pools``:
#: only when a pool's kind has no registered descriptor).
OPTIONAL = {"per_process", "alias", "connect_ms", "role", "replica_lag_seconds", "in_rotation", "paused",
            "other_pools"}


def relax(schema: Any) -> Any:
    if isinstance(schema, list):
        return [relax(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: relax(value) for key, value in schema.items()}
    if "required" in result:
        result["required"] = [key for key in result["required"] if key not in OPTIONAL]
    return result


@pytest.fixture
def schema(staff: Client) -> dict[str, Any]:
    response = staff.get(API + "schema/")
    assert response.status_code == 200
    return response.json()


def response_schema(schema: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    operation = schema["paths"][f"/api/v1/admin/connection-pools/{path}"][method]
    content = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return relax(strict(copy.deepcopy(content), schema["components"]["schemas"]))


@pytest.mark.parametrize(("path", "query"), [
    ("stats", ""), ("stats", "?per_process=1"), ("health", ""), ("health", "?live=1"), ("optimize", ""),
    ("recommendations", ""), ("history", "?minutes=5"),
])
def test_every_response_matches_its_schema_exactly(staff: Client, schema: dict[str, Any], path: str,
                                                   query: str) -> None:
    with staff_traffic(staff):
        publish.publish()  # this process reports: every kind of pool is in the view
    response = staff.get(API + path + query)
    assert response.status_code in (200, 503), response.content
    body = response.json()
    jsonschema.validate(body, response_schema(schema, path, "get", response.status_code))
    if path == "stats":
        assert body["database_pools"] and body["redis_pools"]  # the shapes were really exercised


def test_a_drifted_response_fails_the_validation(staff: Client, schema: dict[str, Any]) -> None:
    with staff_traffic(staff):
        publish.publish()
    body = staff.get(API + "stats").json()
    pool_schema = response_schema(schema, "stats", "get", 200)
    extra = copy.deepcopy(body)
    next(iter(extra["database_pools"].values()))["undeclared"] = 1
    with pytest.raises(jsonschema.ValidationError, match="undeclared"):
        jsonschema.validate(extra, pool_schema)
    missing = copy.deepcopy(body)
    del next(iter(missing["redis_pools"].values()))["closed_connections"]
    with pytest.raises(jsonschema.ValidationError, match="closed_connections"):
        jsonschema.validate(missing, pool_schema)


def test_a_kind_added_by_one_line_is_in_the_schema_and_its_responses_match(staff: Client, settings) -> None:
    from connection_pools import conf

    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS,
                                 "SOURCES": (*conf.DEFAULTS["SOURCES"], "tests.support.toy_source")}
    schema = staff.get(API + "schema/").json()
    assert "busy_widgets" in schema["components"]["schemas"]["ToyPool"]["properties"]
    with staff_traffic(staff):
        publish.publish()
    for path, status in (("stats", 200), ("health?live=1", None)):
        response = staff.get(API + path)
        body = response.json()
        jsonschema.validate(body, response_schema(schema, path.split("?")[0], "get", status or response.status_code))
    assert body["pools"]["toy_widgets"]["kind"] == "toy"
    assert staff.get(API + "stats").json()["toy_pools"]["widgets"]["keeps"] == 3


class staff_traffic:
    """Some real traffic on every pool (database, replica, Redis main and cache) before a snapshot."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __enter__(self) -> None:
        from django.core.cache import cache
        from django.db import connections

        from connection_pools.backends.redis.pools import get_redis

        for alias in ("default", "replica1"):
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
        cache.set("schema-test", 1, 5)
        get_redis("main").ping()

    def __exit__(self, *exc: object) -> None:
        return None
