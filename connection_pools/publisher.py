"""Cross-process statistics: each server process publishes its snapshot to Redis.

Every ``PUBLISH_INTERVAL`` seconds (and once more at shutdown) a process writes
``stats.registry.snapshot()`` under ``<KEY_PREFIX>:stats:proc:<host>:<pid>`` with a
TTL of ``SNAPSHOT_TTL`` seconds, so a process that dies drops out by itself, and
notes itself in an index (a sorted set scored by publish time). It is one
pipeline per interval: the same round trip reads the reset epoch and the sizing
that :mod:`connection_pools.tuner` asked for, which the process then honours.

Reset epoch: ``reset-stats`` increments ``<prefix>:stats:epoch`` and records which
pool it reset (``*`` for all) in ``<prefix>:stats:resets``. A process that sees the
epoch move resets its own registry. Readers zero the counters of a snapshot older
than the latest reset at once, so a reset shows cluster-wide without waiting.

Every Redis use of the app itself (publishing, reading, the reset epoch, the tuner's
sizing, history, alert dedup) goes through :func:`call`, on the shared ``main`` pool
(``pools.redis.get_redis("main")``), so ``redis_main`` counts the app's real traffic.
:func:`call` checks out in the pool's fail-fast mode: :data:`SOCKET_TIMEOUT` to wait for
a slot, connect and answer, no retry; after a failure Redis is skipped for
:data:`RETRY_AFTER` seconds. A dead or hung Redis costs at most a fraction of a second
and never raises to the caller. The pool does not decode replies: :func:`call` returns
them decoded (``str``), as callers expect.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from typing import Any

import redis

from . import background, conf, stats
from .pools import redis as redis_pools

logger = logging.getLogger(__name__)

#: Seconds a Redis call of ours may wait for a pool slot, connect, or wait for an answer.
SOCKET_TIMEOUT = 0.5
#: After a failure, Redis is not tried again for this many seconds (a hung Redis
#: must not cost every stats request its timeout).
RETRY_AFTER = 2.0
ALL_POOLS = "*"

_down_until = 0.0

_state_lock = threading.Lock()
_epoch_seen: int | None = None  # the reset epoch this process has honoured
_published_pid: int | None = None  # pid of the process that has published (fork-aware)


class RedisUnavailable(Exception):
    """Redis could not be reached (or was skipped after a recent failure)."""


# --- the client -------------------------------------------------------------------------
def redis_client() -> redis.Redis:
    """The client on the shared ``main`` Redis pool (``pools.redis.get_redis("main")``).

    Its commands count as ``redis_main`` traffic. It uses the pool's own settings and
    returns raw replies (``bytes``); prefer :func:`call`, which fails fast and decodes.
    """
    return redis_pools.get_redis("main")


def text(value: Any) -> Any:
    """``value`` with every ``bytes`` in it (nested in lists, tuples, sets, dicts) decoded as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(text(item) for item in value)
    return value


def call(func: Any) -> Any:
    """Run ``func(client)`` on the ``main`` pool, failing fast; return its result decoded (:func:`text`).

    Raises :class:`RedisUnavailable` on any Redis error (and skips Redis for
    :data:`RETRY_AFTER` seconds after one). Replies ``func`` reuses itself (e.g. keys
    to build other keys from) are ``bytes``: decode them with :func:`text`.
    """
    global _down_until
    if time.monotonic() < _down_until:
        raise RedisUnavailable("Redis failed moments ago; not retried yet")
    try:
        client = redis_pools.get_redis("main")
    except (ValueError, KeyError) as exc:  # a bad REDIS["main"] setting: degrade, as if down
        _down_until = time.monotonic() + RETRY_AFTER
        raise RedisUnavailable(f"the main Redis pool cannot be built: {exc}") from exc
    try:
        with client.connection_pool.fail_fast(SOCKET_TIMEOUT):
            return text(func(client))
    except (redis.RedisError, OSError) as exc:
        _down_until = time.monotonic() + RETRY_AFTER
        raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from exc


def forget_failure() -> None:
    """Try Redis at the next call even if it failed moments ago (tests, after a restart)."""
    global _down_until
    _down_until = 0.0


# --- keys ---------------------------------------------------------------------------------
def key(*parts: str) -> str:
    """``<KEY_PREFIX>:stats:<parts...>``."""
    return ":".join((conf.get("KEY_PREFIX"), "stats", *parts))


def process_id(host: str | None = None, pid: int | None = None) -> str:
    """``host:pid`` of a process (this one by default)."""
    return f"{host or socket.gethostname()}:{pid or os.getpid()}"


def ttl() -> float:
    return max(float(conf.get("SNAPSHOT_TTL")), 1.0)


def interval() -> float:
    return max(float(conf.get("PUBLISH_INTERVAL")), 0.05)


# --- publishing ---------------------------------------------------------------------------
def is_publishing() -> bool:
    """True in a process that publishes its snapshot (a server process, not a command)."""
    return _published_pid == os.getpid()


def epoch_seen() -> int | None:
    """The reset epoch this process has honoured (None before its first publish)."""
    return _epoch_seen if is_publishing() else None


def local_snapshot() -> dict[str, Any]:
    """This process's snapshot, tagged with the epoch it has honoured."""
    snapshot = stats.registry.snapshot()
    snapshot["epoch"] = epoch_seen() or 0
    return snapshot


