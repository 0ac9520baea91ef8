"""Persistent-connection mode (CONN_MAX_AGE > 0, no pool): statistics from Django's signals."""

from __future__ import annotations

import time

import pytest
from django.core.signals import request_finished, request_started

from connection_pools.conf.aliases import spec_of
from connection_pools.sources.persistent import PersistentSource
from tests.support.pg import (
    dispose,
    make_wrapper,
    quiet_background,  # noqa: F401 - fixture
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


def test_created_in_use_reused_and_closed(persistent_alias):
    wrapper = persistent_alias
    assert wrapper.pool is None
    request_started.send(sender=None)
    query(wrapper)
    snap = snapshot(wrapper)
    assert snap.kind == "persistent"
    assert snap.counters.connections_created == 1
    assert snap.gauges.active == 1 and snap.gauges.size == 1
    request_finished.send(sender=None)
    snap = snapshot(wrapper)
    assert snap.gauges.active == 0 and snap.gauges.size == 1  # kept open (persistent)
    assert snap.counters.checkouts == 1 and snap.hold.count == 1
    # The next request reuses it: no new connection.
    request_started.send(sender=None)
    query(wrapper)
    request_finished.send(sender=None)
    snap = snapshot(wrapper)
    assert snap.counters.connections_created == 1 and snap.counters.checkouts == 2
    assert snap.gauges.oldest_age_seconds > 0
    wrapper.close()
    snap = snapshot(wrapper)
    assert snap.counters.connections_closed == 1 and snap.gauges.size == 0
    assert snap.config["conn_max_age"] == 60


def test_closed_for_age_counts_as_recycled(persistent_alias):
    wrapper = persistent_alias
    wrapper.settings_dict["CONN_MAX_AGE"] = 0.2
    request_started.send(sender=None)
    query(wrapper)
    request_finished.send(sender=None)
    time.sleep(0.3)
    # What Django's close_old_connections does for a configured alias at request start:
    wrapper.close_if_unusable_or_obsolete()
    request_started.send(sender=None)
    request_finished.send(sender=None)
    counters = snapshot(wrapper).counters
    assert counters.connections_closed == 1 and counters.recycled == 1
