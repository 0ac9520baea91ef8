"""docker-compose.yml is consistent with the settings (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]


def _settings_env_names() -> set[str]:
    """Every env var name the settings read (env.py and project/settings.py)."""
    source = (ROOT / "connection_pools" / "env.py").read_text() + (ROOT / "project" / "settings.py").read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))


def test_services_present() -> None:
    assert {"nginx", "web", "db", "db-replica", "redis", "prometheus"} <= set(services)


def _gunicorn_port() -> str:
    match = re.search(r"gunicorn project\.wsgi --bind 0\.0\.0\.0:(\d+)", services["web"]["command"])
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
