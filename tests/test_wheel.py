"""The package as an adopter gets it: the wheel and sdist build cleanly (``python -m build``, ``twine
check``), and the wheel, installed into a fresh virtualenv with a fresh ``django-admin startproject``
project and exactly the lines of docs/adopting.md, serves the dashboard, every admin API route (the
schema and docs pages included), ``/metrics`` and ``manage.py poolstats`` against the real
PostgreSQL primary + replica and Redis.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import dj_database_url
import psycopg
import pytest
from django.urls import URLPattern

from project import dev_services
from tests.support.adoption import ROOT, FreshProject, blocks, install_arguments

pytestmark = pytest.mark.slow

PASSWORD = f"Adopter-{uuid.uuid4().hex[:12]}"
#: What a build may print that is not a problem: setuptools' notes on byte-compiling in a sandbox.
HARMLESS = re.compile(r"byte-compiling is disabled")


# --- the distributions -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``python -m build`` on a copy of the checkout's files (the build leaves nothing in the checkout)."""
    work = tmp_path_factory.mktemp("build")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    source = work / "source"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = work / "dist"
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "log": result.stdout + result.stderr}


def test_the_build_warns_of_nothing(dists: dict[str, Any]) -> None:
    # setuptools' deprecation of the license table (builds stop after 2027-02-18) and the like.
    warnings = [line for line in dists["log"].splitlines()
                if re.search(r"warn|deprecat", line, re.I) and not HARMLESS.search(line)]
    assert warnings == []


