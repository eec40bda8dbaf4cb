"""The ASGI adapter: FastAPI/Starlette mount it, uvicorn serves it.

Views are synchronous (they use the synchronous JobManager), so each request
runs in a worker thread and never blocks the host's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from queuekit.web.dashboard import Dashboard
from queuekit.web.http import MAX_BODY, Request, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ASGIDashboard:
    """An ASGI 3 application serving one :class:`Dashboard`."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the queuekit dashboard serves HTTP only, not {scope['type']}")
        body = await read_body(receive)
        if body is None:
            await respond(send, Response(413, b"request body too large", content_type="text/plain"))
            return
        response = await asyncio.to_thread(self.dashboard, request_from_scope(scope, body))
        await respond(send, response)


def request_from_scope(scope: Scope, body: bytes) -> Request:
    """The dashboard request of an ASGI HTTP scope, path made relative to ``root_path``."""
    root = str(scope.get("root_path", "")).rstrip("/")
    path = str(scope.get("path", "/"))
    if root and path.startswith(root):
        path = path[len(root) :]
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        joiner = "; " if name == "cookie" else ", "
        headers[name] = f"{headers[name]}{joiner}{value}" if name in headers else value
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
    return Request(scope["method"], root, path or "/", query, headers, body, scope)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, response: Response) -> None:
    """Send one complete response."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.all_headers()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop; acknowledge the server's lifespan messages."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
