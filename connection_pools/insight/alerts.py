"""Alerts: a ``pool_alert`` signal and a warning log for each NEW high-severity finding.

A finding is identified by its pool and rule. It is announced once when it appears, not
at every look, and again only after it has gone away and come back. The deduplication
is per process, and across processes through the cluster store (so three workers looking
at the same view send one alert); without Redis, each process alerts on its own. The
background job (:func:`job`) looks even when nobody reads the API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from ..cluster.store import StoreUnavailable, store
from ..core.reports import Recommendation
from ..core.runtime import runtime

logger = logging.getLogger("connection_pools.alerts")

#: Seconds a cluster-wide "already announced" mark lives without being refreshed.
ALERT_TTL = 600


class _Announced:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: set[str] = set()


_announced = _Announced()


def notify(recommendations: Iterable[Recommendation]) -> list[Recommendation]:
    """Announce the high-severity findings that are new; returns the ones announced now."""
    from ..signals import pool_alert

    high = {rec.finding: rec for rec in recommendations if rec.severity == "high"}
    with _announced.lock:
        new = [key for key in high if key not in _announced.active]
        gone = [key for key in _announced.active if key not in high]
        _announced.active.difference_update(gone)
        _announced.active.update(new)
    still = [key for key in high if key not in new]
    claimed: dict[str, bool] = {}
    if new or still or gone:
        try:
            claimed = store.claim_alerts(new, still, gone, ALERT_TTL)
        except StoreUnavailable:
            claimed = dict.fromkeys(new, True)  # no shared memory: announce locally
    announced = []
    for key in new:
        if not claimed.get(key, True):
            continue  # another process announced it already
        rec = high[key]
        logger.warning("connection pool alert: %s - %s: %s", rec.pool, rec.issue, rec.suggestion)
        pool_alert.send(sender=__name__, recommendation=rec.to_wire())
        announced.append(rec)
    return announced


def forget() -> None:
    """Forget what this process has announced (tests)."""
    with _announced.lock:
        _announced.active.clear()


runtime.register("insight.alerts", forget, after_fork=True)


def job() -> list[Recommendation]:
    """The background job of a server process: announce what the cluster view calls for."""
    from ..cluster.publish import is_publishing
    from ..cluster.view import read
    from .findings import findings

    if not is_publishing():
        return []
    return notify(findings(read()).recommendations)
