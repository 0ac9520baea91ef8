"""Every admin API endpoint: anonymous -> 401, non-staff -> 403, staff -> allowed, for session and token
authentication; JSON bodies; CSRF on session writes; 400 for bad parameters."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from connection_pools.cluster.store import store
from tests.support.admin_api import API, make_user, unique_prefix

pytestmark = pytest.mark.django_db

GETS = ["stats", "health", "optimize", "config", "recommendations", "schema/", "docs/", "redoc/"]
POSTS = ["reset-stats", "optimize"]
#: What a staff user gets (POST optimize is refused while TUNER.ALLOW_APPLY is off).
STAFF_STATUS = {("POST", "optimize"): 403}


@pytest.fixture(autouse=True)
def isolated(settings):
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("auth")}
    store.forget_failure()
    yield
    store.clear()


def assert_json_detail(response) -> None:
    assert "json" in response["Content-Type"], response["Content-Type"]
    assert json.loads(response.content)["detail"]


def call(client: Client, method: str, endpoint: str, **extra):
    return getattr(client, method.lower())(API + endpoint, **extra)


@pytest.mark.parametrize(("method", "endpoint"), [("GET", e) for e in GETS] + [("POST", e) for e in POSTS])
def test_auth_matrix(method: str, endpoint: str) -> None:
    staff, staff_token = make_user(staff=True)
    user, user_token = make_user(staff=False)

    anonymous = call(Client(), method, endpoint)
    assert anonymous.status_code == 401, anonymous.content
    assert_json_detail(anonymous)

    session_user = Client()
    session_user.force_login(user)
    for response in (call(session_user, method, endpoint),
                     call(Client(), method, endpoint, HTTP_AUTHORIZATION=f"Token {user_token}")):
        assert response.status_code == 403, response.content
        assert_json_detail(response)

    bad_token = call(Client(), method, endpoint, HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad_token.status_code == 401

    expected = STAFF_STATUS.get((method, endpoint), 200)
    session_staff = Client()
    session_staff.force_login(staff)
    by_session = call(session_staff, method, endpoint)
    by_token = call(Client(), method, endpoint, HTTP_AUTHORIZATION=f"Token {staff_token}")
    assert (by_session.status_code, by_token.status_code) == (expected, expected), (by_session.content,
                                                                                    by_token.content)


def test_session_writes_need_the_csrf_token_and_token_writes_do_not() -> None:
    staff, token = make_user(staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    refused = client.post(API + "reset-stats")
    assert refused.status_code == 403 and b"CSRF" in refused.content
    client.get("/admin/")  # the admin index (logout form) sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    assert client.post(API + "reset-stats", HTTP_X_CSRFTOKEN=csrf).status_code == 200
    assert Client(enforce_csrf_checks=True).post(API + "reset-stats",
                                                 HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_bad_parameters_get_400_with_a_message() -> None:
    _, token = make_user(staff=True)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    bad = client.get(API + "stats", {"per_process": "perhaps"})
    assert bad.status_code == 400 and "per_process" in bad.json()["detail"]
    bad_pool = client.post(API + "reset-stats", {"pool": ["a", "b"]}, content_type="application/json")
    assert bad_pool.status_code == 400 and "pool" in bad_pool.json()["detail"]
    unknown = client.post(API + "reset-stats", {"pool": "db_nope"}, content_type="application/json")
    assert unknown.status_code == 404 and "db_nope" in unknown.json()["detail"]


def test_optimize_post_applies_only_when_allowed(settings) -> None:
    _, token = make_user(staff=True)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    refused = client.post(API + "optimize")
    assert refused.status_code == 403 and "ALLOW_APPLY" in refused.json()["detail"]
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS,
                                 "TUNER": {**settings.CONNECTION_POOLS["TUNER"], "ALLOW_APPLY": True}}
    allowed = client.post(API + "optimize")
    assert allowed.status_code == 200
    assert allowed.json()["performed"] == []  # an idle test system needs no resize


def test_docs_pages_use_local_assets_only() -> None:
    import re

    staff, _ = make_user(staff=True)
    client = Client()
    client.force_login(staff)
    for page, expected in (("docs/", 3), ("redoc/", 1)):
        html = client.get(API + page).content.decode()
        assert "cdn" not in html.lower() and "https://" not in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert len(assets) == expected, assets
        for url in assets:
            # Served by the API itself from the installed sidecar: no static files, no CDN.
            assert url.startswith(API + "docs/assets/"), url
            response = client.get(url)
            assert response.status_code == 200, url
            body = response.content
            assert len(body) > 100 and response["Content-Type"].split(";")[0] in (
                "text/css", "text/javascript", "application/javascript", "image/png"), (url, response["Content-Type"])
            assert Client().get(url).status_code in (401, 403)  # admin-only, like the pages
    for name in ("nope.js", "LICENSE", "swagger-ui-bundle.js.map"):
        missing = client.get(API + "docs/assets/" + name)
        assert missing.status_code == 404 and "detail" in missing.json()
    assert client.get(API + "docs/assets/..%2F..%2Fsettings.py").status_code == 404  # no path reaches the disk
    schema = client.get(API + "schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/v1/admin/connection-pools/stats", "/api/v1/admin/connection-pools/health"} <= set(schema["paths"])


def test_without_drf_apps_the_api_still_answers_json_never_a_500(settings) -> None:
    """An adopter's project need not install rest_framework (its browsable API's templates) nor
    rest_framework.authtoken (its Token model): token auth and the HTML renderer step aside."""
    staff, _ = make_user(staff=True)
    apps = [app for app in settings.INSTALLED_APPS if not app.startswith("rest_framework")]
    as_a_browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    try:
        with override_settings(INSTALLED_APPS=apps):
            anonymous = Client().get(API + "stats", HTTP_AUTHORIZATION="Token " + "0" * 40, HTTP_ACCEPT=as_a_browser)
            assert anonymous.status_code == 403 and "detail" in anonymous.json()  # sessions only: 403, not 401
            browser = Client()
            browser.force_login(staff)
            page = browser.get(API + "stats", HTTP_ACCEPT=as_a_browser)
            assert page.status_code == 200 and page["Content-Type"] == "application/json"
    finally:
        # New INSTALLED_APPS run AppConfig.ready() again, which registers every background job: the
        # server-tier job stays off in this test process (conftest.py), and its connection closes.
        from connection_pools.core import jobs
        from connection_pools.insight import server_tier

        jobs.unregister("connection_pools.server_tier")
        server_tier.release()
    # With the apps (the example project): a token is tried, and a browser gets DRF's browsable API.
    assert Client().get(API + "stats", HTTP_AUTHORIZATION="Token " + "0" * 40).status_code == 401
    browser = Client()
    browser.force_login(staff)
    assert browser.get(API + "stats", HTTP_ACCEPT=as_a_browser)["Content-Type"].startswith("text/html")
