"""``connection_pools.pinning.ReplicaPinningMiddleware``: the read-your-writes and replay middleware at
its public path. The code lives in :mod:`connection_pools.middleware.pinning`."""

from .middleware.pinning import ReplicaPinningMiddleware, is_pinned_by_cookie, no_replay, set_pin_cookie

__all__ = ["ReplicaPinningMiddleware", "is_pinned_by_cookie", "no_replay", "set_pin_cookie"]
