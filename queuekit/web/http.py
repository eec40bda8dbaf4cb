"""The dashboard's own request and response: what the ASGI and WSGI adapters translate to.

The views never see a framework object. An adapter builds a :class:`Request`
(path relative to the mount point, the mount prefix itself, headers, query and
form values) and turns the :class:`Response` back into its protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

#: Largest form body read, in bytes; filters and action forms are far smaller.
MAX_BODY = 1_000_000


@dataclass(frozen=True)
class Request:
    """One HTTP request as the views see it.

    ``root`` is the mount prefix (ASGI ``root_path``, WSGI ``SCRIPT_NAME``),
    ``path`` the rest, always starting with ``/``. Header names are lower case.
    ``raw`` is the adapter's own object (ASGI scope or WSGI environ) for an
    ``authorize`` callable that needs the host framework's session or user.
    """

    method: str
    root: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    raw: Any = None

    def arg(self, name: str, default: str = "") -> str:
        """The first query value of ``name`` (``default`` when absent)."""
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        """The url-encoded form body of a POST."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def cookie(self, name: str) -> str | None:
        """The value of cookie ``name``, or None."""
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


@dataclass
class Response:
    """Status, headers and body of the answer."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"

    def all_headers(self) -> list[tuple[str, str]]:
        """The headers to send, content type and length included."""
        return [
            ("content-type", self.content_type),
            ("content-length", str(len(self.body))),
            *self.headers,
        ]


REASONS = {
    200: "OK",
    204: "No Content",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class HTTPError(Exception):
    """Stops a view with an HTTP status and a short plain message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
