"""The replica set of this process: health, cool-down, lag and balancing.

* Health and lag are **sampled** by a background job every ``LAG_SAMPLE_INTERVAL``
  seconds on a dedicated short-lived connection with short connect/statement
  timeouts, never per query and never from the request pools (a hung replica
  cannot eat pool slots).
* A replica connection that could not be opened (:func:`mark_failed`, called by the
  engine in every context, see :mod:`connection_pools.backends.postgresql.failover`)
  takes the replica out of rotation at once for ``COOLDOWN_SECONDS``; it returns when a
  sample after the cool-down succeeds, or when one connection attempt after the
  cool-down (:func:`may_connect`, one thread at a time) succeeds (:func:`mark_ok`) --
  so processes without the background sampler (commands, workers) recover too.
* :func:`pick` hands out only replicas in rotation (healthy, out of cool-down,
  lag <= ``MAX_LAG_SECONDS``), round-robin or least-busy by the pools' live
  ``active`` counts.

State is per process (each gunicorn worker samples and fails over on its own).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .. import conf
from ..conf.aliases import PRIMARY, pool_name_for_alias
from ..conf.aliases import replica_aliases as configured_replicas
from ..core.runtime import runtime

logger = logging.getLogger(__name__)

BALANCING_CHOICES = ("round_robin", "least_busy")
_NUMBERS = ("MAX_LAG_SECONDS", "LAG_SAMPLE_INTERVAL", "COOLDOWN_SECONDS", "PIN_SECONDS")


LAG_SQL = """
SELECT pg_is_in_recovery(),
       coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), false),
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
       EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())