def publish() -> dict[str, Any]:
    """Publish this process's snapshot now, and honour a moved reset epoch or a new sizing.

    Returns ``{"published": bool, "epoch": int|None, "reset": [...], "resized": [...]}``;
    never raises because Redis is unavailable.
    """
    global _published_pid
    result: dict[str, Any] = {"published": False, "epoch": None, "reset": [], "resized": []}
    if _published_pid != os.getpid():
        # First publish in this process (or after a fork): adopt the current epoch, reset
        # nothing (a fresh registry holds nothing from before the reset).
        try:
            _adopt_epoch(int(call(lambda c: c.get(key("epoch"))) or 0))
        except RedisUnavailable as exc:
            logger.debug("publishing stats skipped: %s", exc)
            return result
        _published_pid = os.getpid()
    snapshot = local_snapshot()
    member = process_id(snapshot["host"], snapshot["pid"])
    now = time.time()
    life = ttl()

    def write(client: redis.Redis) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.set(key("proc", member), json.dumps(snapshot, separators=(",", ":")), px=int(life * 1000))
        pipe.zadd(key("procs"), {member: now})
        pipe.zremrangebyscore(key("procs"), "-inf", f"({now - life}")
        pipe.expire(key("procs"), math.ceil(life) + 60)
        pipe.get(key("epoch"))
        pipe.hgetall(key("resets"))
        pipe.hgetall(key("sizing"))
        pipe.expire(key("sizing"), math.ceil(life) * 4 + 60)  # the tuner's sizing lives while processes do
        return pipe.execute()

    try:
        replies = call(write)
    except RedisUnavailable as exc:
        logger.debug("publishing stats skipped: %s", exc)
        return result
    result["published"] = True
    epoch, resets, sizing = int(replies[4] or 0), replies[5] or {}, replies[6] or {}
    result["epoch"] = epoch
    result["reset"] = _honour_epoch(epoch, resets)
    from . import tuner

    result["resized"] = tuner.honour_sizing(sizing)
    if result["reset"] or result["resized"]:
        # Show the reset (or new size) at once rather than an interval later.
        try:
            fresh = local_snapshot()
            call(lambda c: c.set(key("proc", member), json.dumps(fresh, separators=(",", ":")),
                                 px=int(life * 1000)))
        except RedisUnavailable:
            pass
    return result


def _adopt_epoch(epoch: int | None) -> None:
    global _epoch_seen
    with _state_lock:
        _epoch_seen = epoch


def _honour_epoch(epoch: int, resets: dict[str, str]) -> list[str]:
    """Reset this process's registry for every reset after the epoch it has seen."""
    global _epoch_seen
    with _state_lock:
        seen = _epoch_seen
        _epoch_seen = epoch
    if seen is None or epoch <= seen:
        return []  # first sight (a fresh registry needs no reset), or nothing new
    pools = {resets.get(str(number)) for number in range(seen + 1, epoch + 1)}
    if None in pools or ALL_POOLS in pools:
        stats.registry.reset()  # a reset record expired: reset everything to be safe
        logger.info("stats reset (epoch %s): every pool", epoch)
        return [ALL_POOLS]
    for pool in sorted(p for p in pools if p):
        stats.registry.reset(pool)
    logger.info("stats reset (epoch %s): %s", epoch, ", ".join(sorted(p for p in pools if p)))
    return sorted(p for p in pools if p)


def request_reset(pool: str | None) -> int:
    """Record a cluster-wide reset of ``pool`` (None: all); returns the new epoch.

    Raises :class:`RedisUnavailable` when Redis cannot be reached.
    """
    def write(client: redis.Redis) -> int:
        epoch = int(client.incr(key("epoch")))
        pipe = client.pipeline(transaction=False)
        pipe.hset(key("resets"), str(epoch), pool or ALL_POOLS)
        pipe.expire(key("resets"), math.ceil(ttl()) * 4 + 3600)
        pipe.execute()
        return epoch

    global _epoch_seen
    epoch = call(write)
    # This process resets now (the caller does) and must not reset again at its next publish.
    if is_publishing():
        with _state_lock:
            if _epoch_seen is not None and _epoch_seen == epoch - 1:
                _epoch_seen = epoch
    return epoch


# --- reading -----------------------------------------------------------------------------------
def read_cluster() -> dict[str, Any]:
    """Every live process's snapshot from Redis, with the reset records.

    ``{"snapshots": [...], "epoch": int, "resets": {epoch: pool}}``; raises
    :class:`RedisUnavailable`. Snapshots older than ``SNAPSHOT_TTL`` are excluded.
    """
    now = time.time()

    def read(client: redis.Redis) -> tuple[list[str], list[Any]]:
        pipe = client.pipeline(transaction=False)
        pipe.zrangebyscore(key("procs"), now - ttl(), "+inf")
        pipe.get(key("epoch"))
        pipe.hgetall(key("resets"))
        members, epoch, resets = pipe.execute()
        raw = client.mget([key("proc", text(m)) for m in members]) if members else []
        return members, [epoch, resets, raw]

    _members, (epoch, resets, raw) = call(read)
    snapshots = []
    for item in raw:
        if not item:
            continue  # expired between the two reads: the process is gone
        try:
            snapshots.append(json.loads(item))
        except ValueError:
            logger.warning("ignoring an unreadable stats snapshot in Redis")
    return {"snapshots": snapshots, "epoch": int(epoch or 0), "resets": {int(k): v for k, v in resets.items()}}


def clear() -> None:
    """Delete every published snapshot and reset record under our prefix (tests)."""
    def wipe(client: redis.Redis) -> None:
        keys = list(client.scan_iter(match=key("*"), count=500))
        if keys:
            client.delete(*keys)

    call(wipe)


def at_shutdown() -> None:
    """Publish a last snapshot as the process stops (its numbers stay for ``SNAPSHOT_TTL``)."""
    if is_publishing():
        publish()


@background.every(interval, name="connection_pools.publish")
def _publish_job() -> None:
    publish()
