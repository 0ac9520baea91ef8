"""ReplicaRouter and the read_only()/primary() scopes against the real primary + streaming replica:
where reads and writes land, scope precedence, decorators, threads, async views, balancing,
settings validation."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, override_settings
from django.urls import include, path

from connection_pools import env, get_session, routing
from connection_pools.routers import ReplicaRouter
from connection_pools.routing import primary, read_only, replicas, scopes
from project.workload.models import Item
from tests.support.replication import REPLICA, wait_for_replica

pytestmark = [
    pytest.mark.django_db(databases=["default", REPLICA], transaction=True),
    pytest.mark.urls(__name__),
]

#: The project's replica settings (their ALIASES): a test overriding REPLICAS keeps them.
REPLICA_SETTINGS = dict(settings.CONNECTION_POOLS["REPLICAS"])


def in_recovery(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return cursor.fetchone()[0]


def routed_read() -> tuple[str, bool]:
    """Where a routed read goes, and whether that server is a standby."""
    alias = router.db_for_read(Item)
    return alias, in_recovery(alias)


def routed_read_and_close() -> tuple[str, bool]:
    """routed_read() in a throw-away thread: close its connections (they would block DROP DATABASE)."""
    try:
        return routed_read()
    finally:
        connections.close_all()


@pytest.fixture(autouse=True)
def fresh_routing_state():
    """Each test starts unpinned, outside any scope, with every replica in rotation."""
    replicas.reset_state()
    scope_token = scopes._scope.set(None)
    state_token = scopes._state.set(None)
    yield
    scopes._state.reset(state_token)
    scopes._scope.reset(scope_token)
    replicas.reset_state()


# --- views for the async tests ------------------------------------------------------------
@read_only()
async def async_read_only_view(request: HttpRequest) -> JsonResponse:
    alias, recovery = await sync_to_async(routed_read)()
    return JsonResponse({"alias": alias, "in_recovery": recovery})


@primary()
async def async_primary_view(request: HttpRequest) -> JsonResponse:
    alias, recovery = await sync_to_async(routed_read)()
    return JsonResponse({"alias": alias, "in_recovery": recovery})


async def async_orm_view(request: HttpRequest) -> JsonResponse:
    """Async ORM under a scope entered with ``async with``."""
    async with read_only():
        names = [item.name async for item in Item.objects.all()]
        db = Item.objects.all().db
    return JsonResponse({"names": names, "db": db})


urlpatterns = [
    path("async-ro/", async_read_only_view),
    path("async-primary/", async_primary_view),
    path("async-orm/", async_orm_view),
    path("", include("project.urls")),
]


# --- where queries land ---------------------------------------------------------------------
def test_routed_reads_run_on_the_standby_and_writes_on_the_primary() -> None:
    table = Item._meta.db_table
    with connections["default"].cursor() as cursor:  # not through the router: no pin
        cursor.execute(f"INSERT INTO {table} (name, quantity, created_at) VALUES ('seed', 1, now())")
    wait_for_replica()

    probe = RawSQL("pg_is_in_recovery()", [], output_field=BooleanField())
    assert Item.objects.all().db == REPLICA
    assert list(Item.objects.annotate(standby=probe).values_list("name", "standby")) == [("seed", True)]

    statements: list[tuple[str, str]] = []

    def recorder(alias):
        def wrapper(execute, sql, params, many, context):
            statements.append((alias, sql.split()[0].upper()))
            return execute(sql, params, many, context)
        return wrapper

    with connections["default"].execute_wrapper(recorder("default")), \
            connections[REPLICA].execute_wrapper(recorder(REPLICA)):
        item = Item.objects.create(name="written", quantity=2)
        Item.objects.filter(pk=item.pk).update(quantity=3)
    assert statements == [("default", "INSERT"), ("default", "UPDATE")]
    assert in_recovery("default") is False
    # The write pinned this context: the next read sees it, from the primary.
    assert Item.objects.get(pk=item.pk).quantity == 3
    assert Item.objects.all().db == "default"


def test_a_write_pins_this_context_only_for_pin_seconds() -> None:
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "PIN_SECONDS": 0}}):
        Item.objects.create(name="unpinned")
        assert router.db_for_read(Item) == REPLICA
    Item.objects.create(name="pinned")
    assert router.db_for_read(Item) == "default"


def test_router_relations_and_migrations() -> None:
    r = ReplicaRouter()
    a, b = Item(name="a"), Item(name="b")
    a._state.db, b._state.db = "default", REPLICA
    assert r.allow_relation(a, b) is True
    b._state.db = "elsewhere"
    assert r.allow_relation(a, b) is None
    assert r.allow_migrate(REPLICA, "workload") is False
    assert r.allow_migrate("default", "workload") is None


def test_reads_inside_a_primary_transaction_stay_on_the_primary() -> None:
    with transaction.atomic():
        assert routed_read() == ("default", False)
        with read_only():  # an explicit read_only() may still use a replica
            assert routed_read() == (REPLICA, True)
    assert routed_read() == (REPLICA, True)


# --- scopes ----------------------------------------------------------------------------------
def test_scopes_nest_and_restore() -> None:
    assert routed_read() == (REPLICA, True)
    with primary():
        assert routed_read() == ("default", False)
        with read_only():
            assert routed_read() == (REPLICA, True)
            with read_only(using="default"):
                assert routed_read() == ("default", False)
            assert routed_read() == (REPLICA, True)
        assert routed_read() == ("default", False)
    assert routing.current_scope() is None
    assert routed_read() == (REPLICA, True)


def test_writes_in_read_only_go_to_the_primary_and_pin() -> None:
    with read_only():
        item = Item.objects.create(name="in read_only")
        assert router.db_for_write(Item) == "default"
        # Read-your-writes beats read_only(): the row is not on the replica yet.
        assert Item.objects.filter(pk=item.pk).exists()
        assert Item.objects.all().db == "default"


def test_decorators_on_sync_functions() -> None:
    @read_only()
    def report() -> tuple[str, bool]:
        return routed_read()

    @primary()
    def fresh() -> tuple[str, bool]:
        return routed_read()

    assert report() == (REPLICA, True)
    assert fresh() == ("default", False)
    assert report.__name__ == "report"
    assert routing.current_scope() is None


def test_get_session_yields_its_alias() -> None:
    with get_session(read_only=True) as alias:
        assert alias == REPLICA
        assert routed_read() == (REPLICA, True)
    with get_session(read_only=False) as alias:
        assert alias == "default"
        assert routed_read() == ("default", False)
    with pytest.raises(ValueError, match="Unknown database alias 'nope'"):
        get_session(read_only=True, using="nope").__enter__()


def test_get_session_works_the_guides_async_way() -> None:
    async def guide_style() -> tuple[str, object, object]:
        async with get_session(read_only=True) as alias:
            inside = routing.current_scope()
        return alias, inside, routing.current_scope()

    alias, inside, after = async_to_sync(guide_style)()
    assert (alias, inside, after) == (REPLICA, ("read_only", REPLICA), None)


def test_get_session_read_only_without_healthy_replica_uses_the_primary() -> None:
    replicas.mark_failed(REPLICA, "test: down")
    with get_session(read_only=True) as alias:
        assert alias == "default"
        assert routed_read() == ("default", False)


def test_scopes_are_per_thread_and_travel_only_on_purpose() -> None:
    barrier = threading.Barrier(2, timeout=10)
    results: dict[str, tuple[str, bool]] = {}
    errors: list[BaseException] = []

    def worker(name: str, scope: routing.Scope) -> None:
        try:
            with scope:
                barrier.wait()  # both threads are inside their scopes now
                results[name] = routed_read()
                barrier.wait()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=("ro", read_only())),
               threading.Thread(target=worker, args=("primary", primary()))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert results == {"ro": (REPLICA, True), "primary": ("default", False)}

    # A scope never leaks into a new thread; copy_context() carries it on purpose.
    seen: dict[str, str] = {}

    def where(key: str) -> None:
        seen[key] = router.db_for_read(Item)

    with primary():
        plain = threading.Thread(target=where, args=("plain",))
        carried = threading.Thread(target=contextvars.copy_context().run, args=(where, "carried"))
        for t in (plain, carried):
            t.start()
            t.join(10)
    assert seen == {"plain": REPLICA, "carried": "default"}


def test_scopes_in_async_views() -> None:
    client = AsyncClient()
    ro = async_to_sync(client.get)("/async-ro/")
    pr = async_to_sync(client.get)("/async-primary/")
    assert ro.status_code == pr.status_code == 200
    assert ro.json() == {"alias": REPLICA, "in_recovery": True}
    assert pr.json() == {"alias": "default", "in_recovery": False}


def test_async_orm_under_async_with() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute(f"INSERT INTO {Item._meta.db_table} (name, quantity, created_at) VALUES ('async', 1, now())")
    wait_for_replica()
    response = async_to_sync(AsyncClient().get)("/async-orm/")
    assert response.json() == {"names": ["async"], "db": REPLICA}


def test_concurrent_async_tasks_keep_their_own_scope() -> None:
    async def task(scope: routing.Scope, gate: asyncio.Event, other: asyncio.Event) -> tuple[str, bool]:
        async with scope:
            gate.set()
            await other.wait()  # the other task is inside its own scope now
            return await sync_to_async(routed_read_and_close, thread_sensitive=False)()

    async def main() -> list[tuple[str, bool]]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(task(read_only(), a, b), task(primary(), b, a))

    assert async_to_sync(main)() == [(REPLICA, True), ("default", False)]


# --- balancing ---------------------------------------------------------------------------------
@pytest.fixture
def two_replicas(monkeypatch):
    """Two alias names for the pure balancing logic (fakes: only pick() sees them)."""
    aliases = ["fake_replica_a", "fake_replica_b"]
    monkeypatch.setattr(replicas, "replica_aliases", lambda: list(aliases))
    yield aliases
    replicas.reset_state()


def test_round_robin_spreads_reads_and_skips_replicas_out_of_rotation(two_replicas) -> None:
    a, b = two_replicas
    picks = [replicas.pick() for _ in range(6)]
    assert sorted(picks) == sorted(two_replicas * 3)
    assert all(x != y for x, y in itertools.pairwise(picks))

    replicas.mark_failed(b, "test: connection refused")
    assert {replicas.pick() for _ in range(6)} == {a}
    # Half of those reads were meant for b and went elsewhere.
    assert replicas.reading(b).fallbacks == 3
    assert replicas.reading(b).in_rotation is False

    replicas.mark_failed(a, "test: connection refused")
    assert replicas.pick() is None


def test_least_busy_uses_the_pools_live_active_counts(two_replicas, monkeypatch) -> None:
    a, b = two_replicas
    busy = {a: 5, b: 1}
    monkeypatch.setattr(replicas, "load_of", lambda alias: busy.get(alias, 0))  # the pools' live in-use counts
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "BALANCING": "least_busy"}}):
        assert {replicas.pick() for _ in range(4)} == {b}
        busy[b] = 9
        assert {replicas.pick() for _ in range(4)} == {a}
        # The least busy one is out of rotation: the next one takes the read.
        replicas.mark_failed(a, "test: down")
        assert {replicas.pick() for _ in range(4)} == {b}
        assert replicas.reading(a).fallbacks == 4


# --- settings ------------------------------------------------------------------------------------
def test_bad_replica_settings_are_reported_by_check_and_at_use() -> None:
    bad = {"REPLICAS": {"BALANCING": "random", "MAX_LAG_SECONDS": -1, "LAG_SAMPLE_INTERVAL": 0,
                        "PIN_COOKIE": "bad cookie"}}
    with override_settings(CONNECTION_POOLS=bad):
        messages = [m for m in run_checks() if m.id == "connection_pools.E101"]
        text = " ".join(m.msg for m in messages)
        assert len(messages) == 4
        for needle in ("BALANCING is 'random'", "MAX_LAG_SECONDS is -1", "LAG_SAMPLE_INTERVAL is 0", "PIN_COOKIE"):
            assert needle in text
        with pytest.raises(ImproperlyConfigured, match="BALANCING is 'random'"):
            router.db_for_read(Item)
    assert not [m for m in run_checks() if m.id.startswith("connection_pools.E1")]


def test_missing_router_is_a_warning() -> None:
    with override_settings(DATABASE_ROUTERS=[]):
        assert [m.id for m in run_checks() if m.id == "connection_pools.W101"] == ["connection_pools.W101"]


def test_replica_settings_from_the_environment() -> None:
    one = "postgres://u:p@h1:5432/d"
    parsed = env.replica_settings({"DATABASE_REPLICA_URLS": one,
                                   "DATABASE_REPLICA_BALANCING": "Least_Busy", "DATABASE_REPLICA_MAX_LAG": "2.5",
                                   "DATABASE_REPLICA_COOLDOWN": "1", "DATABASE_REPLICA_LAG_INTERVAL": "0.5",
                                   "DATABASE_REPLICA_PIN_SECONDS": "0"})
    assert parsed == {"ALIASES": ["replica1"], "BALANCING": "least_busy", "MAX_LAG_SECONDS": 2.5,
                      "LAG_SAMPLE_INTERVAL": 0.5, "COOLDOWN_SECONDS": 1.0, "PIN_SECONDS": 0.0}
    two = "postgres://u:p@h1:5432/d,postgres://u:p@h2:5432/d"
    assert env.replica_settings({"DATABASE_REPLICA_URLS": two})["ALIASES"] == ["replica1", "replica2"]
    assert env.replica_settings({"DATABASE_REPLICA_URLS": ""})["ALIASES"] == []
    assert env.replica_settings({})["ALIASES"] == []  # the library assumes no replica
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_BALANCING"):
        env.replica_settings({"DATABASE_REPLICA_BALANCING": "random"})
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_LAG_INTERVAL"):
        env.replica_settings({"DATABASE_REPLICA_LAG_INTERVAL": "0"})


def test_a_mirroring_alias_left_out_of_the_replica_list_is_a_warning() -> None:
    from connection_pools.checks import check_replica_roles

    assert check_replica_roles() == []
    with override_settings(CONNECTION_POOLS={"REPLICAS": {**REPLICA_SETTINGS, "ALIASES": []}}):
        (warning,) = check_replica_roles()
        assert warning.id == "connection_pools.W102" and "'replica1'" in warning.msg
        assert replicas.replica_aliases() == []  # and it is routed as a primary would be
