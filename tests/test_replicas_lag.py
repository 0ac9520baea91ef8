"""Lag awareness and read-your-writes against a replica whose replay is really delayed
(``recovery_min_apply_delay``): the delayed replica is skipped once its lag exceeds the
maximum, and a client's own write is visible in the same request and the next one."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import router
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import include, path

from connection_pools.conf.aliases import spec_for
from connection_pools.middleware.pinning import COOKIE_SALT
from connection_pools.routing import replicas
from connection_pools.sources.postgres import PostgresSource
from project.workload.models import Item
from tests.support.replication import REPLICA, delayed_replay, fresh_routing_state, wait_for_replica

pytestmark = [
    pytest.mark.django_db(databases=["default", REPLICA], transaction=True),
    pytest.mark.urls(__name__),
]

DELAY_SECONDS = 5

#: The project's replica settings (their ALIASES): a test overriding REPLICAS keeps them.
REPLICA_SETTINGS = dict(settings.CONNECTION_POOLS["REPLICAS"])


def write_then_read(request: HttpRequest) -> JsonResponse:
    """A GET that writes (e.g. a visit log), then reads its own row back."""
    item = Item.objects.create(name=request.GET["name"])
    queryset = Item.objects.filter(pk=item.pk)
    return JsonResponse({"found": queryset.exists(), "read_db": queryset.db})


urlpatterns = [path("write-then-read/", write_then_read), path("", include("project.urls"))]


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    with fresh_routing_state():
        yield


def names(response) -> list[str]:
    return [row["name"] for row in response.json()["items"]]


def test_lagging_replica_is_skipped_and_back_once_caught_up() -> None:
    wait_for_replica()
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "MAX_LAG_SECONDS": 0.5}}):
        state = replicas.sample(REPLICA)
        assert (state.lag_seconds, replicas.replica_status()[REPLICA]["in_rotation"]) == (0.0, True)

        with delayed_replay(f"{DELAY_SECONDS}s"):
            # An explicit using= bypasses the router: this test's own reads stay unpinned.
            Item.objects.using("default").create(name="lagging")
            wait_for_replica(replayed=False)  # received, not yet applied
            # Every commit since the delay took effect is held back, so the last
            # replayed one gets older: past MAX_LAG_SECONDS after this sleep.
            time.sleep(0.6)
            replicas.sample(REPLICA)
            status = replicas.replica_status()[REPLICA]
            assert status["in_rotation"] is False, status
            assert status["reason"] == "lagging"
            assert status["lag_seconds"] > 0.5
            assert status["lag_bytes"] > 0
            assert PostgresSource(spec_for(REPLICA)).snapshot().gauges.replica_lag_seconds == status["lag_seconds"]

            fallbacks = replicas.reading(REPLICA).fallbacks
            assert router.db_for_read(Item) == "default"
            assert list(Item.objects.values_list("name", flat=True)) == ["lagging"]
            assert replicas.reading(REPLICA).fallbacks == fallbacks + 2

        # Caught up (delay removed, everything replayed): lag 0 although the
        # last replayed commit is older than MAX_LAG_SECONDS by now (an idle
        # primary commits nothing; the replay timestamp alone would say "lagging").
        time.sleep(0.6)
        state = replicas.sample(REPLICA)
        assert state.lag_seconds == 0.0
        assert replicas.replica_status()[REPLICA]["in_rotation"] is True
        assert router.db_for_read(Item) == REPLICA
        assert replicas.reading(REPLICA).out_of_rotation_seconds > 0


def test_read_your_writes_in_the_same_request_and_the_next_one() -> None:
    client, stranger = Client(), Client()
    wait_for_replica()
    with (
        override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "MAX_LAG_SECONDS": 3600,
                                                         "PIN_SECONDS": 60}}),
        delayed_replay(f"{DELAY_SECONDS}s"),
    ):
        written_at = time.monotonic()
        first = client.get("/write-then-read/", {"name": "mine"})
        assert first.status_code == 200
        # Same request: the write pinned the rest of it to the primary.
        assert first.json() == {"found": True, "read_db": "default"}
        cookie = first.cookies[replicas.replica_settings()["PIN_COOKIE"]]
        assert cookie["max-age"] == 60 and cookie["httponly"]

        # Next request of the same client: its signed cookie pins it too.
        second = client.get("/items/")
        assert second.json()["db"] == "default"
        assert "mine" in names(second)

        # Another client reads from the (lagging, but within MAX_LAG) replica:
        # this proves the replica really did not have the row yet.
        other = stranger.get("/items/")
        assert other.json()["db"] == REPLICA
        if time.monotonic() - written_at < DELAY_SECONDS - 1:
            assert "mine" not in names(other)


def signed_cookie(name: str, value: str, salt: str) -> str:
    """The value Django's public API signs (its salting scheme changed in Django 6.1)."""
    response = HttpResponse()
    response.set_signed_cookie(name, value, salt=salt)
    return response.cookies[name].value


def test_unsafe_methods_pin_and_forged_cookies_do_not() -> None:
    wait_for_replica()
    client = Client()
    created = client.post("/items/", data={"name": "posted", "quantity": 1}, content_type="application/json")
    assert created.status_code == 201
    cookie_name = replicas.replica_settings()["PIN_COOKIE"]
    assert cookie_name in created.cookies
    assert client.get("/items/").json()["db"] == "default"

    signed = Client()
    signed.cookies[cookie_name] = signed_cookie(cookie_name, "1", salt=COOKIE_SALT)
    assert signed.get("/items/").json()["db"] == "default"
    for value in ("1", signed_cookie(cookie_name, "1", salt="another-salt")):
        forged = Client()
        forged.cookies[cookie_name] = value
        assert forged.get("/items/").json()["db"] == REPLICA

    # A correctly signed but expired pin no longer pins.
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "PIN_SECONDS": 0.2}}):
        late = Client()
        late.post("/items/", data={"name": "late", "quantity": 1}, content_type="application/json")
        time.sleep(0.3)
        assert late.get("/items/").json()["db"] == REPLICA


def test_safe_requests_without_writes_are_not_pinned() -> None:
    response = Client().get("/items/")
    assert response.json()["db"] == REPLICA
    assert replicas.replica_settings()["PIN_COOKIE"] not in response.cookies
