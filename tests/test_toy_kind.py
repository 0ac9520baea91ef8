"""The proof that a kind of pool is one module and one line: the toy kind of tests/support/toy_source.py,
registered by one line in CONNECTION_POOLS["SOURCES"] (a settings override here; tests/support/toy_settings.py
for the served tests), shows in GET stats and GET health, in /metrics (promtool-clean), in poolstats and as a
dashboard card in Chromium, with no file of the app changed for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from connection_pools import conf
from connection_pools.cluster import publish
from connection_pools.insight import health
from connection_pools.management.pool_report import format_report
from connection_pools.service import connection_pool_service
from tests.support import toy_source
from tests.support.admin_api import API
from tests.support.server import ROOT, GunicornServer
from tests.test_api_schema import staff  # noqa: F401 - a fixture
from tests.test_dashboard_browser import (  # noqa: F401 - browser and page are fixtures
    DASHBOARD,
    PASSWORD,
    USERNAME,
    browser,
    card_figures,
    page,
    refresh_count,
    wait_until,
)
from tests.test_metrics import sample_value

TOY_LINE = "tests.support.toy_source"
TOY = {"pool": "toy_widgets", "kind": "toy", "alias": "widgets"}


def toy_sample(text: str, name: str) -> float | None:
    return sample_value(text, name, **TOY)


# --- in this process, the line added by a settings override ----------------------------------------------
@pytest.fixture
def toy(staff: Client, settings) -> Client:  # noqa: F811 - the fixture
    """The admin API's staff client (an isolated key prefix) with the toy kind's line added."""
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "SOURCES": (*conf.DEFAULTS["SOURCES"], TOY_LINE)}
    return staff


@pytest.mark.django_db(databases=["default", "replica1"])
@pytest.mark.usefixtures("quiet_background")
def test_the_toy_kind_shows_on_every_surface_of_this_process(toy: Client) -> None:
    toy_source.POOL.checkout(0.05)  # one more widget out, after a wait
    try:
        publish.publish()
        health.remember(health.probe())  # the health job's result (the toy's own check among them)
        reading, gauges = toy_source.POOL.counters.read(), toy_source.POOL.gauges()

        stats = toy.get(API + "stats").json()
        entry = stats["toy_pools"]["widgets"]  # its group and key, the names of its descriptor
        assert (entry["pool"], entry["kind"], entry["processes"]) == ("toy_widgets", "toy", 1)
        assert (entry["busy_widgets"], entry["idle_widgets"], entry["widgets"]) == (
            gauges.active, gauges.available, gauges.open) == (2, 1, 3)
        assert (entry["keeps"], entry["limit"]) == (3, 5)
        assert entry["handed_out"] == reading.counters.checkouts and entry["wait_time"]["max"] == 0.05
        assert stats["database_pools"]["default"]["pool"] == "db_default" and "other_pools" not in stats

        checked = toy.get(API + "health").json()["pools"]["toy_widgets"]
        assert checked["kind"] == "toy" and checked["healthy"] is True and set(checked) == {
            "kind", "alias", "healthy", "latency_ms", "error"}

        text = Client().get("/metrics").content.decode()
        assert toy_sample(text, "connection_pool_active_connections") == 2.0
        assert (toy_sample(text, "connection_pool_size"), toy_sample(text, "connection_pool_max_size")) == (3.0, 5.0)
        assert toy_sample(text, "connection_pool_checkouts_total") == reading.counters.checkouts
        assert toy_sample(text, "connection_pool_wait_seconds_count") == reading.wait.count
        assert toy_sample(text, "connection_pool_healthy") == 1.0
        assert toy_sample(text, "connection_pool_fallbacks_total") is None  # not one of its families

        report = format_report(stats, connection_pool_service.cached_health())
        assert "widgets: 2/3 widgets" in report.splitlines()
        assert "  toy_widgets  toy  healthy" in report
        assert f"  busy 2  idle 1  handed out {reading.counters.checkouts}  limit 5" in report.splitlines()
    finally:
        toy_source.POOL.checkin()
        health.forget()


# --- served: gunicorn with the line in its settings module ------------------------------------------------------
@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[GunicornServer]:
    """Two workers on tests/support/toy_settings.py, and the dashboard's staff user."""
    with django_db_blocker.unblock():
        user = get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    try:
        env = {"DJANGO_SETTINGS_MODULE": "tests.support.toy_settings"}
        with GunicornServer(workers=2, threads=4, env=env) as gunicorn:
            gunicorn.spread_traffic(batch=20)
            yield gunicorn
    finally:
        with django_db_blocker.unblock():
            user.delete()


