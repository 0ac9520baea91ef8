"""The registered kinds: SOURCES lines resolve to descriptors (old lines too), a kind nobody describes is shown
everywhere under the catalogue's names instead of dropped, the system checks name what to fix, and no surface
branches on a kind."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from django.test import override_settings
from prometheus_client.core import CounterMetricFamily

from connection_pools import conf, metrics, presenter
from connection_pools.checks import check_pool_kinds
from connection_pools.cluster.store import Resets
from connection_pools.cluster.view import merge
from connection_pools.core.kinds import OTHER_GROUP, PoolKind, computed
from connection_pools.management.pool_report import format_report
from connection_pools.sources import kinds, postgres, redis
from tests.support.server import ROOT
from tests.support.snapshots import NOW, CountingSource, pool_snapshot, process

DEFAULT_SOURCES = conf.DEFAULTS["SOURCES"]


def discover() -> Iterator[CountingSource]:
    """A discover() in a module without KIND (this one): its pools are of a kind nobody describes."""
    yield CountingSource("mystery_one", "mystery")


def sources(*extra: object) -> override_settings:
    return override_settings(CONNECTION_POOLS={**conf.get_config(), "SOURCES": (*DEFAULT_SOURCES, *extra)})


def test_a_line_names_a_module_or_its_discover_function_or_a_callable() -> None:
    assert kinds.resolve("connection_pools.sources.redis").kind is redis.KIND
    old = kinds.resolve("connection_pools.sources.postgres.discover")  # the form before KIND: still works
    assert old.kind is postgres.KIND and old.discover is postgres.discover
    assert kinds.resolve(redis.discover).kind is redis.KIND
    assert kinds.resolve(discover).kind is None  # this module defines no KIND
    with pytest.raises(ImportError):
        kinds.resolve("connection_pools.sources.nowhere")
    with pytest.raises(ImportError):
        kinds.resolve(42)


def test_the_registered_kinds_follow_the_settings() -> None:
    assert [kind.kind for kind in kinds.registered()] == ["postgresql", "persistent", "redis", "server", "pgbouncer"]
    assert list(kinds.groups()) == ["database_pools", "redis_pools", "pgbouncer_pools"]
    with override_settings(CONNECTION_POOLS={**conf.get_config(), "SOURCES": ("connection_pools.sources.redis",)}):
        assert [kind.kind for kind in kinds.registered()] == ["redis"]
    assert len(kinds.registered()) == 5  # setting_changed forgot the override


def test_a_kind_nobody_describes_is_shown_under_the_catalogue_s_names(caplog) -> None:
    mystery = pool_snapshot("mystery_one", "mystery", gauges={"active": 2, "open": 5}, counters={"checkouts": 9})
    view = merge([process(1, mystery, pool_snapshot())], Resets(0, {}), now=NOW)
    with caplog.at_level(logging.WARNING, logger="connection_pools.sources.kinds"):
        body = presenter.stats(view, (), now=NOW)
    entry = body[OTHER_GROUP]["mystery_one"]
    assert (entry["kind"], entry["active"], entry["open"], entry["checkouts"]) == ("mystery", 2, 5, 9)
    assert body["database_pools"]["default"]["active_connections"] == 0  # the described ones as before
    assert "'mystery'" in caplog.text and "E501" in caplog.text
    assert "mystery_one" in format_report(body, None) and "no descriptor registered" in format_report(body, None)
    families = {family.name: family for family in metrics.pool_families(view.pools)}
    samples = {s.labels["pool"]: s.value for s in families["connection_pool_checkouts"].samples}
    assert samples["mystery_one"] == 9.0 and isinstance(families["connection_pool_checkouts"], CounterMetricFamily)


def test_check_warns_about_a_source_without_kind_and_refuses_a_line_that_does_not_work() -> None:
    with sources("tests.test_kinds.discover"):
        found = check_pool_kinds()
    assert [m.id for m in found] == ["connection_pools.W501"]
    assert "'mystery'" in found[0].msg and "tests.test_kinds" in found[0].msg and "KIND" in found[0].hint
    with sources("connection_pools.sources.nowhere"):
        found = check_pool_kinds()
    assert [m.id for m in found] == ["connection_pools.E501"] and "nowhere" in found[0].msg
    assert check_pool_kinds() == []


def test_check_refuses_two_kinds_of_one_group_with_different_entries(monkeypatch) -> None:
    other = PoolKind(kind="odd", group="database_pools", schema_name="DatabasePool",
                     fields=(computed("pool", str, lambda pool, now: pool.name),))
    monkeypatch.setattr(kinds, "registered", lambda: (postgres.KIND, other))
    found = check_pool_kinds()
    assert [m.id for m in found] == ["connection_pools.E502"] and "'odd'" in found[0].msg


def test_a_descriptor_names_only_statistics_of_the_catalogue() -> None:
    from connection_pools.core.kinds import shows

    with pytest.raises(ValueError, match="no statistic of the catalogue"):
        shows("in_use", "in_use")  # the public name is not a statistic
    with pytest.raises(ValueError, match="pool metric"):
        PoolKind(kind="x", group="x_pools", fields=(computed("pool", str, lambda p, n: p.name),),
                 metrics=frozenset({"active"}))


SURFACES = ("connection_pools/presenter.py", "connection_pools/metrics.py", "connection_pools/insight/history.py",
            "connection_pools/insight/health.py", "connection_pools/management/pool_report.py",
            "connection_pools/management/commands/poolstats.py", "connection_pools/api/serializers.py",
            "connection_pools/dashboard/views.py", "connection_pools/static/connection_pools/dashboard.js")
KIND_NAMES = ("postgresql", "persistent", "redis", "pgbouncer")  # (the census's, "server", is a common word)


def test_no_surface_branches_on_a_kind() -> None:
    for path in SURFACES:
        text = (ROOT / path).read_text()
        for line in text.splitlines():
            # (an owner's kind in the census, ``o.kind``, is no kind of pool)
            assert not re.search(r"\b(pool|check|entry|source|spec)\.kind\s*(==|!=|===|!==|in\b)", line), (path, line)
            assert not any(f'"{name}"' in line for name in KIND_NAMES), (path, line)
