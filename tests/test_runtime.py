"""Process state lives in one runtime with one reset(); a forked child starts it afresh by itself."""

from __future__ import annotations

import json
import os

import pytest

from connection_pools.cluster import publish
from connection_pools.cluster.store import store
from connection_pools.core.reports import HealthReport, Recommendation
from connection_pools.core.runtime import runtime
from connection_pools.insight import alerts, health

pytestmark = pytest.mark.django_db

HIGH = Recommendation(pool="db_default", rule="exhaustion", issue="Pool exhausted", suggestion="more", severity="high")


def state() -> dict[str, object]:
    return {"publishing": publish.is_publishing(), "health": health._cache.report is not None,
            "alerts": sorted(alerts._announced.active), "breaker": store._down_until > 0}


def dirty() -> None:
    publish.publish()
    health.remember(HealthReport(status="healthy", checked_at=1.0))
    alerts.notify([HIGH])
    store._down_until = 1e12


def test_every_state_holder_is_registered() -> None:
    assert set(runtime.names()) >= {"sources", "cluster.store", "cluster.publish", "insight.health", "insight.alerts",
                                    "replicas", "backends.persistent", "conf.aliases", "core.jobs"}


def test_one_reset_resets_them_all() -> None:
    dirty()
    assert state() == {"publishing": True, "health": True, "alerts": [HIGH.finding], "breaker": True}
    runtime.reset()
    assert state() == {"publishing": False, "health": False, "alerts": [], "breaker": False}


def test_a_forked_child_starts_afresh() -> None:
    dirty()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without pytest's teardown
        try:
            os.write(write_fd, json.dumps(state()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        child = json.loads(pipe.read())
    assert child == {"publishing": False, "health": False, "alerts": [], "breaker": False}
    assert state()["publishing"] is True  # the parent is untouched
    runtime.reset()
