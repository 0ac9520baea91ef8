"""The cluster store: the shared state of every server process, in Redis, behind typed verbs.

This module alone owns that Redis traffic: its own small client pool (not the app's
``redis_main``), short timeouts with no retry, a breaker (after a failure Redis is not
asked again for ``STORE["RETRY_AFTER"]`` seconds, so a dead or hung Redis costs a
request nothing), and the key namespace ``<KEY_PREFIX>:<version>:...``. Every verb raises
:class:`StoreUnavailable` when Redis cannot answer; none returns partial data silently.

Keys (all under the namespace):

==============================  ===================================================
``proc:<host>:<pid>``           a process's latest snapshot (TTL ``SNAPSHOT_TTL``)
``procs``                       sorted set: process -> last publish time
``epoch`` / ``resets``          the reset epoch, and which pool each epoch reset
``rollup`` / ``rollup:hosts``   the merged cluster view, and its per-host subtotals
``health``                      the latest health result (any process's job)
``reports``                     server-tier reports (census, PgBouncer) by key, the freshest kept
``seen``                        sorted set: process -> last publish time, kept a day (the census's
                                "stopped reporting")
``sizing``                      the tuner's sizing, which every process adopts
``lease:<name>``                one process at a time (the rollup job)
``slot:<name>:<n>``             one claim per time slot (history, tuner, health)
``alert:<finding>``             an announced alert (deduplication across processes)
``history:...``                 the dashboard's time series
==============================  ===================================================
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from .. import conf
from ..core.runtime import runtime
from ..core.snapshots import ProcessSnapshot

logger = logging.getLogger(__name__)

#: The layout of the keys; a new layout reads nothing a process of the old one wrote.
SCHEMA = "v2"
ALL_POOLS = "*"
#: How long the ``seen`` set remembers a process that published (seconds).
SEEN_SECONDS = 86400.0
#: The hash field beside each report that holds its ``taken_at``.
TAKEN_AT = "@taken_at"

T = TypeVar("T")


class StoreUnavailable(Exception):
    """Redis could not be reached, or was skipped after a recent failure."""


@dataclass(frozen=True, slots=True)
class Resets:
    """The reset epoch and which pool each epoch reset (``*``: every pool)."""

    epoch: int
    pools: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class ClusterRead:
    """Every live process's snapshot, with the resets to apply to them."""

    snapshots: tuple[ProcessSnapshot, ...]
    resets: Resets


def _settings() -> dict[str, Any]:
    store = dict(conf.get("STORE"))
    if not store.get("URL"):
        store["URL"] = (conf.get("REDIS").get("main") or {}).get("url")
    return store


def configured() -> bool:
    """True when the store has a Redis to use (``STORE["URL"]``, the main Redis pool's, or the project's
    Redis cache); without one every process keeps its own statistics (check ``connection_pools.W401``)."""
    return bool(_settings()["URL"])


