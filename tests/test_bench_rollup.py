"""bench/bench_rollup.py's code path at a tiny size, so the benchmark cannot rot: synthetic processes
reach the cluster store and the stats, the direct-merge phase really merges (no rollup meanwhile),
the server's own rollup takes over once the lease is released, and the report is made."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from bench import bench_rollup
from connection_pools.cluster.store import store
from tests.support.server import GunicornServer


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_rollup_benchmark_runs_at_a_tiny_size(settings: Any) -> None:
    user = get_user_model().objects.create_user("rollup-bench", password="x", is_staff=True)
    token = Token.objects.create(user=user).key
    # The snapshots must outlive the run in the server's eyes as in ours.
    server = GunicornServer(workers=1, threads=2, env={"CONNECTION_POOLS_SNAPSHOT_TTL": "600"})
    settings.CONNECTION_POOLS = {**settings.CONNECTION_POOLS, "KEY_PREFIX": server.key_prefix,
                                 "PUBLISH_INTERVAL": 1.0, "SNAPSHOT_TTL": 600.0}
    try:
        # run() checks that GET stats counted every process in both phases.
        results = bench_rollup.run(server, token, [3, 6], rounds=3, direct_rounds=2, job_rounds=1)
    finally:
        store.clear()
    assert [r.processes for r in results] == [3, 6]
    for result in results:
        assert result.direct.n == 2 and result.rollup.n == 3 and result.job.total.n == 1
        assert 0 < result.rollup.p50 <= result.rollup.max and 0 < result.direct.p50 <= result.direct.max
        assert result.job.snapshot_bytes > 0
    text = bench_rollup.report(results, rounds=3, direct_rounds=2, interval=1.0)
    assert "| 3 |" in text and "| 6 |" in text and "Goal (with the rollup)" in text
