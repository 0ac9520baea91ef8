"""Checked-out connections of one pool: who holds them since when, and long holds (leaks).

A lease keeps the request a checkout belongs to, so a long hold or a leak names the
request path and view even when the connection comes back after the middleware has
finished (Django returns pooled connections on ``request_finished``).
"""

from __future__ import annotations

import logging
import threading
from time import monotonic
from typing import Any, TypeAlias

from django.core.signals import setting_changed

from ... import conf
from ...core.context import RequestContext
from ...core.snapshots import Hold

#: The server backend pid, recorded on a connection when the pool opens it: ``conn.info.backend_pid``
#: raises once its user has closed the connection (``conn.close()``), and the pool still has to
#: account for it then.
BACKEND_PID = "cp_backend_pid"


#: Seconds the current holder of a connection has spent executing statements on it: added by the cursor
#: wrapper (:mod:`.metered`) and the engine's commit/rollback, taken (popped) by the pool at each return.
QUERY_SECONDS = "cp_query_seconds"


def add_query_time(conn: Any, seconds: float) -> None:
    """Book ``seconds`` of statement execution to ``conn``'s current hold (no-op for None)."""
    if conn is not None:
        booked = conn.__dict__  # (dict operations: this runs for every statement)
        booked[QUERY_SECONDS] = booked.get(QUERY_SECONDS, 0.0) + seconds



def backend_pid_of(conn: Any) -> int | None:
    """The backend pid the pool recorded for ``conn`` (None for a connection it did not open)."""
    pid = getattr(conn, BACKEND_PID, None)
    return pid if isinstance(pid, int) else None

logger = logging.getLogger("connection_pools.postgres")


#: One checked-out connection: ``(since, request, connection)``, a plain tuple because one is
#: made on every checkout (``since`` is ``time.monotonic()``; ``request`` None outside one).
Lease: TypeAlias = "tuple[float, RequestContext | None, Any]"


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


class Leases(dict[int, Lease]):
    """The leases of one pool: a dict from ``id(connection)`` to its :data:`Lease`.

    The pool adds one per checkout (``leases[id(conn)] = (since, request, conn)``, a dict
    store and nothing more) and ends it with :meth:`end`. A lease holds its connection, so
    no other live object can share its id.
    """

    def __init__(self, pool_name: str) -> None:
        super().__init__()
        self.pool_name = pool_name
        #: ids of leases whose long hold was already logged (a hold is reported once).
        self._reported: set[int] = set()
        self._lock = threading.Lock()  # only for the long-hold report racing a return

    def end(self, conn: Any, now: float) -> tuple[Lease, float, bool] | None:
        """``conn`` came back at ``now``: ``(its lease, hold seconds, a long hold not reported
        yet)``, the lease removed; None when ``conn`` is not out of this pool."""
        key = id(conn)
        lease = self.pop(key, None)
        if lease is None:
            return None
        hold = now - lease[0]
        if hold < long_hold_threshold():
            if self._reported:  # reported under a lower threshold since changed
                self._reported.discard(key)
            return lease, hold, False
        with self._lock:
            first = key not in self._reported
            self._reported.discard(key)
        return lease, hold, first

    def connections(self) -> list[Any]:
        """The connections out right now."""
        return [lease[2] for lease in list(self.values())]

    def clear(self) -> None:
        super().clear()
        self._reported.clear()

    def report_long_holds(self) -> list[tuple[Lease, float]]:
        """The leases held past the threshold and not reported yet (marked reported now)."""
        threshold = long_hold_threshold()
        now = monotonic()
        found = []
        for key, lease in list(self.items()):
            if now - lease[0] < threshold:
                continue
            with self._lock:
                if key in self._reported or key not in self:
                    continue
                self._reported.add(key)
            found.append((lease, now - lease[0]))
        return found

    def holds(self, now: float, most: int = 10) -> tuple[Hold, ...]:
        """The connections out longer than the threshold at ``now``, longest first, with their requests."""
        threshold = long_hold_threshold()
        found = sorted(((now - lease[0], lease) for lease in list(self.values()) if now - lease[0] >= threshold),
                       key=lambda item: -item[0])[:most]
        return tuple(Hold(backend_pid=pid, seconds=round(held, 3),
                          request=request.label if request is not None else None,
                          view=request.view if request is not None else None)
                     for held, (_since, request, conn) in found if (pid := backend_pid_of(conn)) is not None)

    def log_long_hold(self, lease: Lease, hold: float) -> None:
        """One warning line naming the holder."""
        request = lease[1]
        who = request.label if request is not None else "code outside a web request"
        logger.warning("pool %s: a connection has been held for %.1f s (threshold %.1f s) by %s",
                       self.pool_name, hold, long_hold_threshold(), who)
