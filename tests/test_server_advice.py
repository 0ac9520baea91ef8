"""The server tier's recommendation rules, as pure functions of reports made by hand."""

from __future__ import annotations

from connection_pools.conf.aliases import AliasSpec
from connection_pools.core.census import OwnerCount, ServerCensus, Session, StateCounts
from connection_pools.core.pooler import PgBouncerConfig, PgBouncerDatabase, PgBouncerPool, PgBouncerReport
from connection_pools.core.reports import ServerBudget
from connection_pools.core.snapshots import Gauges, PoolSnapshot
from connection_pools.insight import server_advice as advice


def census(**changes) -> ServerCensus:
    values = dict(name="server_default", server="db:5432", alias="default", role="primary", taken_at=1.0,
                  max_connections=100, superuser_reserved=3, reserved=0, idle_in_transaction_timeout_ms=0,
                  states=StateCounts(idle=40), by_kind={"ours": 30, "other": 10, "probe": 0})
    values.update(changes)
    return ServerCensus(**values)


def budget(total: int, *, pairs: int = 4, size: int = 10, overflow: int = 10) -> ServerBudget:
    return ServerBudget(server="db:5432", pool="db_default", aliases=("default",), processes=pairs, pairs=pairs,
                        configured_total=total, pool_size=size, max_overflow=overflow)


def bouncer(**changes) -> PgBouncerReport:
    values = dict(name="pgbouncer_1", server="pgb:6432", taken_at=1.0,
                  config=PgBouncerConfig(max_client_conn=100, default_pool_size=20),
                  pools=(PgBouncerPool("app", "app", cl_active=20, cl_waiting=0, sv_active=20, sv_idle=0, sv_used=0,
                                       sv_tested=0, sv_login=0, maxwait=0.0, pool_mode="transaction"),))
    values.update(changes)
    return PgBouncerReport(**values)


def test_headroom_taken_by_other_clients_gets_a_concrete_max_overflow():
    # 97 accepted, 10 held by others: room for 87 over 4 processes = 21 each -> max_overflow 11 with pool_size 10.
    rec = advice.server_headroom(census(), budget(80))
    assert rec is None  # 80 fits in the 87 left
    rec = advice.server_headroom(census(), budget(4 * 23, overflow=13))
    assert rec is not None and rec.rule == "server_headroom" and rec.severity == "high"
    assert (rec.setting, rec.current_value, rec.suggested_value) == ("max_overflow", 13, 11)
    assert "other clients hold 10" in rec.suggestion
    tight = advice.server_headroom(census(by_kind={"other": 80}), budget(4 * 20, overflow=10))
    assert tight is not None and tight.suggested_value == 0 and "reduce pool_size to 4" in tight.suggestion
    assert advice.server_headroom(census(), budget(200)) is None  # over max_connections: budget_overrun's case


def test_other_clients_over_their_share_are_named():
    owners = (OwnerCount(kind="other", label="etl batch@10.0.0.9", states=StateCounts(idle=35)),)
    rec = advice.other_clients(census(by_kind={"other": 35}, owners=owners), 0.25)
    assert rec is not None and "etl batch@10.0.0.9 (35)" in rec.suggestion
    assert advice.other_clients(census(by_kind={"other": 20}), 0.25) is None


def test_an_idle_in_transaction_session_under_the_threshold_is_quiet_and_a_set_timeout_is_not_suggested_again():
    session = Session(pid=9, owner="web-1 pid 7 (default)", kind="ours", state="idle in transaction", seconds=10.0)
    assert advice.idle_in_transaction(census(longest_idle_in_transaction=session), 30.0) is None
    rec = advice.idle_in_transaction(census(longest_idle_in_transaction=session,
                                            idle_in_transaction_timeout_ms=30_000), 5.0)
    assert rec is not None and rec.suggested_value == 30_000 and "find why the code waits" in rec.suggestion


def test_waiting_clients_in_pgbouncer_ask_for_a_larger_default_pool_size():
    waiting = PgBouncerPool("app", "app", cl_active=20, cl_waiting=5, sv_active=20, sv_idle=0, sv_used=0,
                            sv_tested=0, sv_login=0, maxwait=2.5, pool_mode="transaction")
    rec = advice.pgbouncer_waiting(bouncer(pools=(waiting,)))
    assert rec is not None and rec.severity == "high"
    assert (rec.setting, rec.current_value, rec.suggested_value) == ("default_pool_size", 20, 25)
    entry = PgBouncerDatabase(name="app", host="db", port=5432, database="app", pool_size=8, min_pool_size=0,
                              reserve_pool_size=0, pool_mode="transaction", max_connections=0, current_connections=8,
                              paused=False, disabled=False)
    assert advice.pgbouncer_waiting(bouncer(pools=(waiting,), databases=(entry,))).suggested_value == 13
    assert advice.pgbouncer_waiting(bouncer()) is None


def test_the_apps_max_size_through_pgbouncer_against_max_client_conn():
    spec = AliasSpec(alias="default", engine="connection_pools.backends.postgresql", role="primary", mode="pool",
                     pool_name="db_default", host="pgb", port=6432, database="app", user="app", conn_max_age=0,
                     pooler="pgbouncer")
    pools = [PoolSnapshot(name="db_default", kind="postgresql", role="primary", alias="default",
                          gauges=Gauges(capacity=40, max_capacity=120), processes=4)]
    report = bouncer()
    demand = advice.pgbouncer_demand(pools, {"default": spec}, report, [report])
    assert demand == 120
    rec = advice.pgbouncer_client_limit(report, demand)
    assert rec is not None and (rec.current_value, rec.suggested_value) == (100, 120)
    direct = AliasSpec(**{**spec.__dict__, "pooler": None})
    assert advice.pgbouncer_demand(pools, {"default": direct}, report, [report]) == 0


def test_a_login_storm_needs_many_young_clients():
    assert advice.login_storm(bouncer(clients=100, recent_logins=80)) is not None
    assert advice.login_storm(bouncer(clients=100, recent_logins=30)) is None  # most clients are old
    assert advice.login_storm(bouncer(clients=10, recent_logins=10)) is None  # too few to call a storm
