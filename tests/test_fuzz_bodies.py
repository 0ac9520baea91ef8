"""Fuzzing of request bodies and query strings (hypothesis, as schemathesis does for the API schema
in test_security.py): the workload's endpoints and the admin API's POST bodies never answer 5xx,
and every refusal is a 400 that says why.

Generated inputs: any JSON value (NaN, Infinity, huge numbers, lone surrogates, NUL, deep
nesting included), objects shaped like the expected ones with wrongly typed fields, raw
bytes, and form bodies. In-process (Django's test client raises on a 500), against the
real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Iterator

import hypothesis
import pytest
from django.conf import settings
from django.test import Client, override_settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st

from tests.support.admin_api import API, make_user, unique_prefix
from tests.support.replication import wait_for_replicas

pytestmark = [pytest.mark.slow, pytest.mark.django_db(databases=["default", "replica1"], transaction=True)]

FUZZ = hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True,
                           phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))

text = st.text(alphabet=st.characters(codec=None), max_size=30) | st.text(
    alphabet=st.characters(categories=["Cs", "Cc"]), max_size=3)  # lone surrogates, NUL and other controls
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**31 - 2, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)


def item_like(*keys: str) -> st.SearchStrategy[dict]:
    """Objects with the expected keys (and sometimes one more), each holding anything."""
    return st.fixed_dictionaries({key: json_values for key in keys},
                                 optional={"extra": json_values, keys[0].upper(): json_values})


def encoded(values: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    return values.map(lambda value: json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass"))


nested = st.integers(min_value=30, max_value=3000).map(lambda depth: ("[" * depth + "]" * depth).encode())
huge_numbers = st.sampled_from([b"1e400", b"-1e400", b"1" + b"0" * 5000, b'{"quantity": 1e999, "name": "x"}'])


def bodies(*keys: str) -> st.SearchStrategy[bytes]:
    return encoded(json_values) | encoded(item_like(*keys)) | st.binary(max_size=64) | nested | huge_numbers


def refused_or_done(response, allowed: tuple[int, ...]) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert response.content and json.loads(response.content)  # a JSON sentence, not an empty page


@pytest.fixture
def anonymous() -> Client:
    return Client(raise_request_exception=True)


@pytest.fixture
def staff() -> Iterator[Client]:
    user, _ = make_user(staff=True)
    client = Client(raise_request_exception=True)
    client.force_login(user)
    wait_for_replicas()
    current = settings.CONNECTION_POOLS
    with override_settings(CONNECTION_POOLS={**current, "KEY_PREFIX": unique_prefix("fuzz"),
                                             "TUNER": {**current["TUNER"], "ALLOW_APPLY": False}}):
        yield client


def test_creating_items_from_fuzzed_bodies(anonymous: Client) -> None:
    @FUZZ
    @given(body=bodies("name", "quantity"))
    def post(body: bytes) -> None:
        refused_or_done(anonymous.post("/items/", body, content_type="application/json"), (201, 400))

    post()


def _would_sleep(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("name"), str) and data.get("name", "").strip() != ""


def test_slow_writes_from_fuzzed_bodies(anonymous: Client) -> None:
    @FUZZ
    @given(body=bodies("name", "seconds").filter(lambda body: not _would_sleep(body)))
    def post(body: bytes) -> None:
        refused_or_done(anonymous.post("/slow-write/", body, content_type="application/json"), (400,))

    post()


def _sleeps(value: str) -> bool:
    try:
        seconds = float(value)
    except ValueError:
        return False
    return math.isfinite(seconds) and 0 < seconds <= 30


#: A query value as a client sends it: any bytes (invalid UTF-8 and encoded surrogates too), percent-encoded.
query_values = (st.binary(max_size=12) | text.map(lambda value: value.encode("utf-8", "surrogatepass"))).map(
    urllib.parse.quote_from_bytes)


def test_fuzzed_query_strings(anonymous: Client) -> None:
    @FUZZ
    @hypothesis.example(limit="%C2%B2", seconds="nan")  # the "limit=²"
    @hypothesis.example(limit="%D9%A3", seconds="1e309")
    @given(limit=query_values, seconds=query_values.filter(
        lambda value: not _sleeps(urllib.parse.unquote(value, errors="replace"))))
    def get(limit: str, seconds: str) -> None:
        refused_or_done(anonymous.get(f"/items/?limit={limit}"), (200, 400))
        refused_or_done(anonymous.get(f"/slow/?seconds={seconds}"), (200, 400))

    get()


def test_admin_api_post_bodies(staff: Client) -> None:
    forms = st.dictionaries(st.sampled_from(["pool", "pol", "csrfmiddlewaretoken", "x"]), text, max_size=3)

    @FUZZ
    @given(body=bodies("pool"), form=forms)
    def post(body: bytes, form: dict[str, str]) -> None:
        for endpoint in ("reset-stats", "optimize"):
            allowed = (200, 400, 404) if endpoint == "reset-stats" else (400, 403)
            refused_or_done(staff.post(f"{API}{endpoint}", body, content_type="application/json"), allowed)
            urlencoded = urllib.parse.urlencode(form, errors="surrogatepass")  # what a client would send
            refused_or_done(staff.post(f"{API}{endpoint}", urlencoded,
                                       content_type="application/x-www-form-urlencoded"), allowed)

    post()
