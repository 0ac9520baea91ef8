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
    source = "".join((ROOT / path).read_text() for path in ("connection_pools/conf/env.py", "project/settings.py"))
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))


def test_services_present() -> None:
    assert {"web", "db", "db-replica", "redis", "prometheus"} <= set(services)


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
    assert job["static_configs"][0]["targets"] == ["web:8000"]
