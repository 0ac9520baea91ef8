"""The request middleware: :class:`RequestContextMiddleware` (:mod:`.request`) starts and ends each
request's one context and does the per-request accounting, read-your-writes pinning, the replay
of cut safe requests (:mod:`.replay`) and the 503s (:mod:`.failures`).

``connection_pools.middleware.RequestContextMiddleware`` is the public path;
``connection_pools.middleware.PoolStatsMiddleware`` is the same class under its older name, and
``connection_pools.pinning.ReplicaPinningMiddleware`` a no-op next to it (:mod:`.pinning`).
"""

from .failures import classify_failure
from .request import RequestContextMiddleware

PoolStatsMiddleware = RequestContextMiddleware

__all__ = ["PoolStatsMiddleware", "RequestContextMiddleware", "classify_failure"]
