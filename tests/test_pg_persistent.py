"""Persistent-connection mode (CONN_MAX_AGE > 0, no pool): statistics from Django's signals and the
request context (what the request middleware and Django's handler do, done by hand)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.signals import request_finished, request_started

from connection_pools.conf.aliases import spec_of
from connection_pools.core import context as request_context
from connection_pools.sources.persistent import PersistentSource
from tests.support.pg import (
    dispose,
    make_wrapper,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_background")]


@pytest.fixture
def persistent_alias():
    wrapper = make_wrapper(None, persistent=60)
    yield wrapper
    dispose(wrapper)


def snapshot(wrapper):
    return PersistentSource(spec_of(wrapper.alias, wrapper.settings_dict)).snapshot()


def query(wrapper):
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")


@contextmanager
def request() -> Iterator[request_context.RequestContext]:
    """One request as Django's handler and the request middleware run it: the signals around the
    middleware, which starts and ends the request context."""
    request_started.send(sender=None)
    context, token = request_context.begin("/persistent/")
    try:
        yield context
    finally:
        request_context.end(context, token)
        request_finished.send(sender=None)


def test_created_in_use_reused_and_closed(persistent_alias):
    wrapper = persistent_alias
    assert wrapper.pool is None
    with request():
        query(wrapper)
        snap = snapshot(wrapper)
        assert snap.kind == "persistent"
        assert snap.counters.connections_created == 1
        assert snap.gauges.active == 1 and snap.gauges.open == 1
    snap = snapshot(wrapper)
    assert snap.gauges.active == 0 and snap.gauges.open == 1  # kept open (persistent)
    assert snap.counters.checkouts == 1 and snap.hold.count == 1
    # The next request reuses it: no new connection.
    with request():
        query(wrapper)
    snap = snapshot(wrapper)
    assert snap.counters.connections_created == 1 and snap.counters.checkouts == 2
    assert snap.gauges.oldest_age_seconds > 0
    wrapper.close()
    snap = snapshot(wrapper)
    assert snap.counters.connections_closed == 1 and snap.gauges.open == 0
    assert snap.config["conn_max_age"] == 60


def test_closed_for_age_counts_as_recycled(persistent_alias):
    wrapper = persistent_alias
    wrapper.settings_dict["CONN_MAX_AGE"] = 0.2
    with request():
        query(wrapper)
    time.sleep(0.3)
    # What Django's close_old_connections does for a configured alias at request start:
    wrapper.close_if_unusable_or_obsolete()
    with request():
        pass
    counters = snapshot(wrapper).counters
    assert counters.connections_closed == 1 and counters.recycled == 1


def test_a_connection_opened_on_another_thread_is_booked_to_the_request(persistent_alias):
    """As under ASGI, where a request's ORM work runs on a thread of its own: the connection that
    thread opens is in use by the request until the request ends, though that thread never sees
    request_started or request_finished."""
    wrapper = persistent_alias
    seen: dict[str, int] = {}

    def orm_on_a_worker_thread() -> None:
        # This thread's own wrapper of the alias, as Django's per-thread connections give it.
        worker = type(wrapper)(wrapper.settings_dict, wrapper.alias)
        query(worker)
        seen["active"] = snapshot(wrapper).gauges.active
        worker.close()  # the worker thread's end: its connection is closed, not left behind

    with request():
        thread = threading.Thread(target=contextvars.copy_context().run, args=(orm_on_a_worker_thread,))
        thread.start()
        thread.join()
        during = snapshot(wrapper)
    after = snapshot(wrapper)
    assert seen["active"] == 1 and during.counters.checkouts == 1
    assert after.gauges.active == 0 and after.hold.count == 1
