"""``PoolStatsMiddleware``: the older name of the request middleware (:mod:`.request`), kept so
existing ``MIDDLEWARE`` settings work unchanged."""

from __future__ import annotations

from .failures import classify_failure, unavailable_response
from .request import RequestContextMiddleware

#: The request middleware under its first name (the same class).
PoolStatsMiddleware = RequestContextMiddleware

__all__ = ["PoolStatsMiddleware", "classify_failure", "unavailable_response"]