def test_twine_accepts_both_distributions(dists: dict[str, Any]) -> None:
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]),
                             str(dists["sdist"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_carries_its_license_templates_and_static_files(dists: dict[str, Any]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = wheel.read(metadata_name).decode()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    for packaged in ("connection_pools/py.typed", "connection_pools/templates/connection_pools/dashboard.html",
                     "connection_pools/templates/connection_pools/swagger_ui.html",
                     "connection_pools/templates/connection_pools/redoc.html",
                     "connection_pools/static/connection_pools/dashboard.js"):
        assert packaged in names
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    required = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]
    assert len(required) == len(declared)
    assert not any(name.startswith(("project/", "tests/", "bench/")) for name in names)


# --- a fresh project with the documented lines ---------------------------------------------------------
def servers() -> dict[str, str]:
    """The test servers, as the adopter's environment names them (docs/adopting.md's settings)."""
    environ = dev_services.environ()
    primary = dj_database_url.parse(environ["DATABASE_URL"])
    replica = dj_database_url.parse(environ["DATABASE_REPLICA_URLS"].split(",")[0])
    return {"PGHOST": str(primary["HOST"]), "PGPORT": str(primary["PORT"]), "PGUSER": str(primary["USER"]),
            "PGPASSWORD": str(primary["PASSWORD"]), "PGREPLICAHOST": str(replica["HOST"]),
            "PGREPLICAPORT": str(replica["PORT"]), "REDIS_CACHE_URL": environ["REDIS_CACHE_URL"],
            "admin_database": environ["DATABASE_URL"]}


@pytest.fixture(scope="module")
def project(dists: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshProject]:
    """The wheel in a new virtualenv, ``startproject adopter``, the doc's blocks, a database of its own."""
    doc = blocks()
    assert set(doc) == {"install", "settings", "replicas", "optional", "urls"}
    work = tmp_path_factory.mktemp("adopter")
    venv = work / "venv"
    found = servers()
    name = f"adopter_{uuid.uuid4().hex[:10]}"
    # Nothing of this checkout's environment (DJANGO_SETTINGS_MODULE, PYTHONPATH...) reaches the adopter;
    # HOME and PIP_* stay: pip's cache and configuration, as the machine's own pip uses them.
    pip_settings = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(work)), "LANG": "C.UTF-8",
           **pip_settings, "PGDATABASE": name,
           **{key: value for key, value in found.items() if key != "admin_database"}}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, *install_arguments(doc["install"], dists["wheel"])], capture_output=True,
                               text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    (work / "site").mkdir()
    subprocess.run([str(venv / "bin" / "django-admin"), "startproject", "adopter", str(work / "site")],
                   check=True, timeout=60, cwd=work, env=env)
    site = FreshProject(venv, work / "site", env)
    settings_py = site.package / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\n" + doc["settings"] + "\n" + doc["replicas"] + "\n"
                           + doc["optional"])
    (site.package / "urls.py").write_text(doc["urls"])

    with psycopg.connect(found["admin_database"], autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        site.manage("migrate", "--noinput")
        site.env["DJANGO_SUPERUSER_PASSWORD"] = PASSWORD
        site.manage("createsuperuser", "--noinput", "--username", "adopter", "--email", "adopter@example.com")
        yield site
    finally:
        site.stop()
        with psycopg.connect(found["admin_database"], autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Browser:
    """A staff user's session (cookies, CSRF), and the token the API also takes."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.token: str | None = None

    def request(self, path: str, *, method: str = "GET", data: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, session: bool = True) -> tuple[int, dict[str, str], bytes]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        opener = self.opener if session else urllib.request.build_opener()
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken") or ""

    def log_in(self, deadline: float) -> None:
        while True:
            self.request("/admin/login/")
            status, _, _ = self.request("/admin/login/?next=/admin/", method="POST", data={
                "username": "adopter", "password": PASSWORD, "csrfmiddlewaretoken": self.csrf(), "next": "/admin/"})
            if status == 200 and any(cookie.name == "sessionid" for cookie in self.cookies):
                return
            # The router reads users through the replica: it may not have replayed createsuperuser yet.
            assert time.monotonic() < deadline, f"cannot log in as the superuser (status {status})"
            time.sleep(0.5)

    def api(self, route: str, *, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        assert self.token
        return self.request("/api/v1/admin/connection-pools/" + route, method=method, session=False,
                            headers={"Authorization": f"Token {self.token}", "Accept": "application/json"})


def api_routes() -> list[str]:
    """Every route of the admin API (the app's own URL list), with sample values for converters."""
    from connection_pools.api import urls

    routes = []
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        routes.append(str(pattern.pattern).replace("<str:name>", "swagger-ui.css"))
    return routes


def test_a_fresh_project_with_the_documented_lines_serves_everything(project: FreshProject) -> None:
    checked = project.manage("check", "--database", "default")
    assert "connection_pools." not in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    # No drf-spectacular or DRF settings and no extra apps: the 500s came from their absence.
    settings_text = (project.package / "settings.py").read_text()
    assert "SPECTACULAR" not in settings_text and "DEFAULT_SCHEMA_CLASS" not in settings_text
    assert "drf_spectacular" not in settings_text and "django_prometheus" not in settings_text
    token = project.manage("drf_create_token", "adopter").stdout
    browser = Browser(project.serve())
    browser.token = re.search(r"\b([0-9a-f]{40})\b", token).group(1)  # type: ignore[union-attr]
    browser.log_in(time.monotonic() + 30)

    # Traffic on every pool, then the cluster view once this server has published.
    for _ in range(3):
        assert browser.request("/admin/")[0] == 200
    stats = wait_for_published(browser)
    assert set(stats["database_pools"]) == {"default", "replica1"}, stats["database_pools"].keys()
    assert {"main", "cache"} <= set(stats["redis_pools"]), stats["redis_pools"].keys()

    # The dashboard, with its own script and styles (the app's static files).
    status, _, page = browser.request("/admin/connection-pools/")
    assert status == 200 and b"db_default" in page
    statics = re.findall(rb'(?:src|href)="(/static/connection_pools/[^"]+)"', page)
    assert statics, page[:2000]
    for url in statics:
        assert browser.request(url.decode())[0] == 200, url

    # Every admin API route, as staff with a token: JSON (or the docs pages' HTML and their assets).
    for route in api_routes():
        method = "POST" if route == "reset-stats" else "GET"
        status, headers, body = browser.api(route, method=method)
        assert status == 200, (route, status, body[:500])
        if route in ("docs/", "redoc/"):
            session_status, _, html = browser.request("/api/v1/admin/connection-pools/" + route)
            assert session_status == 200 and b"https://" not in html
            for asset in re.findall(rb'(?:src|href)="([^"]+)"', html):
                assert browser.request(asset.decode())[0] == 200, asset
        elif route.startswith("docs/assets/"):
            assert len(body) > 1000
        else:
            assert headers["Content-Type"].startswith(("application/json", "application/vnd.oai.openapi+json")), route
            json.loads(body)
    status, _, schema = browser.api("schema/")
    paths = json.loads(schema)["paths"]
    assert "/api/v1/admin/connection-pools/stats" in paths and "/api/v1/admin/connection-pools/reset-stats" in paths
    status, _, config = browser.api("config")
    shown_config = json.loads(config)["database_pools"]
    assert {alias: entry["password"] for alias, entry in shown_config.items()} == {"default": "***", "replica1": "***"}

    # /metrics: the cluster's numbers, valid for promtool.
    status, _, metrics = browser.request("/metrics", session=False)
    assert status == 200 and b'connection_pool_checkouts_total{alias="default"' in metrics
    linted = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    # poolstats reads what the server publishes.
    shown = project.manage("poolstats", "--json", check=False)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    published = json.loads(shown.stdout)
    assert published["stats"]["processes"]["count"] >= 1 and "default" in published["stats"]["database_pools"]
    assert "Traceback" not in project.log.read_text()


def wait_for_published(browser: Browser, timeout: float = 30) -> dict[str, Any]:
    """The stats once the cluster view holds this server's snapshot (it publishes every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = browser.api("stats")
        assert status == 200, body[:500]
        stats: dict[str, Any] = json.loads(body)
        if stats.get("source") == "cluster" and stats["processes"]["count"] >= 1:
            return stats
        assert time.monotonic() < deadline, f"nothing published in {timeout}s: {stats.get('source')}"
        time.sleep(0.5)
