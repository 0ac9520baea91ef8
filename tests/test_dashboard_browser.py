"""The dashboard in a real headless Chromium against a real gunicorn with several workers."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from connection_pools.insight import history
from tests.support.server import ROOT, GunicornServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
USERNAME, PASSWORD = "dash-staff", "dash-staff-password-1"
DASHBOARD = "/admin/connection-pools/"


def wait_until(predicate: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll ``predicate`` until it returns something truthy (no timing assertion: only a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[GunicornServer]:
    """A 3-worker gunicorn and a staff user (committed, so the workers see it)."""
    with django_db_blocker.unblock():
        user = get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    history.clear()  # the charts show this run only
    try:
        env = {"CONNECTION_POOLS_HISTORY_INTERVAL": "1"}
        with GunicornServer(workers=3, threads=4, env=env) as gunicorn:
            yield gunicorn
    finally:
        with django_db_blocker.unblock():
            user.delete()


@pytest.fixture(scope="module")
def browser(server) -> Iterator[Any]:
    # After `server`: Playwright's sync API runs an event loop, and Django refuses ORM calls
    # (creating the user) while one runs in the thread.
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(server, browser) -> Iterator[Any]:
    """A logged-in staff page on the dashboard, collecting console errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: page.errors.append(f"{msg.text} at {msg.location.get('url')}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("response", lambda r: page.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/admin/login/?next={DASHBOARD}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}{DASHBOARD}")
    yield page
    context.close()


def hit(server: GunicornServer, path: str, times: int) -> None:
    for _ in range(times):
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            assert response.status == 200


def card_figures(page: Any) -> dict[str, dict[str, str]]:
    """Every card's figures as shown: {pool: {field: text}}."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.cp-card')].map(card => [
            card.dataset.pool,
            Object.fromEntries([...card.querySelectorAll('dd[data-field]')]
                .map(dd => [dd.dataset.field, dd.textContent]))
        ]))"""
    )


def refresh_count(page: Any) -> int:
    return int(page.get_attribute("#cp-updated", "data-count") or 0)


def test_dashboard_end_to_end(page, server):
    hit(server, "/one-query/", 30)
    captured: list[Any] = []
    page.on("response", lambda r: captured.append(r) if r.url.endswith("/connection-pools/stats") else None)

    # The page refreshes by itself, without a reload (our marker survives).
    page.evaluate("window.__not_reloaded = true")
    start = refresh_count(page)
    wait_until(lambda: refresh_count(page) >= start + 2, 20, "two automatic refreshes")
    assert page.evaluate("window.__not_reloaded") is True
    assert page.text_content("#cp-updated") not in ("", "never")

    # Every pool of the API has a card, and the card shows the numbers of the response it rendered.
    count = refresh_count(page)
    wait_until(lambda: refresh_count(page) > count, 15, "one more refresh")
    body = json.loads(captured[-1].body())
    shown = card_figures(page)
    api_pools = {p["pool"]: p for p in (*body["database_pools"].values(), *body["redis_pools"].values())}
    api_pools.update({f"pgbouncer {key}": {**p, "kind": "pgbouncer"} for key, p in body["pgbouncer_pools"].items()})
    assert api_pools and set(shown) == set(api_pools)
    for name, pool in api_pools.items():
        figures = shown[name]
        if pool["kind"] == "pgbouncer":
            for field in ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "total_xact_count"):
                assert figures[field] == str(pool[field]), (name, field)
        elif pool["kind"] == "redis":
            assert figures["in_use_connections"] == str(pool["in_use_connections"])
            assert figures["available_connections"] == str(pool["available_connections"])
        else:
            for field in ("active_connections", "available_connections", "waiting", "peak_connections",
                          "connection_errors", "timeouts"):
                assert figures[field] == str(pool[field]), (name, field)
    assert body["processes"]["count"] >= 3

    # The published aggregate catches up with our traffic, then a chart is drawn from the history.
    wait_until(lambda: int(card_figures(page)["db_default"]["checkouts"]) >= 30, 30, "checkouts >= 30 on the card")
    wait_until(lambda: page.locator("#cp-charts .cp-chart-row[data-pool=db_default] polyline").count() >= 2, 30,
               "active/size chart of db_default")
    points = page.get_attribute("#cp-charts .cp-chart-row[data-pool=db_default] polyline.cp-s-active", "points")
    assert points and len(points.split()) >= 2

    # The Server section: the census each server process's job keeps, as GET server answers it.
    servers: list[Any] = []
    page.on("response", lambda r: servers.append(r) if "/connection-pools/server" in r.url else None)
    wait_until(lambda: page.locator("#cp-server [data-server=server_default] [data-field=connections]").count(), 30,
               "the census of the primary on the dashboard")
    count = refresh_count(page)
    wait_until(lambda: refresh_count(page) > count and servers, 15, "one more refresh with the server tier")
    census = json.loads(servers[-1].body())["servers"]["server_default"]
    block = "#cp-server [data-server=server_default] "
    assert page.text_content(block + "[data-field=connections]") == str(census["connections"])
    assert page.text_content(block + "[data-field=headroom]") == str(census["headroom"])
    owners = page.eval_on_selector_all(block + "tr[data-owner]", "rows => rows.map(r => r.dataset.owner)")
    assert owners == [o["label"] for o in census["owners"] if o["kind"] != "background"]
    assert page.locator("#cp-server [data-pgbouncer=pgbouncer_1]").count() == 1

    ARTIFACTS.mkdir(exist_ok=True)
    # The artefact only: a test run must not change tracked files. The README's
    # docs/dashboard.png is refreshed by copying this file by hand.
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Reset (confirm dialog accepted): a POST with CSRF, then the counters drop.
    before = int(card_figures(page)["db_default"]["checkouts"])
    page.click("#cp-reset")
    page.wait_for_url(f"{server.url}{DASHBOARD}")
    assert "Statistics reset" in page.text_content(".messagelist")
    wait_until(lambda: int(card_figures(page).get("db_default", {}).get("checkouts", before)) < before, 30,
               "checkouts drop after reset")

    assert page.errors == []


def test_dark_theme_uses_the_admin_variables(browser, server, page):
    light = page.evaluate("getComputedStyle(document.querySelector('.cp-card')).backgroundColor")
    page.emulate_media(color_scheme="dark")
    page.evaluate("localStorage.setItem('theme', 'auto')")
    page.reload()
    page.wait_for_selector(".cp-card")
    dark = page.evaluate("getComputedStyle(document.querySelector('.cp-card')).backgroundColor")
    assert light != dark
    page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)
    assert page.errors == []


def test_anonymous_browser_is_redirected_to_login(browser, server):
    context = browser.new_context()
    anonymous = context.new_page()
    anonymous.goto(f"{server.url}{DASHBOARD}")
    assert anonymous.url.startswith(f"{server.url}/admin/login/")
    assert "next=" in anonymous.url
    assert anonymous.locator("#id_username").count() == 1
    context.close()