def poolstats(server: GunicornServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "poolstats", *args], cwd=ROOT, env=server.env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def published(server: GunicornServer) -> dict[str, Any]:
    """``poolstats --json`` once both workers publish the toy pool and the health job has checked it."""
    deadline = time.monotonic() + 40
    while True:
        result = poolstats(server, "--json")
        if result.stdout.strip():
            document = json.loads(result.stdout)
            widgets = document["stats"].get("toy_pools", {}).get("widgets")
            if widgets and widgets["processes"] >= 2 and "toy_widgets" in (document["health"] or {}).get("pools", {}):
                return document
        if time.monotonic() > deadline:
            raise AssertionError(f"the toy pool never showed: {result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        time.sleep(1)


@pytest.mark.slow
def test_served_toy_pool_adds_up_over_the_workers_in_stats_metrics_and_poolstats(server, published) -> None:
    widgets = published["stats"]["toy_pools"]["widgets"]
    n = widgets["processes"]
    # Each worker started with two checkouts and one widget out: the cluster shows n times that.
    assert widgets["handed_out"] == widgets["wait_time"]["count"] == toy_source.STARTUP_CHECKOUTS * n
    assert (widgets["busy_widgets"], widgets["keeps"], widgets["limit"]) == (n, 3 * n, 5 * n)
    assert published["health"]["pools"]["toy_widgets"]["healthy"] is True

    # /metrics reads the rollup, which may be a publish interval behind poolstats' direct merge: wait for it
    # to count every worker (the assertions below stay exact).
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(server.url + "/metrics", timeout=15) as response:
            text = response.read().decode()
        if toy_sample(text, "connection_pool_checkouts_total") == 2 * n or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert toy_sample(text, "connection_pool_checkouts_total") == 2 * n
    assert (toy_sample(text, "connection_pool_size"), toy_sample(text, "connection_pool_max_size")) == (3 * n, 5 * n)
    assert toy_sample(text, "connection_pool_healthy") == 1.0

    lines = poolstats(server).stdout.splitlines()
    assert f"widgets: {n}/{3 * n} widgets" in lines
    assert any(line.startswith("  toy_widgets  toy  healthy") for line in lines), lines


@pytest.mark.slow
@pytest.mark.browser
def test_served_toy_pool_has_its_card_on_the_dashboard(server, published, page) -> None:  # noqa: F811 - a fixture
    captured: list[Any] = []
    page.on("response", lambda r: captured.append(r) if r.url.endswith("/connection-pools/stats") else None)
    count = refresh_count(page)
    wait_until(lambda: refresh_count(page) > count and captured, 20, "a refresh of the dashboard")
    widgets = json.loads(captured[-1].body())["toy_pools"]["widgets"]
    figures = card_figures(page)["toy_widgets"]
    assert {field: figures[field] for field in ("busy_widgets", "idle_widgets", "handed_out")} == {
        field: str(widgets[field]) for field in ("busy_widgets", "idle_widgets", "handed_out")}
    card = "#cp-cards [data-pool=toy_widgets] "
    assert page.text_content(card + ".cp-kind span") == "toy"
    assert page.text_content(card + "[data-field=bar_active]") == str(widgets["busy_widgets"])
    assert page.url.endswith(DASHBOARD) and page.errors == []
