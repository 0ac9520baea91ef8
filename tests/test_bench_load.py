"""The benchmark tooling itself: wrk's report is parsed and counted right, the
connection sampler sees one server's connections, and run_all.py rewrites only its
own section of bench/RESULTS.md."""

from __future__ import annotations

import shutil

import pytest

from bench import load, run_all
from bench import results as results_file
from tests.support import server as server_support
from tests.support.server import GunicornServer


def test_write_section_replaces_only_ours(tmp_path) -> None:
    path = tmp_path / "RESULTS.md"
    start, end = results_file.markers(run_all.SECTION)
    results_file.write_section(run_all.SECTION, "first", path)
    assert start in path.read_text() and "first" in path.read_text()
    path.write_text("# Benchmark results\n\n<!-- other:start -->\ntheirs\n<!-- other:end -->\n\n"
                    + path.read_text().split("\n\n", 1)[1] + "\nafter\n")
    results_file.write_section(run_all.SECTION, "second", path)
    text = path.read_text()
    assert "theirs" in text and "after" in text and "second" in text and "first" not in text
    assert text.count(start) == 1 and text.count(end) == 1


def test_failure_verdict() -> None:
    base = {"label": "x", "url": "u", "clients": 1, "duration_s": 1.0, "requests": 3, "throughput": 3.0,
            "latency_ms": {}, "socket_errors": {"timeout": 0}, "missing_retry_after": 0}
    assert load.LoadResult(statuses={200: 2, 503: 1}, **base).failures_only_503_with_retry_after
    assert not load.LoadResult(statuses={200: 2, 500: 1}, **base).failures_only_503_with_retry_after
    assert not load.LoadResult(statuses={200: 2, 503: 1}, **{**base, "missing_retry_after": 1}
                               ).failures_only_503_with_retry_after
    assert not load.LoadResult(statuses={200: 3}, **{**base, "socket_errors": {"timeout": 1}}
                               ).failures_only_503_with_retry_after
    assert load.LoadResult(statuses={200: 2, 404: 1}, **base).failures == 1


@pytest.mark.slow
@pytest.mark.django_db(databases=["default", "replica1"], transaction=True)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/system-deps)")
def test_wrk_run_is_parsed_and_connections_are_sampled() -> None:
    name = "bench-selftest"
    env = {"DATABASE_URL": load.with_application_name(server_support.database_urls_for_tests()["DATABASE_URL"], name)}
    with GunicornServer(workers=1, threads=2, env=env) as server:
        with load.ConnectionSampler(env["DATABASE_URL"], name, interval=0.02) as sampler:
            ok = load.run_wrk(server.url + "/one-query/", clients=2, duration=1, wrk_threads=1)
        missing = load.run_wrk(server.url + "/no-such-page/", clients=1, duration=1, wrk_threads=1)
    assert ok.requests > 0 and ok.statuses == {200: ok.requests}
    assert ok.throughput > 0 and 0 < ok.latency_ms["p50"] <= ok.latency_ms["p99"] <= ok.latency_ms["max"]
    assert ok.failures == 0 and ok.failures_only_503_with_retry_after
    assert sampler.error is None and sampler.max is not None and sampler.max >= 1
    assert set(missing.statuses) == {404} and missing.failures == missing.requests
    assert not missing.failures_only_503_with_retry_after