"""


# --- settings ------------------------------------------------------------------------
def settings_problems(config: dict[str, Any]) -> list[str]:
    """Human-readable problems in ``CONNECTION_POOLS["REPLICAS"]`` (empty when valid)."""
    problems = []
    if config.get("BALANCING") not in BALANCING_CHOICES:
        problems.append(f"BALANCING is {config.get('BALANCING')!r}; expected one of {', '.join(BALANCING_CHOICES)}.")
    for key in _NUMBERS:
        value = config.get(key)
        bad = isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0
        if not bad and key == "LAG_SAMPLE_INTERVAL" and isinstance(value, int | float) and value <= 0:
            bad = True
        if bad:
            minimum = "> 0" if key == "LAG_SAMPLE_INTERVAL" else ">= 0"
            problems.append(f"{key} is {value!r}; expected a number of seconds {minimum}.")
    cookie = config.get("PIN_COOKIE")
    if not isinstance(cookie, str) or not cookie or not cookie.replace("_", "").replace("-", "").isalnum():
        problems.append(f"PIN_COOKIE is {cookie!r}; expected a cookie name of letters, digits, '-' and '_'.")
    aliases = config.get("ALIASES")
    if aliases is not None:
        if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) for a in aliases):
            problems.append(f"ALIASES is {aliases!r}; expected a list of database aliases or None.")
        else:
            unknown = [a for a in aliases if a not in connections.settings or a == PRIMARY]
            if unknown:
                problems.append(f"ALIASES names {unknown!r}, which are not replica aliases in DATABASES.")
    return problems


_last_valid: dict[str, Any] | None = None  # the last REPLICAS dict found valid


def replica_settings() -> dict[str, Any]:
    """The validated ``REPLICAS`` settings; ImproperlyConfigured names every bad value."""
    global _last_valid
    config: dict[str, Any] = conf.get("REPLICAS")
    # Validated once per settings object, not per request: conf hands out the same dict
    # until a setting_changed signal, and override_settings makes a new one.
    if config is _last_valid:
        return config
    problems = settings_problems(config)
    if problems:
        raise ImproperlyConfigured("CONNECTION_POOLS['REPLICAS']: " + " ".join(problems))
    _last_valid = config
    return config


def replica_aliases() -> list[str]:
    """The replica aliases (``REPLICAS["ALIASES"]``; see :func:`connection_pools.conf.aliases.replica_aliases`)."""
    return configured_replicas()


# --- state ---------------------------------------------------------------------------
@dataclass
class ReplicaState:
    """What this process knows about one replica."""

    alias: str
    healthy: bool = True  # optimistic until a sample or a request says otherwise
    sampled: bool = False
    in_recovery: bool | None = None
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    cooldown_until: float = 0.0  # monotonic
    out_since: float | None = None  # monotonic start of the current out-of-rotation streak
    out_total: float = 0.0  # seconds out of rotation in finished streaks
    last_error: str = ""
    last_sampled_at: float | None = None  # epoch seconds
    failures: int = 0
    #: Reads meant for this replica that another server served (since the last reset).
    fallbacks: int = 0
    #: Times it left the rotation (since the last reset).
    rotation_exits: int = 0
    #: Monotonic time until which one connection attempt after the cool-down is in flight.
    trial_until: float = 0.0

    def rotation(self, now: float, max_lag: float) -> tuple[bool, str]:
        """``(in_rotation, reason)`` with reason ok / cooling_down / down / lagging / lag_unknown."""
        if not self.healthy:
            return False, "cooling_down" if now < self.cooldown_until else "down"
        if self.sampled and self.lag_seconds is None:
            return False, "lag_unknown"
        if self.lag_seconds is not None and self.lag_seconds > max_lag:
            return False, "lagging"
        return True, "ok"

    def due_for_trial(self, now: float) -> bool:
        """Out of rotation for a failure whose cool-down is over, and nobody is trying it yet."""
        return not self.healthy and now >= self.cooldown_until and now >= self.trial_until

    def out_of_rotation_seconds(self, now: float) -> float:
        return self.out_total + (now - self.out_since if self.out_since is not None else 0.0)


_lock = threading.RLock()  # re-entrant: _state() may be called with it held
_states: dict[str, ReplicaState] = {}
_round_robin = itertools.count()


def _state(alias: str) -> ReplicaState:
    state = _states.get(alias)
    if state is None:
        with _lock:
            state = _states.setdefault(alias, ReplicaState(alias))
    return state


def _publish(state: ReplicaState, now: float, max_lag: float) -> None:
    """Record a rotation change (call with ``_lock`` held)."""
    in_rotation, reason = state.rotation(now, max_lag)
    if not in_rotation and state.out_since is None:
        state.out_since = now
        state.rotation_exits += 1
        logger.warning("replica %s out of rotation (%s) %s", state.alias, reason, state.last_error)
    elif in_rotation and state.out_since is not None:
        state.out_total += now - state.out_since
        state.out_since = None
        logger.info("replica %s back in rotation", state.alias)


@dataclass(frozen=True, slots=True)
class ReplicaReading:
    """What the replica set knows about one replica now, for its pool's snapshot."""

    lag_seconds: float | None
    lag_bytes: int | None
    in_rotation: bool
    out_of_rotation_seconds: float
    fallbacks: int
    rotation_exits: int


def reading(alias: str) -> ReplicaReading:
    """The replica's lag, rotation and counts in this process."""
    max_lag = float(conf.get("REPLICAS")["MAX_LAG_SECONDS"])
    now = time.monotonic()
    with _lock:
        state = _state(alias)
        in_rotation, _reason = state.rotation(now, max_lag)
        return ReplicaReading(state.lag_seconds, state.lag_bytes, in_rotation,
                              round(state.out_of_rotation_seconds(now), 3), state.fallbacks, state.rotation_exits)


def reset_counts(alias: str) -> None:
    """Zero the replica's counts (``reset-stats``); its health and rotation are untouched."""
    with _lock:
        state = _state(alias)
        state.fallbacks = 0
        state.rotation_exits = 0

def mark_failed(alias: str, error: BaseException | str) -> None:
    """A connection to ``alias`` failed: out of rotation now, for ``COOLDOWN_SECONDS`` at least."""
    config = replica_settings()
    now = time.monotonic()
    with _lock:
        state = _state(alias)
        state.healthy = False
        state.failures += 1
        state.cooldown_until = now + float(config["COOLDOWN_SECONDS"])
        state.last_error = _describe(error)
        _publish(state, now, float(config["MAX_LAG_SECONDS"]))


