"""bench/bench_release.py's code path at a tiny size, so the benchmark cannot rot: every contender
(django-pg-real-pool included) serves the view through a real gunicorn in both phases, the server
connections are sampled, the in-process cycle runs, and the report is made."""

from __future__ import annotations

import pytest

from bench import bench_release


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_release_benchmark_runs_at_a_tiny_size(monkeypatch) -> None:
    from tests.support.server import database_urls_for_tests

    for name, url in database_urls_for_tests().items():  # the servers and the sampler on the test database
        monkeypatch.setenv(name, url)
    shape = bench_release.Shape(workers=1, threads=2, clients=2, wait=0.01, cycles=10, warm_up=1)
    outcome = bench_release.run(shape, rounds=1, duration=1)
    assert set(outcome.cycles) == {c.key for c in bench_release.CONTENDERS}
    assert all(seconds > 0 for seconds in outcome.cycles.values())
    for phase in (outcome.uncapped, outcome.capped):
        for key, runs in phase.results.items():
            assert len(runs) == 1 and runs[0].requests > 0 and runs[0].failures == 0, key
            assert phase.peak(key) >= 1, key  # the sampler saw each server's connections
    assert set(outcome.capped.results) == {"request-uncapped", *(c.key for c in bench_release.CONTENDERS)}
    text = bench_release.report(outcome, command="test", before="-", after="-")
    assert "| real-pool | django-pg-real-pool 1.1.0 |" in text and "### Goals" in text