class ClusterStore:
    """The typed verbs over the cluster's shared state (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: tuple[tuple[Any, ...], redis.Redis] | None = None
        self._down_until = 0.0

    # -- the client and the breaker -------------------------------------------------------------
    def _redis(self) -> redis.Redis:
        store = _settings()
        key = (store["URL"], store["SOCKET_TIMEOUT"], store["MAX_CONNECTIONS"])
        current = self._client
        if current is not None and current[0] == key:
            return current[1]
        with self._lock:
            if self._client is None or self._client[0] != key:
                timeout = float(store["SOCKET_TIMEOUT"])
                pool = redis.BlockingConnectionPool.from_url(
                    store["URL"], max_connections=int(store["MAX_CONNECTIONS"]), timeout=timeout,
                    socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False, health_check_interval=0, decode_responses=True,
                )
                if self._client is not None:
                    self._client[1].connection_pool.disconnect()
                self._client = (key, redis.Redis(connection_pool=pool))
            return self._client[1]

    def call(self, func: Callable[[redis.Redis], T]) -> T:
        """Run ``func(client)``; :class:`StoreUnavailable` on any Redis error (and the breaker opens)."""
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis failed moments ago; not asked again yet")
        if not configured():
            raise StoreUnavailable("no Redis is configured for the shared statistics")
        try:
            client = self._redis()
            return func(client)
        except (redis.RedisError, OSError, ValueError) as exc:
            self._down_until = time.monotonic() + float(_settings()["RETRY_AFTER"])
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def forget_failure(self) -> None:
        """Ask Redis at the next call even if it failed moments ago (tests, after a restart)."""
        self._down_until = 0.0

    def close(self) -> None:
        """Disconnect (at shutdown, and when the settings change)."""
        with self._lock:
            if self._client is not None:
                self._client[1].connection_pool.disconnect()
                self._client = None

    def reset(self) -> None:
        """As at start-up: no client, no open breaker."""
        self.close()
        self.forget_failure()

    # -- keys ----------------------------------------------------------------------------------------
    @staticmethod
    def key(*parts: str) -> str:
        return ":".join((conf.get("KEY_PREFIX"), SCHEMA, *parts))

    @staticmethod
    def snapshot_ttl() -> float:
        return max(float(conf.get("SNAPSHOT_TTL")), 1.0)

    # -- snapshots ----------------------------------------------------------------------------------
    def publish(self, snapshot: ProcessSnapshot) -> Resets:
        """Store this process's snapshot (with its TTL) and return the current resets, in one round trip."""
        life = self.snapshot_ttl()
        now = time.time()
        member = snapshot.key
        payload = json.dumps(snapshot.to_wire(), separators=(",", ":"))

        def write(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.set(self.key("proc", member), payload, px=int(life * 1000))
            pipe.zadd(self.key("procs"), {member: now})
            pipe.zremrangebyscore(self.key("procs"), "-inf", f"({now - life}")
            pipe.expire(self.key("procs"), math.ceil(life) + 60)
            pipe.get(self.key("epoch"))
            pipe.hgetall(self.key("resets"))
            pipe.zadd(self.key("seen"), {member: now})
            pipe.zremrangebyscore(self.key("seen"), "-inf", f"({now - SEEN_SECONDS}")
            pipe.expire(self.key("seen"), int(SEEN_SECONDS) + 60)
            return pipe.execute()

        replies = self.call(write)
        return _resets(replies[4], replies[5])

    def seen(self, since: float) -> dict[str, float]:
        """Processes (``host:pid``) that published since ``since``, with their last publish time."""
        def read(client: redis.Redis) -> list[Any]:
            return list(client.zrangebyscore(self.key("seen"), since, "+inf", withscores=True))

        return {_decoded(member): float(score) for member, score in self.call(read)}

    def read_snapshots(self) -> ClusterRead:
        """Every live process's snapshot (older than ``SNAPSHOT_TTL``: gone) and the resets."""
        now = time.time()
        life = self.snapshot_ttl()

        def read(client: redis.Redis) -> tuple[list[Any], Any, Any]:
            pipe = client.pipeline(transaction=False)
            pipe.zrangebyscore(self.key("procs"), now - life, "+inf")
            pipe.get(self.key("epoch"))
            pipe.hgetall(self.key("resets"))
            members, epoch, resets = pipe.execute()
            raw = client.mget([self.key("proc", m) for m in members]) if members else []
            return raw, epoch, resets

        raw, epoch, resets = self.call(read)
        snapshots = []
        for item in raw:
            if not item:
                continue  # expired between the two reads: the process is gone
            try:
                snapshot = ProcessSnapshot.from_wire(json.loads(item))
            except ValueError:
                snapshot = None
            if snapshot is None:
                logger.warning("ignoring an unreadable process snapshot in Redis")
                continue
            snapshots.append(snapshot)
        return ClusterRead(tuple(snapshots), _resets(epoch, resets))

    def forget_process(self, member: str) -> None:
        """Drop a process's snapshot now (a worker that exits cleanly may keep it for its TTL instead)."""

        def drop(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.delete(self.key("proc", member))
            pipe.zrem(self.key("procs"), member)
            pipe.execute()

        self.call(drop)

    # -- resets --------------------------------------------------------------------------------------
    def request_reset(self, pool: str | None) -> int:
        """Record a cluster-wide reset of ``pool`` (None: every pool); the new epoch. The rollup is dropped,
        so readers merge with the reset applied until the next rollup."""

        def write(client: redis.Redis) -> int:
            epoch = int(client.incr(self.key("epoch")))
            pipe = client.pipeline(transaction=False)
            pipe.hset(self.key("resets"), str(epoch), pool or ALL_POOLS)
            pipe.expire(self.key("resets"), math.ceil(self.snapshot_ttl()) * 4 + 3600)
            pipe.delete(self.key("rollup"), self.key("rollup", "hosts"))
            pipe.execute()
            return epoch

        return self.call(write)

    def resets(self) -> Resets:
        return self.call(lambda c: _resets(c.get(self.key("epoch")), c.hgetall(self.key("resets"))))

    # -- rollup and health ----------------------------------------------------------------------------
    def write_rollup(self, view: str, hosts: str, ttl: float) -> None:
        """Store the merged view and its per-host subtotals (JSON made by the rollup)."""
        px = max(int(ttl * 1000), 1)

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.set(self.key("rollup"), view, px=px)
            pipe.set(self.key("rollup", "hosts"), hosts, px=px)
            pipe.execute()

        self.call(write)

    def read_view(self) -> tuple[str | None, str | None, int, dict[str, str]]:
        """``(rollup, health, epoch, reports)``: the merged view, the latest health result, the reset epoch
        and the server-tier reports (key -> JSON), in one round trip."""

        def read(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get(self.key("rollup"))
            pipe.get(self.key("health"))
            pipe.get(self.key("epoch"))
            pipe.hgetall(self.key("reports"))
            return pipe.execute()

        replies = self.call(read)
        stored: dict[str | bytes, str | bytes] = replies[3] or {}
        reports = {_decoded(k): _decoded(v) for k, v in stored.items() if not _decoded(k).endswith(TAKEN_AT)}
        return _text(replies[0]), _text(replies[1]), _whole(replies[2]), reports

    def write_report(self, key: str, payload: str, *, taken_at: float, ttl: float) -> bool:
        """Store a report unless the store holds a fresher one of the same ``key`` (freshest wins); True
        when stored. The reports expire together ``ttl`` seconds after the last write."""
        px = max(int(ttl * 1000), 1)
        return bool(self.call(lambda c: c.eval(_FRESHEST, 1, self.key("reports"), key, key + TAKEN_AT, payload,
                                               repr(float(taken_at)), px)))

    def read_hosts(self) -> str | None:
        return _text(self.call(lambda c: c.get(self.key("rollup", "hosts"))))

    def write_health(self, health: str, ttl: float) -> None:
        self.call(lambda c: c.set(self.key("health"), health, px=max(int(ttl * 1000), 1)))

    # -- coordination ---------------------------------------------------------------------------------
    def hold_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``owner``, or renew it when ``owner`` holds it; False when another does."""
        px = max(int(ttl * 1000), 1)
        key = self.key("lease", name)

        def claim(client: redis.Redis) -> bool:
            if client.set(key, owner, nx=True, px=px):
                return True
            # Renew only our own lease: compare and extend in one step.
            return bool(client.eval(_RENEW, 1, key, owner, px))

        return self.call(claim)

    def release_lease(self, name: str, owner: str) -> None:
        self.call(lambda c: c.eval(_RELEASE, 1, self.key("lease", name), owner))

    def claim_slot(self, name: str, slot: int, ttl: float) -> bool:
        """True for the first caller in the whole cluster for ``slot`` of ``name`` (``SET NX EX``)."""
        return bool(self.call(lambda c: c.set(self.key("slot", name, str(slot)), 1, nx=True,
                                              ex=max(math.ceil(ttl), 1))))

    # -- sizing ----------------------------------------------------------------------------------------
    def store_sizing(self, sizing: Mapping[str, str]) -> None:
        """Record the tuner's sizing (alias -> JSON) for every process to adopt."""
        life = math.ceil(self.snapshot_ttl()) * 4 + 60
        mapping: dict[FieldT, EncodableT] = {alias: value for alias, value in sizing.items()}  # what hset() takes

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.hset(self.key("sizing"), mapping=mapping)
            pipe.expire(self.key("sizing"), life)
            pipe.execute()

        self.call(write)

    def sizing(self) -> dict[str, str]:
        stored = self.call(lambda c: c.hgetall(self.key("sizing")))
        return {_decoded(alias): _decoded(value) for alias, value in stored.items()}

    # -- alerts -------------------------------------------------------------------------------------------
    def claim_alerts(self, new: list[str], still: list[str], gone: list[str], ttl: int) -> dict[str, bool]:
        """Cluster-wide deduplication: ``{finding: True}`` for the new findings this process announces."""

        def run(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for finding in new:
                pipe.set(self.key("alert", finding), 1, nx=True, ex=ttl)
            for finding in still:
                pipe.expire(self.key("alert", finding), ttl)
            for finding in gone:
                pipe.delete(self.key("alert", finding))
            return pipe.execute()

        replies = self.call(run)
        return {finding: bool(reply) for finding, reply in zip(new, replies, strict=False)}

    # -- history ------------------------------------------------------------------------------------------
    def append_history(self, points: Mapping[str, str], *, now: float, keep_seconds: float, cap: int,
                       series: str = "pool") -> None:
        """Append one JSON point per pool (``series="server"``: per server) at ``now``; trim each series to
        ``keep_seconds`` and ``cap`` points."""
        ttl = math.ceil(keep_seconds) + 60
        index = self.key("history", f"{series}s")

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for pool, point in points.items():
                key = self.key("history", series, pool)
                pipe.zadd(key, {point: now})
                pipe.zremrangebyscore(key, "-inf", f"({now - keep_seconds}")
                pipe.zremrangebyrank(key, 0, -cap - 1)  # keep the newest `cap` points
                pipe.expire(key, ttl)
                pipe.sadd(index, pool)
            pipe.expire(index, ttl)
            pipe.execute()

        self.call(write)

    def read_history(self, pools: Iterable[str] | None, since: float, series: str = "pool") -> dict[str, list[str]]:
        """The JSON points of ``pools`` (None: every pool with history) since ``since``, oldest first."""

        def read(client: redis.Redis) -> dict[str, list[str]]:
            names = sorted(pools) if pools is not None else sorted(self._history_names(client, series))
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.zrangebyscore(self.key("history", series, name), since, "+inf")
            return dict(zip(names, pipe.execute(), strict=True))

        return self.call(read)

    def clear_history(self) -> None:
        """Delete every stored history point (a fresh start after a configuration change, tests)."""

        def wipe(client: redis.Redis) -> None:
            for series in ("pool", "server"):
                keys = [self.key("history", series, name) for name in self._history_names(client, series)]
                client.delete(*keys, self.key("history", f"{series}s"))

        self.call(wipe)

    def _history_names(self, client: redis.Redis, series: str = "pool") -> list[str]:
        return [_decoded(name) for name in client.smembers(self.key("history", f"{series}s"))]

    # -- tests -----------------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every key of our namespace (tests)."""

        def wipe(client: redis.Redis) -> None:
            keys = list(client.scan_iter(match=self.key("*"), count=500))
            if keys:
                client.delete(*keys)

        self.call(wipe)


_FRESHEST = (
    "local t = redis.call('hget', KEYS[1], ARGV[2]) "
    "if t and tonumber(t) >= tonumber(ARGV[4]) then redis.call('pexpire', KEYS[1], ARGV[5]) return 0 end "
    "redis.call('hset', KEYS[1], ARGV[1], ARGV[3], ARGV[2], ARGV[4]) "
    "redis.call('pexpire', KEYS[1], ARGV[5]) return 1"
)
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _decoded(value: str | bytes) -> str:
    # The client decodes replies (decode_responses=True); redis-py's types still allow bytes.
    return value if isinstance(value, str) else value.decode()


def _text(value: object) -> str | None:
    """A string reply, or None when the key does not exist."""
    return _decoded(value) if isinstance(value, str | bytes) else None


def _whole(value: Any) -> int:
    """A counter read from Redis (None when the key does not exist yet)."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else 0


def _resets(epoch: Any, pools: Any) -> Resets:
    recorded = {int(number): str(pool) for number, pool in (pools or {}).items() if str(number).isdigit()}
    return Resets(_whole(epoch), recorded)


#: The store of this process.
store = ClusterStore()
runtime.register("cluster.store", store.reset, after_fork=True)
