"""Dashboard page and history API through Django's test client: auth, rendering, forms, bad input."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

DASHBOARD = "/admin/connection-pools/"
RESET = "/admin/connection-pools/reset/"
APPLY = "/admin/connection-pools/apply/"
HISTORY = "/api/v1/admin/connection-pools/history"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_redis_namespace():
    """Resets and applies in these tests must not reach other processes sharing Redis."""
    config = {**settings.CONNECTION_POOLS, "KEY_PREFIX": f"test-dashboard-{uuid.uuid4().hex[:8]}"}
    with override_settings(CONNECTION_POOLS=config):
        yield


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def plain_client() -> Client:
    user = get_user_model().objects.create_user("plain", password="pw-plain-1")
    client = Client()
    client.force_login(user)
    return client


def _with_tuner(allow_apply: bool) -> dict:
    # A private key prefix and bounds pinned to the current sizes: "apply" runs for real
    # but can change nothing, here or (through the sizing broadcast) in any other process.
    pool = settings.CONNECTION_POOLS["DATABASE_POOL"]
    tuner = {**settings.CONNECTION_POOLS.get("TUNER", {}), "ALLOW_APPLY": allow_apply,
             "MIN_POOL_SIZE": pool["pool_size"], "MAX_POOL_SIZE": pool["pool_size"],
             "MAX_OVERFLOW": pool["max_overflow"]}
    return {**settings.CONNECTION_POOLS, "KEY_PREFIX": f"test-apply-{uuid.uuid4().hex[:8]}", "TUNER": tuner}


def test_anonymous_is_sent_to_admin_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={DASHBOARD}"


def test_non_staff_gets_403(plain_client):
    assert plain_client.get(DASHBOARD).status_code == 403
    assert plain_client.post(RESET).status_code == 403


def test_staff_sees_the_page_in_the_admin_look(staff_client):
    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="header"' in html and "Django administration" in html  # admin/base_site.html
    assert "connection_pools/dashboard.js" in html and "connection_pools/dashboard.css" in html
    assert "Reset statistics" in html and "csrfmiddlewaretoken" in html
    assert "//cdn" not in html and "https://" not in html  # everything served locally
    page_settings = json.loads(html.split('id="cp-settings" type="application/json">')[1].split("</script>")[0])
    assert page_settings["api_base"] == "/api/v1/admin/connection-pools/"
    assert page_settings["refresh_seconds"] > 0
    initial = json.loads(html.split('id="cp-initial" type="application/json">')[1].split("</script>")[0])
    assert set(initial) == {"stats", "config"}
    assert "database_pools" in initial["stats"]


def test_admin_index_links_to_the_dashboard(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in html


def test_apply_button_only_when_the_tuner_allows_it(staff_client):
    with override_settings(CONNECTION_POOLS=_with_tuner(False)):
        assert "Apply suggestions" not in staff_client.get(DASHBOARD).content.decode()
        assert staff_client.post(APPLY).status_code == 403
    with override_settings(CONNECTION_POOLS=_with_tuner(True)):
        assert "Apply suggestions" in staff_client.get(DASHBOARD).content.decode()
        response = staff_client.post(APPLY, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain[-1][0] == DASHBOARD
        assert "Nothing to apply" in response.content.decode()


def test_reset_needs_post_and_csrf():
    user = get_user_model().objects.create_user("csrf", password="pw-csrf-1", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(RESET).status_code == 405
    assert client.post(RESET).status_code == 403  # no CSRF token
    page = client.get(DASHBOARD)
    token = page.context["csrf_token"]
    response = client.post(RESET, {"csrfmiddlewaretoken": str(token)}, follow=True)
    assert response.status_code == 200
    assert "Statistics reset" in response.content.decode()


def test_reset_of_an_unknown_pool_says_so(staff_client):
    response = staff_client.post(RESET, {"pool": "db_nope"}, follow=True)
    assert "Unknown pool" in response.content.decode()


def test_history_api_is_admin_only(client, plain_client):
    assert client.get(HISTORY).status_code in (401, 403)
    assert plain_client.get(HISTORY).status_code == 403


@pytest.mark.parametrize("query", ["minutes=abc", "minutes=0", "minutes=-5", "minutes=nan", "minutes=100000",
                                   "pool=db_nope", "minutes=inf"])
def test_history_api_rejects_bad_parameters(staff_client, query):
    response = staff_client.get(f"{HISTORY}?{query}")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_history_api_answers_the_documented_shape(staff_client):
    response = staff_client.get(f"{HISTORY}?minutes=5&pool=db_default")
    assert response.status_code == 200
    body = response.json()
    assert body["interval"] > 0
    assert set(body["series"]) == {"db_default"}
