"""The rollup: one process at a time merges the whole cluster, so that readers do not have to.

Every publish interval, each server process tries to hold the ``rollup`` lease (a Redis key
with a TTL; the holder renews it). The holder reads every live snapshot once, merges them
(resets applied), and stores the merged view and its per-host subtotals. Readers then read
one key whatever the number of processes (:func:`connection_pools.cluster.view.read`); if
the holder dies, its lease expires and another process takes over within a few intervals.
"""

from __future__ import annotations

import os
import socket
import time

from .. import conf
from .store import StoreUnavailable, store
from .view import host_subtotals, hosts_to_json, merge, rollup_max_age

LEASE = "rollup"


def owner() -> str:
    """This process's name on the lease."""
    return f"{socket.gethostname()}:{os.getpid()}"


def interval() -> float:
    return max(float(conf.get("PUBLISH_INTERVAL")), 0.05)


def roll_up() -> bool:
    """Merge and store the cluster view if this process holds the lease; True when it did."""
    try:
        if not store.hold_lease(LEASE, owner(), ttl=rollup_max_age()):
            return False
        cluster = store.read_snapshots()
        now = time.time()
        view = merge(cluster.snapshots, cluster.resets, now=now)
        hosts = host_subtotals(cluster.snapshots, cluster.resets, now=now)
        store.write_rollup(view.to_json(), hosts_to_json(hosts), ttl=rollup_max_age())
        return True
    except StoreUnavailable:
        return False


def release() -> None:
    """Give the lease up (at shutdown), so another process takes over at once."""
    try:
        store.release_lease(LEASE, owner())
    except StoreUnavailable:
        pass
