"""The web request a pool checkout belongs to, shared by the pool and the middleware.

:class:`PoolStatsMiddleware` sets a :class:`RequestInfo` for each request; the pool
reads it at checkout (cheap: one ``ContextVar.get``) and keeps a reference on the
lease, so a long hold or a leak can name the request path and view even when the
connection comes back after the middleware has finished (Django returns pooled
connections on ``request_finished``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestInfo:
    """What one request did with the database pools."""

    path: str
    method: str = "GET"
    view: str | None = None
    #: Total seconds this request waited for pooled connections.
    wait_seconds: float = 0.0
    checkouts: int = 0
    #: Total seconds the request held pooled connections (known once they are returned).
    hold_seconds: float = 0.0
    #: ``"timeout"`` or ``"unavailable"`` when a checkout failed in this request.
    db_failure: str | None = None
    failed_aliases: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``GET /path (view)``: how log lines name the request."""
        view = f" (view {self.view})" if self.view else ""
        return f"{self.method} {self.path}{view}"


current_request: ContextVar[RequestInfo | None] = ContextVar("connection_pools_request", default=None)