def may_connect(alias: str, *, claim: bool = True) -> bool:
    """Whether the engine should try to open a connection to ``alias`` now.

    Yes when it is healthy (lagging too: an explicit ``using`` still reaches it); when it
    failed, not during its cool-down, and after it only for one caller per cool-down
    (``claim`` takes that turn): a down replica costs one failed connect per cool-down
    and process, not one per read.
    """
    state = _state(alias)
    if state.healthy:
        return True
    now = time.monotonic()
    if not state.due_for_trial(now):
        return False
    if not claim:
        return True
    with _lock:
        if not state.due_for_trial(now):
            return False  # another thread took the turn
        state.trial_until = now + max(float(replica_settings()["COOLDOWN_SECONDS"]), 1.0)
    return True


def mark_ok(alias: str) -> None:
    """A connection to ``alias`` was opened: back in rotation if it was out and its cool-down is over."""
    state = _states.get(alias)
    if state is None or state.healthy:
        return  # the hot path: no lock
    now = time.monotonic()
    with _lock:
        if state.healthy or now < state.cooldown_until:
            return
        state.healthy = True
        state.last_error = ""
        state.trial_until = 0.0
        _publish(state, now, float(replica_settings()["MAX_LAG_SECONDS"]))


def fallback_aliases(alias: str) -> list[str]:
    """Where a read meant for ``alias`` goes when ``alias`` cannot serve it: the other replicas
    in rotation, then the primary."""
    max_lag = float(replica_settings()["MAX_LAG_SECONDS"])
    now = time.monotonic()
    others = [other for other in replica_aliases()
              if other != alias and _usable_here(other) and _state(other).rotation(now, max_lag)[0]]
    return [*others, PRIMARY]


def note_fallback(alias: str) -> None:
    """A read meant for ``alias`` went to another server."""
    with _lock:
        _state(alias).fallbacks += 1


