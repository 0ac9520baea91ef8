"""Two projects on one Redis keep to their own statistics: the default namespace (``KEY_PREFIX``) is
derived from the primary database each serves, so neither sees nor resets the other's pools. Proven
on two real servers of two settings (one database each, one with a replica, one without) through the
real publish, read (``manage.py poolstats``) and reset paths; plus the derivation itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.test import override_settings

from connection_pools import conf
from connection_pools.conf.derived import namespace
from project import dev_services
from tests.support.server import ROOT, GunicornServer


# --- the derivation ------------------------------------------------------------------------------------
def database(host: str = "db.example", port: int | str = 5432, name: str = "shop") -> dict[str, Any]:
    return {"default": {"ENGINE": "connection_pools.backends.postgresql", "HOST": host, "PORT": port, "NAME": name}}


def test_the_namespace_is_stable_and_names_what_the_project_serves() -> None:
    first = namespace(database())
    assert first == namespace(database()) == namespace({**database(), "replica1": database(port=5433)["default"]})
    assert first.startswith("connection_pools:shop:") and len(first.rsplit(":", 1)[1]) == 12
    # Another host, port or database is another project.
    assert len({first, namespace(database(host="db2")), namespace(database(port=5433)),
                namespace(database(name="blog"))}) == 4
    # Any database name gives a key prefix made of safe characters only.
    odd = namespace(database(name="we ird/näme:*"))
    assert odd.startswith("connection_pools:we_ird_n_me:") and re.fullmatch(r"[A-Za-z0-9_.:-]+", odd)
    assert namespace({}) == "connection_pools"


def test_an_explicit_key_prefix_wins(settings) -> None:
    with override_settings(CONNECTION_POOLS={**settings.CONNECTION_POOLS, "KEY_PREFIX": "shop-staging"}):
        assert conf.get("KEY_PREFIX") == "shop-staging"
    with override_settings(CONNECTION_POOLS={**settings.CONNECTION_POOLS, "KEY_PREFIX": None}):
        assert conf.get("KEY_PREFIX") == namespace(settings.DATABASES)


# --- two projects, one Redis -----------------------------------------------------------------------------
def _url(url: str, name: str) -> str:
    return url.rpartition("/")[0] + "/" + name


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    """Two new databases on the primary (the replica gets them by replication)."""
    environ = dev_services.environ()
    suffix = uuid.uuid4().hex[:8]
    names = (f"ns_alpha_{suffix}", f"ns_beta_{suffix}")
    with psycopg.connect(environ["DATABASE_URL"], autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    replica = environ["DATABASE_REPLICA_URLS"].split(",")[0]
    deadline = time.monotonic() + 30
    while True:  # the replica has replayed the CREATE DATABASE
        try:
            psycopg.connect(_url(replica, names[0]), connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the replica never showed the new database"
            time.sleep(0.2)
    try:
        yield names
    finally:
        with psycopg.connect(environ["DATABASE_URL"], autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def project_env(name: str, *, replica: bool) -> dict[str, str]:
    """One project's settings: its own database (and replica), the shared Redis, the default namespace."""
    environ = dev_services.environ()
    return {
        "DATABASE_URL": _url(environ["DATABASE_URL"], name),
        "DATABASE_REPLICA_URLS": _url(environ["DATABASE_REPLICA_URLS"].split(",")[0], name) if replica else "",
        "CONNECTION_POOLS_KEY_PREFIX": "",  # unset: derived
    }


def manage(server: GunicornServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py ...`` with the settings of ``server``'s project."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=server.env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def published(server: GunicornServer) -> dict[str, Any]:
    """What ``manage.py poolstats --json`` reads for ``server``'s project ({} when nothing is published)."""
    result = manage(server, "poolstats", "--json")
    if result.returncode == 2:
        return {}
    assert result.returncode in (0, 1), result.stdout + result.stderr
    stats: dict[str, Any] = json.loads(result.stdout)["stats"]
    return stats


def checkouts(stats: dict[str, Any]) -> int:
    return int(stats["database_pools"]["default"]["checkouts"]) if stats else 0


def wait_for(server: GunicornServer, done: Any, what: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = published(server)
        if done(stats):
            return stats
        assert time.monotonic() < deadline, f"{what}: {json.dumps(stats)[:1500]}"
        time.sleep(0.5)


def traffic(server: GunicornServer, count: int) -> None:
    for _ in range(count):
        with urllib.request.urlopen(server.url + "/one-query/", timeout=10) as response:
            assert response.status == 200


@pytest.mark.slow
def test_two_projects_on_one_redis_neither_see_nor_reset_each_other(two_databases: tuple[str, str]) -> None:
    alpha_db, beta_db = two_databases
    with GunicornServer(workers=1, env=project_env(alpha_db, replica=True)) as alpha, \
            GunicornServer(workers=1, env=project_env(beta_db, replica=False)) as beta:
        assert alpha.env["REDIS_URL"] == beta.env["REDIS_URL"]  # one Redis
        prefixes = {manage(s, "shell", "-c", "from connection_pools import conf; print(conf.get('KEY_PREFIX'))")
                    .stdout.strip().splitlines()[-1] for s in (alpha, beta)}
        assert len(prefixes) == 2 and all(p.startswith("connection_pools:ns_") for p in prefixes), prefixes

        traffic(alpha, 20)
        traffic(beta, 30)
        seen_alpha = wait_for(alpha, lambda s: checkouts(s) >= 20, "alpha's checkouts never showed")
        seen_beta = wait_for(beta, lambda s: checkouts(s) >= 30, "beta's checkouts never showed")

        # Each sees its own pools and its own process only.
        assert set(seen_alpha["database_pools"]) == {"default", "replica1"}
        assert set(seen_beta["database_pools"]) == {"default"}  # not alpha's replica
        assert [p["pid"] for p in seen_alpha["processes"]["list"]] == alpha.worker_pids()
        assert [p["pid"] for p in seen_beta["processes"]["list"]] == beta.worker_pids()

        # A reset in alpha (the service's reset: the reset epoch in the shared store) leaves beta alone.
        reset = manage(alpha, "shell", "-c", "from connection_pools.service import connection_pool_service as s; "
                                             "s.reset_stats(None)")
        assert reset.returncode == 0, reset.stdout + reset.stderr
        wait_for(alpha, lambda s: s and checkouts(s) < 20, "alpha's reset never showed")
        time.sleep(1.5)  # beta publishes again meanwhile (CONNECTION_POOLS_PUBLISH_INTERVAL=1)
        assert checkouts(published(beta)) >= 30
