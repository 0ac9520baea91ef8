"""Publishing: each server process stores its snapshot in the cluster store, and honours resets.

Every ``PUBLISH_INTERVAL`` seconds (and once more at shutdown) a process publishes the
snapshot of every source in its registry; the same round trip returns the reset epoch. A
process that sees the epoch move resets the sources named by the resets since the epoch it
had honoured (or every source when a record expired), then publishes again so the reset
shows at once. Readers zero the counters of a snapshot older than the latest reset, so a
reset shows cluster-wide without waiting for every process.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from ..core.runtime import runtime
from ..sources.base import registry
from .store import ALL_POOLS, Resets, StoreUnavailable, store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one :func:`publish` did."""

    published: bool
    epoch: int | None
    reset: tuple[str, ...] = ()


class _State:
    """The epoch this process has honoured, and whether it publishes at all (a server process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.epoch_seen: int | None = None
        self.pid: int | None = None


_state = _State()


def is_publishing() -> bool:
    """True in a process that publishes its snapshot (a server process, not a command)."""
    return _state.pid == os.getpid()


def epoch_seen() -> int:
    return (_state.epoch_seen or 0) if is_publishing() else 0


def publish() -> PublishResult:
    """Publish this process's snapshot now and honour a moved reset epoch; never raises for Redis."""
    if not is_publishing():
        # First publish here (or after a fork): adopt the current epoch, reset nothing
        # (a fresh process holds nothing from before the reset).
        try:
            resets = store.resets()
        except StoreUnavailable as exc:
            logger.debug("publishing skipped: %s", exc)
            return PublishResult(False, None)
        with _state.lock:
            _state.epoch_seen, _state.pid = resets.epoch, os.getpid()
    try:
        resets = store.publish(registry.snapshot(epoch=epoch_seen()))
    except StoreUnavailable as exc:
        logger.debug("publishing skipped: %s", exc)
        return PublishResult(False, None)
    reset = honour(resets)
    if reset:
        try:  # show the reset at once rather than an interval later
            store.publish(registry.snapshot(epoch=epoch_seen()))
        except StoreUnavailable:
            pass
    return PublishResult(True, resets.epoch, reset)


def honour(resets: Resets) -> tuple[str, ...]:
    """Reset this process's sources for every reset after the epoch it has honoured."""
    with _state.lock:
        seen, _state.epoch_seen = _state.epoch_seen, max(resets.epoch, _state.epoch_seen or 0)
    if seen is None or resets.epoch <= seen:
        return ()
    pools = {resets.pools.get(number) for number in range(seen + 1, resets.epoch + 1)}
    if None in pools or ALL_POOLS in pools:
        registry.reset()  # a reset record expired: reset everything to be safe
        logger.info("stats reset (epoch %s): every pool", resets.epoch)
        return (ALL_POOLS,)
    names = tuple(sorted(p for p in pools if p))
    for name in names:
        registry.reset(name)
    logger.info("stats reset (epoch %s): %s", resets.epoch, ", ".join(names))
    return names


def reset_cluster(pool: str | None) -> int:
    """Ask every process to reset ``pool`` (None: all); this process resets now. The new epoch.

    Raises :class:`~.store.StoreUnavailable` when Redis cannot be reached.
    """
    epoch = store.request_reset(pool)
    registry.reset(pool)
    if is_publishing():
        with _state.lock:
            if _state.epoch_seen is not None and _state.epoch_seen == epoch - 1:
                _state.epoch_seen = epoch  # reset already: not again at the next publish
    return epoch


def at_shutdown() -> None:
    """A last snapshot as the process stops (its numbers stay for ``SNAPSHOT_TTL``)."""
    if is_publishing():
        publish()


def forget() -> None:
    """Start over as a process that has not published (tests)."""
    with _state.lock:
        _state.epoch_seen, _state.pid = None, None


runtime.register("cluster.publish", forget, after_fork=True)
