"""``ReplicaPinningMiddleware``: read-your-writes and replay now belong to the request middleware.

Pinning and the replay of cut safe requests are done by
:class:`~connection_pools.middleware.RequestContextMiddleware` (also known as
``PoolStatsMiddleware``), which starts the one request context. A ``MIDDLEWARE`` setting that
still lists ``connection_pools.pinning.ReplicaPinningMiddleware`` keeps working:

* next to the request middleware, it takes itself out of the chain (``MiddlewareNotUsed``:
  it costs nothing per request);
* alone, it is the request middleware, so pinning and replay go on as before.

The helpers stay importable from here: :func:`no_replay`, :func:`is_pinned_by_cookie`,
:func:`set_pin_cookie`, :data:`COOKIE_SALT`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest

from .replay import COOKIE_SALT, SAFE_METHODS, is_pinned_by_cookie, no_replay, set_pin_cookie
from .request import RequestContextMiddleware

#: Where the request middleware may be listed; any one of them makes this one redundant.
REQUEST_MIDDLEWARE_PATHS = frozenset({
    "connection_pools.middleware.RequestContextMiddleware",
    "connection_pools.middleware.PoolStatsMiddleware",
    "connection_pools.middleware.request.RequestContextMiddleware",
    "connection_pools.middleware.stats.PoolStatsMiddleware",
})


class ReplicaPinningMiddleware(RequestContextMiddleware):
    """The request middleware under its old pinning name: a no-op when the request middleware is listed too."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if REQUEST_MIDDLEWARE_PATHS.intersection(settings.MIDDLEWARE):
            raise MiddlewareNotUsed("connection_pools.middleware.RequestContextMiddleware pins and replays")
        super().__init__(get_response)


__all__ = ["COOKIE_SALT", "SAFE_METHODS", "ReplicaPinningMiddleware", "is_pinned_by_cookie", "no_replay",
           "set_pin_cookie"]
