"""Alerts: a ``pool_alert`` signal and a warning log for each NEW high-severity finding.

A finding is identified by its pool and rule. It is announced once when it appears,
not at every poll, and again only after it has gone away and come back. The
deduplication is per process, and across processes through a Redis ``SET NX``
(so three workers polling the same aggregate send one alert); without Redis, each
process alerts on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from . import publisher

logger = logging.getLogger("connection_pools.alerts")

#: Seconds a cluster-wide "already announced" mark lives without being refreshed.
ALERT_TTL = 600

_lock = threading.Lock()
_active: set[str] = set()


def finding_id(rec: dict[str, Any]) -> str:
    """The identity of a finding: ``<pool>|<rule>``."""
    return f"{rec.get('pool')}|{rec.get('rule') or rec.get('issue')}"


def notify(recommendations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Announce the high-severity findings that are new; returns the ones announced now."""
    from .signals import pool_alert

    high = {finding_id(rec): rec for rec in recommendations if rec.get("severity") == "high"}
    with _lock:
        new = [key for key in high if key not in _active]
        gone = [key for key in _active if key not in high]
        _active.difference_update(gone)
        _active.update(new)
    claimed = _claim(new, still=[key for key in high if key not in new], gone=gone)
    announced = []
    for key in new:
        if not claimed.get(key, True):
            continue  # another process announced it already
        rec = high[key]
        logger.warning("connection pool alert: %s - %s: %s", rec.get("pool"), rec.get("issue"), rec.get("suggestion"))
        pool_alert.send(sender=__name__, recommendation=rec)
        announced.append(rec)
    return announced


def _claim(new: list[str], *, still: list[str], gone: list[str]) -> dict[str, bool]:
    """Cluster-wide dedup: ``{key: True}`` for the new findings this process should announce."""
    if not (new or still or gone):
        return {}

    def run(client: Any) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for key in new:
            pipe.set(publisher.key("alert", key), 1, nx=True, ex=ALERT_TTL)
        for key in still:
            pipe.expire(publisher.key("alert", key), ALERT_TTL)
        for key in gone:
            pipe.delete(publisher.key("alert", key))
        return pipe.execute()

    try:
        replies = publisher.call(run)
    except publisher.RedisUnavailable:
        return dict.fromkeys(new, True)  # no shared memory: announce locally
    return {key: bool(reply) for key, reply in zip(new, replies, strict=False)}


def forget() -> None:
    """Forget what this process has announced (tests)."""
    with _lock:
        _active.clear()
