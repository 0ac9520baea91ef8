"""Django's cache on the Redis cache pool, degrading to cache misses when Redis is down.

:class:`RedisCache` is django-redis' backend with ``IGNORE_EXCEPTIONS`` reporting an
outage once per interval instead of once per call: with Redis stopped every cache
call of every request would otherwise log a traceback (django-redis'
``DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS``) or nothing at all.

``CACHES["default"]["OPTIONS"]["OUTAGE_LOG_INTERVAL"]`` (seconds, default 60) sets the interval.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from django_redis.cache import RedisCache as DjangoRedisCache

from ...conf.cache_options import POOL_MODULE, instrumented_options

logger = logging.getLogger("connection_pools.cache")  # the name operators filter on

DEFAULT_OUTAGE_LOG_INTERVAL = 60.0


class OutageLogger:
    """Stands in for django-redis' ignored-exceptions logger: one warning per interval.

    django-redis calls ``logger.exception("Exception ignored")`` inside its ``except``
    block for every failed call it turns into a miss; we log the first failure and
    then, at most once per ``interval`` seconds, how many calls failed since.
    """

    def __init__(self, interval: float, target: logging.Logger = logger, name: str = "default") -> None:
        self.interval = float(interval)
        self.target = target
        self.name = name
        self._lock = threading.Lock()
        self._last_logged: float | None = None
        self._suppressed = 0

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Record one ignored exception (the one being handled); log when the interval allows."""
        error = sys.exc_info()[1]
        cause = getattr(error, "__cause__", None) or error
        now = time.monotonic()
        with self._lock:
            if self._last_logged is not None and now - self._last_logged < self.interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last_logged = now
        if suppressed:
            self.target.warning(
                "Cache %r still unavailable: %s; %d more cache calls served as misses in the last %.0f s",
                self.name, cause, suppressed + 1, self.interval,
            )
        else:
            self.target.warning("Cache %r unavailable, serving cache misses: %s", self.name, cause)

    def reset(self) -> None:
        """Forget the current outage: the next failure is logged at once."""
        with self._lock:
            self._last_logged = None
            self._suppressed = 0

    # django-redis only calls exception(); the rest keeps the logger shape for other callers.
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.target.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.target.error(msg, *args, **kwargs)


class RedisCache(DjangoRedisCache):  # type: ignore[misc]  # django-redis ships no type information
    """django-redis' ``RedisCache`` on the instrumented ``cache`` pool (``redis_cache``), whose ignored
    exceptions are logged once per interval.

    ``OPTIONS`` default to :func:`connection_pools.conf.cache_options.instrumented_options` of
    ``CONNECTION_POOLS["REDIS"]["cache"]``; any option given in ``CACHES`` wins.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        given = dict(params.get("OPTIONS") or {})
        options = {**instrumented_options(_cache_pool_settings()), **given}
        if options["CONNECTION_POOL_CLASS"].startswith(POOL_MODULE) and "CONNECTION_POOL_KWARGS" in given:
            # Our pool, sized by the user: it still needs its name to be shown as redis_cache.
            options["CONNECTION_POOL_KWARGS"] = {"pool_name": "cache", **given["CONNECTION_POOL_KWARGS"]}
        super().__init__(server, {**params, "OPTIONS": options})
        interval = params.get("OPTIONS", {}).get("OUTAGE_LOG_INTERVAL", DEFAULT_OUTAGE_LOG_INTERVAL)
        # Django builds one backend per thread: share one reporter per alias and interval.
        self.logger = _outage_logger(str(server), float(interval))
        self._log_ignored_exceptions = True


def _cache_pool_settings() -> dict[str, Any]:
    from ... import conf

    return {**conf.REDIS_POOL_DEFAULTS["cache"], **(conf.get("REDIS").get("cache") or {})}


_reporters: dict[tuple[str, float], OutageLogger] = {}
_reporters_lock = threading.Lock()


def _outage_logger(server: str, interval: float) -> OutageLogger:
    with _reporters_lock:
        reporter = _reporters.get((server, interval))
        if reporter is None:
            reporter = _reporters[(server, interval)] = OutageLogger(interval, name=_mask(server))
        return reporter


def _mask(server: str) -> str:
    from ...core.masking import mask_url

    return mask_url(server)
