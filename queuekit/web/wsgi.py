"""The WSGI adapter: Flask (DispatcherMiddleware), Django (catch-all view) and wsgiref serve it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from queuekit.web.dashboard import Dashboard
from queuekit.web.http import MAX_BODY, REASONS, Request, Response

StartResponse = Callable[..., Any]


class WSGIDashboard:
    """A WSGI application serving one :class:`Dashboard`."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            response = Response(413, b"request body too large", content_type="text/plain")
        else:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            response = self.dashboard(request_from_environ(environ, body))
        status = f"{response.status} {REASONS.get(response.status, 'Unknown')}"
        start_response(status, response.all_headers())
        return [response.body]


def request_from_environ(environ: dict[str, Any], body: bytes) -> Request:
    """The dashboard request of a WSGI environ; SCRIPT_NAME is the mount prefix."""

    def text(name: str) -> str:
        # WSGI hands paths over as latin-1 decoded bytes; the bytes are UTF-8.
        return str(environ.get(name, "")).encode("latin-1").decode("utf-8", "replace")

    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "host" not in headers and environ.get("SERVER_NAME"):
        port = str(environ.get("SERVER_PORT", ""))
        default = {"http": "80", "https": "443"}.get(str(environ.get("wsgi.url_scheme")), "")
        name = str(environ["SERVER_NAME"])
        headers["host"] = name if port in ("", default) else f"{name}:{port}"
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    query = parse_qs(text("QUERY_STRING"))
    return Request(
        str(environ.get("REQUEST_METHOD", "GET")),
        text("SCRIPT_NAME").rstrip("/"),
        text("PATH_INFO") or "/",
        query,
        headers,
        body,
        environ,
    )
