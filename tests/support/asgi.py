"""Drive Django's real ASGI handler in-process: one HTTP request through ``ASGIHandler`` with
the ASGI messages a server would send (what uvicorn does, without the socket)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler


@dataclass
class AsgiResponse:
    """What the handler sent back."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    body: bytes = b""


async def _call(application: Any, method: str, url: str, body: bytes) -> AsgiResponse:
    path, _, query = url.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    done = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await done.wait()  # the client stays connected until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    done.set()
    start = sent[0]
    response = AsgiResponse(status=start["status"])
    for name, value in start["headers"]:
        if name.lower() == b"set-cookie":
            response.cookies.append(value.decode())
        else:
            response.headers[name.decode().lower()] = value.decode()
    response.body = b"".join(message.get("body", b"") for message in sent[1:])
    return response


def asgi_request(url: str, *, method: str = "GET", body: bytes = b"", application: Any = None) -> AsgiResponse:
    """Send one request through a fresh ``ASGIHandler`` (the current settings' middleware and URLs)."""
    return async_to_sync(_call)(application or ASGIHandler(), method, url, body)
