"""/metrics on a real gunicorn with several workers: cluster-wide numbers, promtool-clean; alert rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connection_pools import metrics
from connection_pools.core.snapshots import BUCKET_BOUNDS
from tests.support.server import ROOT, GunicornServer

REQUESTS = 30
POOL_LABELS = {"pool", "kind", "alias"}


def scrape(server: GunicornServer) -> str:
    with urllib.request.urlopen(server.url + "/metrics", timeout=15) as response:
        assert response.status == 200
        return response.read().decode()


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[GunicornServer]:
    with GunicornServer(workers=3, threads=4) as gunicorn:
        gunicorn.spread_traffic(batch=REQUESTS)
        yield gunicorn


@pytest.fixture(scope="module")
def caught_up(server) -> str:
    """A scrape once the published aggregate includes our traffic and every worker."""
    deadline = time.monotonic() + 40
    while True:
        text = scrape(server)
        checkouts = sample_value(text, "connection_pool_checkouts_total", pool="db_default") or 0
        processes = sample_value(text, "connection_pool_processes_reporting") or 0
        if checkouts >= server.requests_sent and processes >= 3:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never caught up: checkouts={checkouts} processes={processes}")
        time.sleep(1)


def test_live_exposition_passes_promtool(server, caught_up):
    result = subprocess.run(["promtool", "check", "metrics"], input=scrape(server), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_pool_has_its_metrics_with_low_cardinality_labels(caught_up):
    found = families(caught_up)
    for name in ("connection_pool_active_connections", "connection_pool_available_connections",
                 "connection_pool_waiting_requests", "connection_pool_size", "connection_pool_max_size",
                 "connection_pool_overflow_connections", "connection_pool_healthy",
                 "connection_pool_checkouts", "connection_pool_connections_created",
                 "connection_pool_connections_closed",
                 "connection_pool_connections_recycled", "connection_pool_connection_errors",
                 "connection_pool_timeouts", "connection_pool_fallbacks", "connection_pool_wait_seconds"):
        assert name in found, name
        for sample in found[name].samples:
            assert set(sample.labels) - {"le"} == POOL_LABELS, (name, sample.labels)
    assert found["connection_pool_checkouts"].type == "counter"
    assert found["connection_pool_wait_seconds"].type == "histogram"
    pools = {s.labels["pool"] for s in found["connection_pool_active_connections"].samples}
    assert {"db_default", "redis_main", "redis_cache"} <= pools
    assert sample_value(caught_up, "connection_pool_replica_lag_seconds", pool="db_replica1") is not None
    assert sample_value(caught_up, "connection_pool_stats_cluster") == 1.0


def test_numbers_are_cluster_wide_whichever_worker_answers(server, caught_up):
    # The aggregate the workers publish, read by a process with no pools of its own
    # (this test process publishes too, so its facade would add its own numbers).
    result = subprocess.run([sys.executable, "manage.py", "poolstats", "--json"], cwd=ROOT, env=server.env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    aggregate = json.loads(result.stdout)["stats"]
    total = aggregate["database_pools"]["default"]["checkouts"]
    most_one_worker = max(p["database_pools"].get("default", {}).get("checkouts", 0)
                          for p in aggregate["per_process"].values())
    assert total > most_one_worker, "precondition: the traffic reached more than one worker"
    # No request touches the database meanwhile, so a per-worker exporter could show at most
    # `most_one_worker`; every scrape, whichever worker answers, must show the cluster total.
    for _ in range(8):
        text = scrape(server)
        assert sample_value(text, "connection_pool_checkouts_total", pool="db_default") >= total
        assert sample_value(text, "connection_pool_processes_reporting") >= 3


def test_wait_histogram_is_consistent(server, caught_up):
    buckets = [(s.labels["le"], s.value) for s in families(caught_up)["connection_pool_wait_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["pool"] == "db_default"]
    assert len(buckets) == len(BUCKET_BOUNDS)
    assert buckets[-1][0] == "+Inf"
    values = [value for _, value in buckets]
    assert values == sorted(values)  # cumulative
    count = sample_value(caught_up, "connection_pool_wait_seconds_count", pool="db_default")
    assert count == values[-1] >= server.requests_sent


def test_register_is_idempotent():
    assert metrics.register() is metrics.register()


def test_alert_rules_pass_promtool():
    checked = subprocess.run(["promtool", "check", "rules", "prometheus/alerts.yml"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run(["promtool", "test", "rules", "prometheus/alerts_test.yml"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_alert_rules_cover_the_issue():
    import yaml

    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"ConnectionPoolExhausted", "ConnectionPoolHighWait", "ConnectionPoolErrors",
            "ConnectionPoolReplicaLag", "ConnectionPoolUnhealthy"} <= names
    exposed = {f"connection_pool_{suffix}" for suffix, *_ in (*metrics.GAUGES,)} | {
        f"connection_pool_{suffix}_total" for suffix, *_ in metrics.COUNTERS} | {
        "connection_pool_healthy", "connection_pool_wait_seconds_bucket", "connection_pool_stats_cluster"}
    for rule in rules:
        used = {token for token in rule["expr"].replace("(", " ").replace(")", " ").split()
                if token.startswith("connection_pool_")}
        used = {token.split("{")[0].split("[")[0] for token in used}
        assert used <= exposed, (rule["alert"], used - exposed)


@pytest.mark.django_db(databases=["default", "replica1"])
@pytest.mark.usefixtures("quiet_background")
def test_a_scrape_opens_no_database_connection_and_reads_the_store_once(settings, monkeypatch):
    import psycopg
    from django.test import Client

    from connection_pools.backends.postgresql.live import get_pool
    from connection_pools.cluster import publish, rollup
    from connection_pools.cluster.store import store
    from connection_pools.insight import health
    from tests.support.admin_api import unique_prefix

    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": unique_prefix("scrape")}
    try:
        publish.publish()
        assert rollup.roll_up()  # the rollup exists, as in a running cluster
        health.remember(health.probe())  # and the health job's last result
        opened, reads = [], []
        real_connect, real_module_connect, real_call = psycopg.Connection.connect, psycopg.connect, store.call
        # Both ways in: psycopg.connect() (probes) and Connection.connect() (pools).
        monkeypatch.setattr(psycopg.Connection, "connect",
                            classmethod(lambda cls, *a, **k: opened.append(a) or real_connect.__func__(cls, *a, **k)))
        monkeypatch.setattr(psycopg, "connect", lambda *a, **k: opened.append(a) or real_module_connect(*a, **k))
        monkeypatch.setattr(store, "call", lambda func: reads.append(func) or real_call(func))
        checkouts = get_pool("default").counters.count("checkouts")
        response = Client().get("/metrics")
        assert response.status_code == 200
        text = response.content.decode()
        assert 'connection_pool_healthy{alias="default",kind="postgresql",pool="db_default"} 1.0' in text
        assert opened == []  # no database connection, not even for health
        assert get_pool("default").counters.count("checkouts") == checkouts  # nor a checkout from a pool
        assert len(reads) == 1  # one round trip to the cluster store
    finally:
        store.clear()
        publish.forget()
        health.forget()
