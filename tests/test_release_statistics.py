"""Hold time vs query time: the pool's ``query`` histogram (statement seconds per hold) measured on the
real server, carried like ``hold`` through the snapshot, its wire form, the merge and the API entry, and
the advisor's rule that suggests ``release = "transaction"`` when request-scoped holds dwarf their
statements."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import pytest

from connection_pools.cluster.store import Resets
from connection_pools.cluster.view import merge
from connection_pools.conf import DATABASE_POOL_DEFAULTS
from connection_pools.core.counters import PoolCounters
from connection_pools.core.snapshots import PoolSnapshot, merge_pool
from connection_pools.insight import advisor
from connection_pools.presenter import pools
from tests.support.pg import snapshot_of
from tests.support.snapshots import NOW, pool_snapshot, process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]


# --- measured on the real server ------------------------------------------------------------------
def test_query_time_per_hold_is_the_statements_time_in_request_mode(pooled) -> None:
    wrapper, pool = pooled({"pool_size": 1, "max_overflow": 0})
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05)")
        cursor.execute("SELECT 1")
    time.sleep(0.15)  # the rest of a request: no database
    wrapper.close()
    reading = pool.counters.read()
    assert reading.hold.count == reading.query.count == 1
    assert 0.05 <= reading.query.sum < 0.15 <= reading.hold.sum  # statements, not the hold
    snapshot = snapshot_of(wrapper)
    assert snapshot.query == reading.query and snapshot.config["release"] == "request"
    entry = pools([snapshot], now=time.time())["database_pools"][snapshot.alias]
    assert entry["query_time"]["count"] == 1 and entry["query_time"]["max"] >= 0.05
    assert entry["config"]["release"] == "request"
    pool.counters.reset()
    assert pool.counters.read().query.count == 0


def test_commit_and_rollback_count_as_query_time(pooled) -> None:
    wrapper, pool = pooled({"pool_size": 1, "max_overflow": 0})
    wrapper.set_autocommit(False)
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    executed = pool.counters.read()  # nothing back yet
    wrapper.commit()
    wrapper.set_autocommit(True)
    wrapper.close()
    reading = pool.counters.read()
    assert reading.query.count == executed.query.count + 1 and reading.query.sum > 0


def test_with_release_per_transaction_each_statement_is_one_hold(pooled) -> None:
    wrapper, pool = pooled({"pool_size": 1, "max_overflow": 0, "release": "transaction"})
    for _ in range(3):
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.01)")
        time.sleep(0.05)
    reading = pool.counters.read()
    assert reading.hold.count == reading.query.count == 3 and reading.counters.checkouts == 3
    assert reading.query.sum >= 0.03 and reading.hold.sum < 0.03 + 0.15  # the sleeps between were not held


# --- the snapshot: hold's pattern ------------------------------------------------------------------
def with_holds(holds: list[tuple[float, float]], **config: Any) -> PoolSnapshot:
    """One process's db_default snapshot whose checkouts were held and queried this long (seconds)."""
    counters = PoolCounters()
    for hold, query in holds:
        counters.checkout(0.0)
        counters.checkin(hold, query)
    reading = counters.read()
    return replace(pool_snapshot(config={**DATABASE_POOL_DEFAULTS, **config}), counters=reading.counters,
                   wait=reading.wait, hold=reading.hold, query=reading.query)


def test_the_query_histogram_travels_the_wire_and_merges_like_hold() -> None:
    a, b = with_holds([(0.1, 0.002)] * 3), with_holds([(0.2, 0.004)] * 2)
    assert PoolSnapshot.from_wire(a.to_wire()) == a
    assert PoolSnapshot.from_wire({**a.to_wire(), "query": "junk"}).query.count == 0  # an older or odd process
    merged = merge_pool([a, b], now=NOW)
    assert merged.query.count == 5 and merged.query.sum == pytest.approx(0.014) and merged.query.max == 0.004
    assert merged.zeroed(NOW).query.count == 0
    (shaped,) = merge([process(1, a), process(2, b)], Resets(0, {}), now=NOW).pools
    assert shaped.query == merged.query


# --- the advisor's rule -----------------------------------------------------------------------------
def recommend(pool: PoolSnapshot) -> dict[str, Any] | None:
    found = advisor.hold_dwarfs_query(pool, advisor.DEFAULT_BOUNDS, NOW)
    return None if found is None else asdict(found)


def test_holds_that_dwarf_their_statements_suggest_release_per_transaction() -> None:
    found = recommend(with_holds([(0.06, 0.002)] * 50))  # 60 ms held, 2 ms of statements: 30x
    assert found is not None
    assert (found["rule"], found["severity"], found["setting"]) == ("hold_dwarfs_query", "low", "release")
    assert (found["current_value"], found["suggested_value"]) == ("request", "transaction")
    assert "OPTIONS['pool']['release'] = 'transaction'" in found["suggestion"] and "(30x)" in found["suggestion"]
    assert [r.rule for r in advisor.advise([with_holds([(0.06, 0.002)] * 50)], now=NOW)] == ["hold_dwarfs_query"]
    pressed = replace(with_holds([(0.06, 0.002)] * 50), counters=replace(with_holds([]).counters, timeouts=2))
    assert recommend(pressed)["severity"] == "medium"  # the pool also ran out


@pytest.mark.parametrize(("holds", "config"), [
    ([(0.06, 0.002)] * 50, {"release": "transaction"}),  # already released per transaction
    ([(0.06, 0.002)] * 50, {"release": None}),  # a process that does not say (older version)
    ([(0.06, 0.02)] * 50, {}),  # 3x: under HOLD_QUERY_RATIO
    ([(0.006, 0.0001)] * 50, {}),  # 60x but 6 ms holds: under HOLD_MIN_MEAN
    ([(0.06, 0.002)] * 10, {}),  # too few holds to judge
    ([(0.06, 0.0)] * 50, {}),  # no statements measured
])
def test_the_rule_stays_quiet_without_evidence(holds: list[tuple[float, float]], config: dict[str, Any]) -> None:
    assert recommend(with_holds(holds, **config)) is None


def test_the_rule_fires_on_what_a_real_request_mode_pool_measured(pooled) -> None:
    wrapper, _pool = pooled({"pool_size": 1, "max_overflow": 0})
    for _ in range(advisor.MIN_CHECKOUTS):
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        time.sleep(0.012)  # an "external call" while the request keeps its connection
        wrapper.close()
    found = recommend(snapshot_of(wrapper))
    assert found is not None and found["suggested_value"] == "transaction"
