"""docker-compose.yml is consistent with the settings (no Docker engine runs here)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

from tests.support.pg import wait_for
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]
pgbouncer_override = yaml.safe_load((ROOT / "docker-compose.pgbouncer.yml").read_text())
asgi_override = yaml.safe_load((ROOT / "docker-compose.asgi.yml").read_text())
# The settings for running through PgBouncer, which connection_pools.env reads.
PGBOUNCER_ENV_NAMES = {"DATABASE_POOLER", "PGBOUNCER_ADMIN_URL"}


def _settings_env_names() -> set[str]:
    """Every env var name the settings read (env.py and project/settings.py)."""
    source = "".join((ROOT / path).read_text() for path in ("connection_pools/conf/env.py", "project/settings.py"))
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))


def test_services_present() -> None:
    assert {"nginx", "web", "db", "db-replica", "pgbouncer", "redis", "prometheus"} <= set(services)


def _gunicorn_port() -> str:
    # No application on the command line: project/gunicorn_conf.py picks it (WSGI or ASGI).
    match = re.search(r"gunicorn --bind 0\.0\.0\.0:(\d+)", services["web"]["command"])
    assert match, services["web"]["command"]
    return match.group(1)


def test_gunicorn_is_reached_only_through_the_buffering_proxy() -> None:
    web, nginx = services["web"], services["nginx"]
    assert "ports" not in web, "gunicorn must not be published: slow clients would reach its threads"
    assert [str(port) for port in web["expose"]] == [_gunicorn_port()]
    assert "web" in nginx["depends_on"]
    assert any(str(port).endswith(":80") for port in nginx["ports"])
    (mount,) = [volume for volume in nginx["volumes"] if "nginx" in volume]
    source, target = mount.split(":")[:2]
    assert target == "/etc/nginx/conf.d/default.conf"
    config = (ROOT / source).read_text()
    assert f"server web:{_gunicorn_port()};" in config
    for directive in ("listen 80;", "proxy_pass http://django;", "proxy_request_buffering on;", "proxy_buffering on;",
                      "client_header_timeout", "client_body_timeout"):
        assert directive in config, directive


def test_gunicorn_uses_the_project_worker_settings_and_process_count() -> None:
    command = services["web"]["command"]
    assert "--config python:project.gunicorn_conf" in command
    assert "--threads" not in command and "--worker-class" not in command and " -k " not in command
    workers = re.search(r"--workers (\d+)", command).group(1)
    assert services["web"]["environment"]["CONNECTION_POOLS_PROCESSES"] == workers


def _gunicorn_choice(environ: dict[str, str]) -> tuple[str, str]:
    """The application and worker class project/gunicorn_conf.py picks under ``environ``."""
    code = "import project.gunicorn_conf as c; print(c.wsgi_app, c.worker_class)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": os.environ["PATH"], **environ},
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    return out[0], out[1]


def test_the_asgi_override_serves_project_asgi_on_uvicorn_workers() -> None:
    web = asgi_override["services"]["web"]
    assert set(web) == {"environment"}, "the override changes only the environment; the command stays"
    assert web["environment"] == {"CONNECTION_POOLS_ASGI": "true"}
    assert "CONNECTION_POOLS_ASGI" in _settings_env_names()
    merged = {k: str(v) for k, v in {**services["web"]["environment"], **web["environment"]}.items()}
    from connection_pools import env

    assert env.connection_pools(merged)["ASGI"] is True
    assert _gunicorn_choice(merged) == ("project.asgi:application", "project.asgi_worker.AsgiWorker")
    plain = {k: str(v) for k, v in services["web"]["environment"].items()}
    assert _gunicorn_choice(plain) == ("project.wsgi:application", "project.gunicorn_worker.BufferedHeadWorker")


def test_web_env_names_are_known_to_the_settings() -> None:
    known = _settings_env_names()
    web_env = services["web"]["environment"]
    unknown = set(web_env) - known
    assert not unknown, f"docker-compose sets env vars the settings never read: {sorted(unknown)}"
    for required in ("DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "REDIS_CACHE_URL", "SECRET_KEY",
                     "DATABASE_POOL_SIZE", "DATABASE_POOL_OVERFLOW", "DATABASE_POOL_TIMEOUT",
                     "DATABASE_POOL_RECYCLE", "REDIS_POOL_SIZE", "REDIS_MAX_CONNECTIONS"):
        assert required in web_env, required


def test_web_urls_point_at_the_compose_services() -> None:
    web_env = services["web"]["environment"]
    assert "@db:5432/" in web_env["DATABASE_URL"]
    assert "@db-replica:5432/" in web_env["DATABASE_REPLICA_URLS"]
    assert web_env["REDIS_URL"].startswith("redis://redis:6379/")
    assert web_env["REDIS_CACHE_URL"].startswith("redis://redis:6379/")


def test_env_values_are_valid_for_the_settings() -> None:
    from connection_pools import env

    web_env = {k: str(v) for k, v in services["web"]["environment"].items()}
    env.databases(web_env)
    env.connection_pools(web_env)


def test_replica_is_made_from_the_primary() -> None:
    replica = services["db-replica"]
    command = replica["command"]
    assert "pg_basebackup -h db" in command and " -R" in command
    assert "db" in replica["depends_on"]
    primary_cmd = services["db"]["command"]
    assert "wal_level=replica" in primary_cmd
    init = (ROOT / "scripts" / "docker-primary-init.sh").read_text()
    assert "replication" in init


def test_prometheus_scrapes_metrics() -> None:
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"web:{_gunicorn_port()}"]



# --- PgBouncer -------------------------------------------------------------------------------------


def _mounted(service: dict, target: str) -> Path:
    """The file of the repository that ``service`` mounts at ``target``."""
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return ROOT / source
    raise AssertionError(f"nothing is mounted at {target}")


def _pgbouncer_ini() -> configparser.ConfigParser:
    ini = configparser.ConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=None)
    ini.read_string(_mounted(services["pgbouncer"], "/etc/pgbouncer/pgbouncer.ini").read_text())
    return ini


def _userlist() -> dict[str, str]:
    ini = _pgbouncer_ini()
    text = _mounted(services["pgbouncer"], ini["pgbouncer"]["auth_file"]).read_text()
    return dict(re.findall(r'^"([^"]+)"\s+"([^"]*)"', text, re.MULTILINE))


def _entry(spec: str) -> dict[str, str]:
    """``host=db port=5432 dbname=pools`` -> dict."""
    return dict(part.split("=", 1) for part in spec.split())


def _list(value: str) -> set[str]:
    return {name.strip() for name in value.split(",") if name.strip()}


def _web_through_pgbouncer() -> dict[str, str]:
    """web's environment with the override file merged over it, as docker compose merges it."""
    override = pgbouncer_override["services"]["web"]["environment"]
    return {k: str(v) for k, v in {**services["web"]["environment"], **override}.items()}


