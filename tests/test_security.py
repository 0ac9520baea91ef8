"""Security: who may call the admin API and the dashboard, CSRF on session writes,
no secret in any response, log line or metric label, and the API fuzzed from its
own OpenAPI schema (schemathesis) without a single 500.

The access matrix walks the URL patterns actually mounted under the two admin
prefixes, so an endpoint added later is covered without editing this file.
"""

from __future__ import annotations

import http.cookiejar
import re
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from psycopg import sql
from rest_framework.authtoken.models import Token

from tests.support import server as server_support
from tests.support.replication import wait_for_replicas
from tests.support.server import GunicornServer, free_port
from tests.support.traffic import request

pytestmark = pytest.mark.django_db(databases=["default", "replica1"], transaction=True)

API_PREFIX = "api/v1/admin/connection-pools/"
DASHBOARD_PREFIX = "admin/connection-pools/"
GUIDE_ENDPOINTS = ("stats", "health", "optimize", "config", "recommendations", "reset-stats")
PASSWORD = "correct-horse-battery-staple"


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("sec-staff", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def member():
    """A logged-in-able user who is not staff."""
    return get_user_model().objects.create_user("sec-member", password=PASSWORD)


def admin_routes() -> list[tuple[str, str]]:
    """``(kind, path)`` for every URL pattern mounted under the admin API ("api") and
    the dashboard ("dashboard"); path converters get sample values, and the
    format-suffix regex duplicates are left out."""
    routes: list[tuple[str, str]] = []

    def sample(match: re.Match[str]) -> str:
        if match.group(2) == "name":
            return "swagger-ui.css"  # a docs asset
        return "1" if match.group(1) == "int" else "db_default"

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            if not isinstance(pattern.pattern, RoutePattern):
                continue  # regex duplicates such as "stats.json", and the admin's own regex URLs
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith((API_PREFIX, DASHBOARD_PREFIX)):
                kind = "api" if route.startswith(API_PREFIX) else "dashboard"
                routes.append((kind, "/" + re.sub(r"<(?:(\w+):)?(\w+)>", sample, route)))

    # From the root: connection_pools.urls mounts both under one include("").
    walk(get_resolver().url_patterns, "")
    return sorted(set(routes))


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/admin/login/" in response["Location"]


# --- who may call what ---------------------------------------------------------------


def test_every_admin_endpoint_and_the_dashboard_refuse_anonymous_and_non_staff(staff, member) -> None:
    routes = admin_routes()
    api_paths = {path for kind, path in routes if kind == "api"}
    # The guide's endpoints and the dashboard are really mounted (else this test proves nothing).
    assert {f"/{API_PREFIX}{name}" for name in GUIDE_ENDPOINTS} <= {p.rstrip("/") for p in api_paths}, api_paths
    assert ("dashboard", f"/{DASHBOARD_PREFIX}") in routes

    admin = Client()
    admin.force_login(staff)
    anonymous = Client()
    non_staff = Client()
    non_staff.force_login(member)
    member_token = Token.objects.create(user=member).key
    non_staff_token = Client(HTTP_AUTHORIZATION=f"Token {member_token}")
    wait_for_replicas()  # sessions and tokens are read through the replica router
    served = 0
    for kind, path in routes:
        # Positive control: staff get the page (or 405 for a POST-only endpoint).
        staff_get = admin.get(path)
        assert staff_get.status_code in (200, 405), (path, staff_get.status_code)
        served += staff_get.status_code == 200
        for method in ("get", "post"):
            for who, client in (("anonymous", anonymous), ("non-staff", non_staff),
                                ("non-staff token", non_staff_token)):
                response = getattr(client, method)(path)
                where = f"{method.upper()} {path} as {who}: {response.status_code}"
                if kind == "api":
                    assert response.status_code in (401, 403), where
                    if response.get("Content-Type", "").startswith("application/json"):
                        assert "detail" in response.json(), where
                    else:  # only the HTML docs page may answer in HTML
                        assert "html" in staff_get.get("Content-Type", ""), where
                else:
                    allowed = is_login_redirect(response) or response.status_code in (403, 405)
                    assert allowed, where
                    assert b"database_pools" not in response.content, where
    assert served >= len(GUIDE_ENDPOINTS)


SESSION_WRITES = (f"/{API_PREFIX}reset-stats", f"/{API_PREFIX}optimize",
                  f"/{DASHBOARD_PREFIX}reset/", f"/{DASHBOARD_PREFIX}apply/")


def test_session_writes_need_csrf_token_writes_do_not(staff) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    token = Token.objects.create(user=staff).key
    wait_for_replicas()  # sessions and tokens are read through the replica router
    for path in SESSION_WRITES:
        response = client.post(path)
        assert response.status_code == 403 and b"CSRF" in response.content, (path, response.status_code)
    # With the token from a page the staff user loaded, the same writes go through.
    assert client.get(f"/{DASHBOARD_PREFIX}").status_code == 200
    csrf = client.cookies["csrftoken"].value
    for path in SESSION_WRITES:
        response = client.post(path, {"csrfmiddlewaretoken": csrf}, HTTP_X_CSRFTOKEN=csrf)
        assert b"CSRF" not in response.content and response.status_code < 500, (path, response.status_code)
    reset = client.post(f"/{API_PREFIX}reset-stats", HTTP_X_CSRFTOKEN=csrf)
    assert reset.status_code == 200, reset.content[:300]
    # Token authentication carries no ambient credential, so it needs no CSRF token.
    by_token = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    assert by_token.post(f"/{API_PREFIX}reset-stats").status_code == 200


# --- no secret anywhere ----------------------------------------------------------------


@pytest.fixture
def secret_credentials() -> Iterator[dict[str, Any]]:
    """A PostgreSQL role and a Redis ACL user with distinctive passwords (so a leak is
    unmistakable), removed afterwards. Yields the server env that uses them."""
    db_password = f"dbpw{secrets.token_hex(8)}"
    redis_password = f"rdpw{secrets.token_hex(8)}"
    secret_key = f"sk{secrets.token_hex(16)}"
    role = "cp_e2e_secret"
    urls = server_support.database_urls_for_tests()
    primary = urllib.parse.urlsplit(urls["DATABASE_URL"])
    replica = urllib.parse.urlsplit(urls["DATABASE_REPLICA_URLS"].split(",")[0])
    with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(db_password)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(primary.username), sql.Identifier(role)))

    def with_user(parts: urllib.parse.SplitResult, port: int | None = None) -> str:
        return parts._replace(netloc=f"{role}:{db_password}@{parts.hostname}:{port or parts.port}").geturl()

    replica_url = with_user(replica)
    deadline = time.monotonic() + 30  # the role reaches the replica by streaming replication
    while True:
        try:
            psycopg.connect(replica_url, connect_timeout=5).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    from django.conf import settings

    redis_url = urllib.parse.urlsplit(settings.CONNECTION_POOLS["REDIS"]["main"]["url"])
    cache_url = urllib.parse.urlsplit(settings.CONNECTION_POOLS["REDIS"]["cache"]["url"])
    admin = redis.Redis.from_url(redis_url.geturl())
    admin.execute_command("ACL", "SETUSER", "cp-e2e", "reset", "on", f">{redis_password}", "~*", "&*", "+@all")
    netloc = f"cp-e2e:{redis_password}@{redis_url.hostname}:{redis_url.port}"
    env = {
        "SECRET_KEY": secret_key,
        "DATABASE_URL": with_user(primary),
        # A second replica nobody listens on: its connection errors get logged.
        "DATABASE_REPLICA_URLS": f"{replica_url},{with_user(replica, free_port())}",
        "REDIS_URL": redis_url._replace(netloc=netloc).geturl(),
        "REDIS_CACHE_URL": cache_url._replace(netloc=netloc).geturl(),
        "CONNECTION_POOLS_LOG_LEVEL": "DEBUG",
    }
    try:
        yield {"env": env, "role": role, "redis": admin,
               "secrets": {"db": db_password, "redis": redis_password, "secret_key": secret_key}}
    finally:
        admin.execute_command("ACL", "DELUSER", "cp-e2e")
        admin.close()


