"""Checked-out connections of one pool: who holds them since when, and long holds (leaks).

A lease keeps the request a checkout belongs to, so a long hold or a leak names the
request path and view even when the connection comes back after the middleware has
finished (Django returns pooled connections on ``request_finished``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from time import monotonic
from typing import Any

from django.core.signals import setting_changed

from ... import conf
from ...core.context import RequestContext
from ...core.snapshots import Hold

logger = logging.getLogger("connection_pools.postgres")


@dataclass(slots=True)
class Lease:
    """One checked-out connection."""

    since: float
    request: RequestContext | None
    conn: Any
    reported: bool = False


_threshold: list[float] = []


def long_hold_threshold() -> float:
    """``LONG_HOLD_SECONDS``, cached (read on every return) until the setting changes."""
    if not _threshold:
        _threshold.append(float(conf.get("LONG_HOLD_SECONDS")))
    return _threshold[0]


def _forget_threshold(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONNECTION_POOLS":
        _threshold.clear()


setting_changed.connect(_forget_threshold, dispatch_uid="connection_pools.postgres.threshold")


class Leases:
    """The leases of one pool, keyed by connection identity."""

    def __init__(self, pool_name: str) -> None:
        self.pool_name = pool_name
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()  # only for the long-hold report racing a return

    def __len__(self) -> int:
        return len(self._leases)

    def add(self, conn: Any, since: float, request: RequestContext | None) -> None:
        """``conn`` was handed out at ``since`` for ``request``."""
        self._leases[id(conn)] = Lease(since, request, conn)

    def pop(self, conn: Any) -> Lease | None:
        """The lease of ``conn`` (removed), or None when ``conn`` is not out of this pool."""
        # A lease holds its connection, so no other live object can share its id.
        return self._leases.pop(id(conn), None)

    def connections(self) -> list[Any]:
        """The connections out right now."""
        return [lease.conn for lease in list(self._leases.values())]

    def clear(self) -> None:
        self._leases.clear()

    def returned(self, lease: Lease, now: float) -> tuple[float, bool]:
        """``(hold seconds, is a long hold not reported yet)`` for a lease just popped."""
        hold = now - lease.since
        if hold < long_hold_threshold():
            return hold, False
        with self._lock:
            first = not lease.reported
            lease.reported = True
        return hold, first

    def report_long_holds(self) -> list[tuple[Lease, float]]:
        """The leases held past the threshold and not reported yet (marked reported now)."""
        threshold = long_hold_threshold()
        now = monotonic()
        found = []
        for lease in list(self._leases.values()):
            if now - lease.since < threshold or lease.reported:
                continue
            with self._lock:
                if lease.reported:
                    continue
                lease.reported = True
            found.append((lease, now - lease.since))
        return found

    def holds(self, now: float, most: int = 10) -> tuple[Hold, ...]:
        """The connections out longer than the threshold at ``now``, longest first, with their requests."""
        threshold = long_hold_threshold()
        found = sorted(((now - lease.since, lease) for lease in list(self._leases.values())
                        if now - lease.since >= threshold), key=lambda item: -item[0])[:most]
        return tuple(Hold(backend_pid=lease.conn.info.backend_pid, seconds=round(held, 3),
                          request=lease.request.label if lease.request is not None else None,
                          view=lease.request.view if lease.request is not None else None)
                     for held, lease in found)

    def log_long_hold(self, lease: Lease, hold: float) -> None:
        """One warning line naming the holder."""
        who = lease.request.label if lease.request is not None else "code outside a web request"
        logger.warning("pool %s: a connection has been held for %.1f s (threshold %.1f s) by %s",
                       self.pool_name, hold, long_hold_threshold(), who)