def test_pgbouncer_pools_the_primary_in_transaction_mode():
    ini = _pgbouncer_ini()
    settings = ini["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    assert settings["auth_type"] == "scram-sha-256"
    primary = urlsplit(services["web"]["environment"]["DATABASE_URL"])
    entries = {name: _entry(spec) for name, spec in ini["databases"].items()}
    assert entries[primary.path.lstrip("/")] == {"host": "db", "port": "5432", "dbname": primary.path.lstrip("/")}
    assert services["pgbouncer"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["pgbouncer"]["build"] == "docker/pgbouncer"
    assert (ROOT / "docker" / "pgbouncer" / "Dockerfile").is_file()
    # the health check logs in to the console as a user that may
    check = services["pgbouncer"]["healthcheck"]["test"]
    assert check[check.index("-U") + 1] in _list(settings["stats_users"]) | _list(settings["admin_users"])


def test_pgbouncer_lets_the_apps_user_and_the_console_users_in():
    settings = _pgbouncer_ini()["pgbouncer"]
    users = _userlist()
    primary = urlsplit(services["web"]["environment"]["DATABASE_URL"])
    assert users[primary.username] == primary.password  # the same credentials as the primary's
    for console_user in _list(settings["stats_users"]) | _list(settings["admin_users"]):
        assert console_user in users


def test_the_override_runs_web_through_pgbouncer():
    env = _web_through_pgbouncer()
    settings = _pgbouncer_ini()["pgbouncer"]
    users = _userlist()
    through = urlsplit(env["DATABASE_URL"])
    assert (through.hostname, through.port) == ("pgbouncer", int(settings["listen_port"]))
    assert through.path.lstrip("/") in _pgbouncer_ini()["databases"]
    assert users[through.username] == through.password
    assert env["DATABASE_POOLER"] == "pgbouncer"
    console = urlsplit(env["PGBOUNCER_ADMIN_URL"])
    assert (console.hostname, console.port, console.path) == ("pgbouncer", int(settings["listen_port"]), "/pgbouncer")
    assert console.username in _list(settings["stats_users"]) and users[console.username] == console.password
    assert pgbouncer_override["services"]["web"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert PGBOUNCER_ENV_NAMES <= _settings_env_names()
    unknown = set(env) - _settings_env_names()
    assert not unknown, f"the override sets env vars the settings never read: {sorted(unknown)}"
    from connection_pools import env as cp_env

    assert cp_env.databases(env)["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    pools = cp_env.connection_pools(env)
    assert pools["POOLERS"] == {"default": "pgbouncer"} and pools["PGBOUNCER"]["ADMIN_URLS"] == (
        env["PGBOUNCER_ADMIN_URL"],)


@pytest.fixture
def compose_pgbouncer(tmp_path):
    """The compose PgBouncer's own config and users, run for real in front of the devservices
    primary (only the addresses and paths changed); yields its port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    primary = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])
    port = free_port()
    ini = _pgbouncer_ini()
    for name, spec in ini["databases"].items():
        entry = {**_entry(spec), "host": str(primary["host"]), "port": str(primary["port"])}
        ini["databases"][name] = " ".join(f"{k}={v}" for k, v in entry.items())
    ini["pgbouncer"].update(listen_addr="127.0.0.1", listen_port=str(port), auth_file=str(tmp_path / "userlist.txt"))
    shutil.copy(_mounted(services["pgbouncer"], "/etc/pgbouncer/userlist.txt"), tmp_path / "userlist.txt")
    with open(tmp_path / "pgbouncer.ini", "w") as config:
        ini.write(config)
    # PgBouncer refuses to run as root; -u drops to the PostgreSQL servers' user after reading its files.
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    with open(tmp_path / "pgbouncer.log", "wb") as log:
        process = subprocess.Popen([binary, *user, str(tmp_path / "pgbouncer.ini")], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_compose_pgbouncer_config_works_against_a_real_primary(compose_pgbouncer, tmp_path):
    from connection_pools.pgbouncer_admin import PgBouncerAdminError, read_admin

    env = _web_through_pgbouncer()

    def local(url: str) -> str:
        params = psycopg.conninfo.conninfo_to_dict(url)
        return psycopg.conninfo.make_conninfo(**{**params, "host": "127.0.0.1", "port": str(compose_pgbouncer)})

    def console():
        try:
            return read_admin(local(env["PGBOUNCER_ADMIN_URL"]))
        except PgBouncerAdminError:
            return None

    snapshot = wait_for(console, timeout=20)
    assert snapshot is not None, (tmp_path / "pgbouncer.log").read_text()
    assert snapshot.config.pool_mode == "transaction"
    with psycopg.connect(local(env["DATABASE_URL"]), autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (urlsplit(env["DATABASE_URL"]).username,)
