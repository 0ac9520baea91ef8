"""Failover: stop the real replica while a real gunicorn serves reads: every request still
answers 200 (reads go to the primary), and restarting the replica brings it back into rotation."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from connection_pools.routing import replicas
from tests.support import services
from tests.support.replication import REPLICA, fresh_routing_state, wait_for_replica

pytestmark = [pytest.mark.django_db(databases=["default", REPLICA], transaction=True), pytest.mark.slow]

FAST_RECOVERY = {"DATABASE_REPLICA_COOLDOWN": "1", "DATABASE_REPLICA_LAG_INTERVAL": "0.5"}

#: The project's replica settings (their ALIASES): a test overriding REPLICAS keeps them.
REPLICA_SETTINGS = dict(settings.CONNECTION_POOLS["REPLICAS"])


def fetch(url: str) -> tuple[int, Any]:
    """``(status, json)``; a refused/reset connection counts as status -1 (a lost read)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return -1, repr(exc)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def replica_serves_every_read(url: str, in_a_row: int = 12) -> bool:
    for _ in range(in_a_row):
        status, body = fetch(url + "/whoami/")
        if status != 200 or body["alias"] != REPLICA or body["in_recovery"] is not True:
            return False
    return True


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    with fresh_routing_state():
        yield


def test_stopping_the_replica_mid_load_loses_no_read(gunicorn_server) -> None:
    wait_for_replica()
    results: list[tuple[str, int, Any]] = []
    phase = ["up"]
    stop = threading.Event()

    def load(url: str) -> None:
        while not stop.is_set():
            current = phase[0]
            status, body = fetch(url + "/items/")
            results.append((current, status, body))

    with gunicorn_server(workers=2, threads=4, env=FAST_RECOVERY) as server, \
            override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "COOLDOWN_SECONDS": 1.0}}):
        wait_until(lambda: replica_serves_every_read(server.url), 20, "reads on the replica")
        threads = [threading.Thread(target=load, args=(server.url,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(results) >= 20, 20, "load before the stop")
            phase[0] = "stopping"
            services.stop("replica")
            try:
                phase[0] = "down"
                down_before = len(results)
                # The in-process view of the same event: this read is retried on the primary.
                fallbacks = replicas.reading(REPLICA).fallbacks
                response = Client().get("/items/")
                assert response.status_code == 200
                assert response.json()["db"] == "default"
                status = replicas.replica_status()[REPLICA]
                assert status["in_rotation"] is False
                assert status["reason"] in ("cooling_down", "down")
                assert status["last_error"]
                assert replicas.reading(REPLICA).fallbacks > fallbacks
                # Long enough for every worker to meet the outage, by a failed read or its sampler.
                stopped_at = time.monotonic()
                wait_until(lambda: len(results) - down_before >= 40 and time.monotonic() - stopped_at > 2.5, 30,
                           "load while the replica is down")
            finally:
                services.start("replica")
            phase[0] = "back"
            wait_until(lambda: replica_serves_every_read(server.url), 30, "the replica back in rotation")
            # In this process too, once a sample after the cool-down succeeds.
            time.sleep(1.1)
            replicas.sample(REPLICA)
            assert replicas.replica_status()[REPLICA]["in_rotation"] is True
            assert replicas.reading(REPLICA).out_of_rotation_seconds > 0
        finally:
            stop.set()
            for t in threads:
                t.join(60)

    lost = [(p, s, b) for p, s, b in results if s != 200]
    assert not lost, f"{len(lost)} of {len(results)} reads failed, e.g. {lost[:3]}"
    during = [body["db"] for p, _, body in results if p == "down"]
    assert len(during) >= 40
    assert "default" in during  # the outage really happened, and reads moved to the primary