def _describe(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return " ".join(str(text).split())[:300]


# --- balancing -----------------------------------------------------------------------
def _usable_here(alias: str) -> bool:
    # Django's test framework replaces ``connect`` of aliases a test did not
    # declare; routing there would only raise, so such an alias is not offered.
    # connections._connections: Django's per-thread wrappers (private, not in django-stubs).
    wrapper = getattr(connections._connections, alias, None)  # type: ignore[attr-defined]
    return wrapper is None or type(wrapper.connect).__name__ != "_DatabaseFailure"


def pick() -> str | None:
    """A replica alias in rotation for the next read, or None (read from the primary).

    The replica the balancing would choose if all were healthy is the one the
    read was "meant for"; when it is out of rotation its ``fallbacks`` counter
    goes up and the next one in rotation takes the read.
    """
    config = replica_settings()  # bad settings are an error at use, with or without replicas
    aliases = [alias for alias in replica_aliases() if _usable_here(alias)]
    if not aliases:
        return None
    now = time.monotonic()
    max_lag = float(config["MAX_LAG_SECONDS"])
    start = next(_round_robin) % len(aliases)
    ordered = aliases[start:] + aliases[:start]
    if config["BALANCING"] == "least_busy":
        # Stable sort: equal counts keep the round-robin order, spreading ties.
        ordered.sort(key=_active)
    # A failed replica whose cool-down is over is offered too: the engine tries it once
    # (may_connect) and serves the read elsewhere if it is still down.
    candidates = [alias for alias in ordered
                  if _state(alias).rotation(now, max_lag)[0] or _state(alias).due_for_trial(now)]
    if not candidates or candidates[0] != ordered[0]:
        note_fallback(ordered[0])
    return candidates[0] if candidates else None


#: How busy an alias is right now (connections in use in this process); set at start-up by the app,
#: which knows the pools (routing sits below them).
load_of: Callable[[str], int] = lambda alias: 0  # noqa: E731


def _active(alias: str) -> int:
    return load_of(alias)


# --- lag sampling --------------------------------------------------------------------
def _probe_params(alias: str, timeout: float) -> dict[str, Any]:
    params = dict(connections[alias].get_connection_params())  # a copy: for a pooled alias it is the pool's own kwargs
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    params["connect_timeout"] = max(2, math.ceil(timeout))  # libpq's minimum is 2 s
    statement_timeout = f"-c statement_timeout={max(int(timeout * 1000), 1)}"
    params["options"] = f"{params.get('options', '')} {statement_timeout}".strip()
    params["application_name"] = "connection_pools.replica_sampler"
    params["autocommit"] = True
    return params


def probe(alias: str) -> tuple[bool, float | None, int | None]:
    """One health/lag probe of ``alias``: ``(in_recovery, lag_seconds, lag_bytes)``.

    Lag is 0 when everything received has been replayed (even if the last
    replayed transaction is old: an idle primary writes nothing), otherwise the
    age of the last replayed transaction. Raises on any connection/query error.
    """
    timeout = float(conf.get("HEALTH_CHECK_TIMEOUT"))
    with psycopg.connect(**_probe_params(alias, timeout)) as conn:
        row = conn.execute(LAG_SQL).fetchone()
    assert row is not None  # a SELECT without FROM returns exactly one row
    in_recovery, caught_up, lag_bytes, replay_age = row
    if not in_recovery:
        return False, 0.0, 0
    if caught_up:
        return True, 0.0, 0
    lag = None if replay_age is None else max(float(replay_age), 0.0)
    return True, lag, None if lag_bytes is None else int(lag_bytes)


def sample(alias: str) -> ReplicaState:
    """Probe one replica now and update its state and gauges."""
    config = replica_settings()
    try:
        in_recovery, lag, lag_bytes = probe(alias)
        error: BaseException | None = None
    except (psycopg.Error, OSError) as exc:
        error = exc
    now = time.monotonic()
    with _lock:
        state = _state(alias)
        state.last_sampled_at = time.time()
        if error is not None:
            state.healthy = False
            state.failures += 1
            state.cooldown_until = max(state.cooldown_until, now + float(config["COOLDOWN_SECONDS"]))
            state.last_error = _describe(error)
        else:
            state.sampled = True
            state.in_recovery, state.lag_seconds, state.lag_bytes = in_recovery, lag, lag_bytes
            if now >= state.cooldown_until:
                state.healthy = True
                state.last_error = ""
        _publish(state, now, float(config["MAX_LAG_SECONDS"]))
    return state


def sample_interval() -> float:
    return float(replica_settings()["LAG_SAMPLE_INTERVAL"])


def sample_all() -> None:
    """The background job: probe every replica (sequentially; each probe is time-boxed)."""
    for alias in replica_aliases():
        sample(alias)


# --- reading ---------------------------------------------------------------------------
def replica_status() -> dict[str, dict[str, Any]]:
    """Per-replica health, lag and rotation of this process, for health endpoints and stats."""
    config = conf.get("REPLICAS")
    max_lag = float(config["MAX_LAG_SECONDS"])
    now = time.monotonic()
    result: dict[str, dict[str, Any]] = {}
    for alias in replica_aliases():
        state = _state(alias)
        in_rotation, reason = state.rotation(now, max_lag)
        result[alias] = {
            "alias": alias,
            "pool": pool_name_for_alias(alias),
            "in_rotation": in_rotation,
            "reason": reason,
            "healthy": state.healthy,
            "sampled": state.sampled,
            "in_recovery": state.in_recovery,
            "lag_seconds": state.lag_seconds,
            "lag_bytes": state.lag_bytes,
            "max_lag_seconds": max_lag,
            "cooldown_remaining_seconds": round(max(state.cooldown_until - now, 0.0), 3),
            "out_of_rotation_seconds": round(state.out_of_rotation_seconds(now), 3),
            "failures": state.failures,
            "fallbacks": state.fallbacks,
            "last_error": state.last_error,
            "last_sampled_at": state.last_sampled_at,
        }
    return result


def reset_state() -> None:
    """Forget everything known about the replicas (tests, after a configuration change)."""
    global _last_valid
    with _lock:
        _states.clear()
        _last_valid = None


runtime.register("replicas", reset_state, after_fork=True)