def login_session(base_url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """Log in through the real admin login form; returns an opener holding the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/admin/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf,
                                   "next": f"/{DASHBOARD_PREFIX}"}).encode()
    landed = opener.open(urllib.request.Request(f"{base_url}/admin/login/", data=form,
                                                headers={"Referer": f"{base_url}/admin/login/"}), timeout=30)
    assert landed.url.endswith(f"/{DASHBOARD_PREFIX}"), landed.url
    return opener


@pytest.mark.slow
def test_no_secret_in_any_response_log_line_or_metric_label(staff, secret_credentials) -> None:
    token = Token.objects.create(user=staff).key
    wait_for_replicas()
    auth = {"Authorization": f"Token {token}"}
    hidden = secret_credentials["secrets"]
    seen: list[tuple[str, str]] = []  # (what, text)

    def record(what: str, status: int | None, headers: dict[str, str], body: bytes) -> None:
        assert status is not None, what
        seen.append((what, f"{status} {headers} {body.decode(errors='replace')}"))

    server = GunicornServer(workers=2, threads=4, env=secret_credentials["env"],
                            extra_args=["--log-level", "debug", "--access-logfile", "-", "--error-logfile", "-"])
    with server:
        pages = ["/one-query/", "/items/", "/whoami/", "/whoami/", "/whoami/", "/cached-count/", "/nope/",
                 "/items/?limit=x", "/slow/?seconds=x", "/metrics"]
        for path in pages:
            record(path, *request("GET", server.url + path, timeout=30)[:3])
        record("POST /items/", *request("POST", server.url + "/items/", data=b'{"name": "x"}',
                                         headers={"Content-Type": "application/json"}, timeout=30)[:3])
        record("bad login", *request("POST", server.url + "/admin/login/", data=b"username=x&password=y",
                                      timeout=30)[:3])
        api_paths = [path for kind, path in admin_routes() if kind == "api"]
        for attempt in range(2):  # the second pass sees the published cross-process snapshots
            for path in api_paths:
                record(path, *request("GET", server.url + path, headers=auth, timeout=30)[:3])
                record(f"{path}?x", *request("GET", server.url + path + "?pool=nope&format=json&limit=-1",
                                             headers=auth, timeout=30)[:3])
            for body in (b"", b'{"pool": "nope"}', b'{"pool": "db_default"}', b"not json"):
                record(f"POST reset-stats {body!r}", *request(
                    "POST", f"{server.url}/{API_PREFIX}reset-stats", data=body,
                    headers={**auth, "Content-Type": "application/json"}, timeout=30)[:3])
            if attempt == 0:
                time.sleep(6)  # one publish interval
        opener = login_session(server.url, staff.username, PASSWORD)
        with opener.open(f"{server.url}/{DASHBOARD_PREFIX}", timeout=30) as page:
            record("dashboard", page.status, dict(page.headers), page.read())
        record("metrics again", *request("GET", server.url + "/metrics", timeout=30)[:3])
        # The server really uses the secret credentials (else a clean log would prove nothing).
        with psycopg.connect(server_support.database_urls_for_tests()["DATABASE_URL"], autocommit=True) as conn:
            users = {row[0] for row in conn.execute("SELECT usename FROM pg_stat_activity").fetchall()}
        assert secret_credentials["role"] in users
        clients = secret_credentials["redis"].execute_command("CLIENT", "LIST")
        assert "user=cp-e2e" in (clients.decode() if isinstance(clients, bytes) else str(clients))
    log = server.log_path.read_text(errors="replace")
    assert "GET /one-query/" in log  # the access log was captured
    config = next(text for what, text in seen if what.rstrip("/").endswith("/config"))
    assert "***" in config  # passwords are shown masked, not left out of the URLs silently
    for name, value in hidden.items():
        leaks = [what for what, text in seen if value in text or urllib.parse.quote(value) in text]
        assert not leaks, f"{name} leaked in responses: {leaks}"
        assert value not in log, f"{name} leaked in the log {server.log_path}"


# --- fuzzing ----------------------------------------------------------------------------------


def fuzz(operation, mode, base_url: str, headers: dict[str, str], problems: list[str]) -> int:
    """Send up to 10 generated requests of one kind to one operation; note every 5xx.
    Returns how many requests were sent."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase

    sent = 0

    @hypothesis.settings(max_examples=10, deadline=None, database=None, derandomize=True,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def call(case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        if response.status_code >= 500:
            problems.append(f"{operation.method.upper()} {operation.path} query={case.query} body={case.body!r}"
                            f" -> {response.status_code} {response.text[:200]}")

    try:
        call()
    except hypothesis.errors.Unsatisfiable:
        # An operation without inputs has no invalid request to make.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise
    return sent


@pytest.mark.slow
def test_api_fuzzed_from_its_openapi_schema_never_answers_500(staff) -> None:
    import schemathesis

    token = Token.objects.create(user=staff).key
    wait_for_replicas()
    auth = {"Authorization": f"Token {token}"}
    schema_paths = [path for kind, path in admin_routes() if kind == "api" and "schema" in path]
    assert schema_paths, "no OpenAPI schema URL under the admin API"
    problems: list[str] = []
    with GunicornServer(workers=2, threads=4) as server:
        anonymous_status = request("GET", server.url + schema_paths[0] + "?format=json", timeout=30)[0]
        assert anonymous_status in (401, 403)  # the schema itself is admin-only
        schema = schemathesis.openapi.from_url(server.url + schema_paths[0] + "?format=json", headers=auth,
                                               timeout=30)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path.rstrip("/").rsplit("/", 1)[-1] for op in operations} >= set(GUIDE_ENDPOINTS)
        sent = sum(fuzz(operation, mode, server.url, auth, problems) for operation in operations
                   for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE))
    assert sent >= len(operations)
    assert not problems, "\n".join(problems[:10])
