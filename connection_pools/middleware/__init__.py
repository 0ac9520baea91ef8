"""The request middlewares: :mod:`.stats` (``PoolStatsMiddleware``: per-request accounting, 503s)
and :mod:`.pinning` (``ReplicaPinningMiddleware``: read-your-writes, replay of cut safe requests).

``connection_pools.middleware.PoolStatsMiddleware`` is the public path.
"""

from .stats import PoolStatsMiddleware, classify_failure

__all__ = ["PoolStatsMiddleware", "classify_failure"]
