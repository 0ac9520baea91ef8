"""``connection_pools.pinning.ReplicaPinningMiddleware`` at its old public path: pinning and replay
are done by the request middleware now, and this name is a no-op next to it (see
:mod:`connection_pools.middleware.pinning`)."""

from .middleware.pinning import ReplicaPinningMiddleware, is_pinned_by_cookie, no_replay, set_pin_cookie

__all__ = ["ReplicaPinningMiddleware", "is_pinned_by_cookie", "no_replay", "set_pin_cookie"]
