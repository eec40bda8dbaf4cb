"""The dashboard itself: routing, access checks and rendering, free of any web framework.

:class:`Dashboard` turns a :class:`~queuekit.web.http.Request` into a
:class:`~queuekit.web.http.Response`; the ASGI and WSGI adapters only
translate. Every link, form and htmx request is built from the request's
mount prefix, so the dashboard works under any path of the host app.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from queuekit.errors import QueueKitError
from queuekit.manager import JobManager
from queuekit.web.access import (
    CSRF_COOKIE,
    CSRF_FIELD,
    Authorize,
    Role,
    check_role,
    check_same_origin,
    new_csrf_token,
)
from queuekit.web.cache import DEFAULT_TTL, ResultCache
from queuekit.web.http import HTTPError, Request, Response
from queuekit.web.queries import Queries

logger = logging.getLogger("queuekit.web")

#: The vendored htmx build; its version is part of the name.
HTMX_FILE = "htmx-2.0.11.min.js"
STATIC_FILES = {
    HTMX_FILE: "text/javascript; charset=utf-8",
    "queuekit.js": "text/javascript; charset=utf-8",
    "queuekit.css": "text/css; charset=utf-8",
}
#: Seconds between live refreshes of a page; never below the minimum.
DEFAULT_REFRESH = 5
MIN_REFRESH = 2
#: Jobs one bulk action touches at most.
BULK_CAP = 1_000
SECURITY_HEADERS = [
    (
        "content-security-policy",
        "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
]

Handler = Callable[["View"], Response]


@dataclass
class View:
    """What a view function gets: the request, the caller's role and the dashboard."""

    request: Request
    role: Role
    dashboard: Dashboard
    match: dict[str, str]
    csrf: str

    @property
    def queries(self) -> Queries:
        """The bounded reads."""
        return self.dashboard.queries

    @property
    def manager(self) -> JobManager:
        """The manager every action goes through."""
        return self.dashboard.manager

    @property
    def can_act(self) -> bool:
        """Whether the caller may use write actions."""
        return self.role == "admin"

    def url(self, path: str, **query: Any) -> str:
        """``path`` inside the dashboard, under the mount prefix, with non-empty query values."""
        pairs = [(k, str(v)) for k, v in query.items() if v not in (None, "")]
        suffix = f"?{urlencode(pairs)}" if pairs else ""
        return f"{self.request.root}{path}{suffix}"

    def current(self, **changes: Any) -> str:
        """This page's URL with some query values changed (``before=None`` drops one)."""
        query: dict[str, Any] = {
            k: vs[0] for k, vs in self.request.query.items() if vs and k != "notice"
        }
        query.update(changes)
        return self.url(self.request.path, **query)

    def here(self) -> str:
        """The current page's path and query inside the dashboard (for ``next`` fields)."""
        query = urlencode(
            [(k, v) for k, vs in self.request.query.items() for v in vs if k != "notice"]
        )
        return self.request.path + (f"?{query}" if query else "")

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """A page rendered from ``template`` with autoescaping."""
        body = self.dashboard.templates.get_template(template).render(
            view=self,
            u=self.url,
            refresh=self.dashboard.refresh,
            htmx_file=HTMX_FILE,
            csrf_field=CSRF_FIELD,
            notice=self.request.arg("notice"),
            **context,
        )
        return Response(status, body.encode())

    def redirect(self, notice: str) -> Response:
        """Back to the page named by the form's ``next`` field, saying what happened."""
        target = self.request.form().get("next", ["/"])[0]
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        joiner = "&" if "?" in target else "?"
        location = f"{self.request.root}{target}{joiner}{urlencode({'notice': notice})}"
        return Response(303, b"", [("location", location)])


class Dashboard:
    """The operators' dashboard over one :class:`JobManager`, as a request → response function."""

    def __init__(
        self,
        manager: JobManager,
        *,
        authorize: Authorize,
        refresh: int = DEFAULT_REFRESH,
        cache_ttl: float = DEFAULT_TTL,
    ) -> None:
        if not isinstance(manager, JobManager):
            raise TypeError(
                f"the dashboard needs a queuekit JobManager, not {type(manager).__name__}; an "
                "AsyncJobManager user passes JobManager(sqlalchemy.create_engine(sync_url))"
            )
        if not callable(authorize):
            raise TypeError(
                "authorize must be a callable request -> 'admin' | 'read_only' | None "
                "(queuekit.web.basic_auth(user, password) makes one); the dashboard is never open"
            )
        self.manager = manager
        self.authorize = authorize
        self.refresh = max(int(refresh), MIN_REFRESH)
        self.cache = ResultCache(cache_ttl)
        self.queries = Queries(manager, self.cache)
        self.templates = Environment(
            loader=PackageLoader("queuekit.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from queuekit.web import actions, pages

        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(f"^{pattern}$"), handler)
            for method, pattern, handler in (*pages.ROUTES, *actions.ROUTES)
        ]

    def __call__(self, request: Request) -> Response:
        """Answer one request (never raises)."""
        try:
            response = self.dispatch(request)
        except HTTPError as error:
            response = Response(
                error.status, error.message.encode(), content_type="text/plain; charset=utf-8"
            )
            if error.status == 401:
                response.headers.append(("www-authenticate", 'Basic realm="queuekit"'))
        except Exception:
            logger.exception("dashboard error on %s %s", request.method, request.path)
            response = Response(
                500, b"internal error (see the server log)", content_type="text/plain"
            )
        present = {name for name, _ in response.headers}
        response.headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
        return response

    def dispatch(self, request: Request) -> Response:
        """Authorize, route and run the view."""
        role = check_role(self.authorize(request))
        if role is None:
            raise HTTPError(401, "authentication required")
        if request.method == "GET" and request.path.startswith("/static/"):
            return self.static(request.path.removeprefix("/static/"))
        allowed: list[str] = []
        for method, pattern, handler in self.routes:
            found = pattern.match(request.path)
            if found is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            return self.run_view(request, role, handler, found.groupdict())
        if allowed:
            raise HTTPError(405, "method not allowed")
        raise HTTPError(404, "not found")

    def run_view(
        self, request: Request, role: Role, handler: Handler, match: dict[str, str]
    ) -> Response:
        """Check write access and origin for POSTs, set the token cookie, run the view."""
        csrf = request.cookie(CSRF_COOKIE) or new_csrf_token()
        if request.method == "POST":
            if role != "admin":
                raise HTTPError(403, "read-only access: actions are not allowed")
            check_same_origin(request)
        view = View(request, role, self, match, csrf)
        try:
            response = handler(view)
        except HTTPError:
            raise
        except ValueError as error:  # the caller's input, as queuekit judged it
            response = view.render("error.html", 400, message=str(error))
        except QueueKitError as error:
            logger.warning("dashboard query failed: %s", error)
            response = view.render(
                "error.html",
                503,
                message="The database did not answer in time or refused the query; "
                "narrow the filter or try again.",
            )
        if request.cookie(CSRF_COOKIE) is None:
            path = request.root or "/"
            response.headers.append(
                ("set-cookie", f"{CSRF_COOKIE}={csrf}; Path={path}; HttpOnly; SameSite=Strict")
            )
        return response

    def static(self, name: str) -> Response:
        """One of the bundled static files, cacheable for a day."""
        if name not in STATIC_FILES:
            raise HTTPError(404, "not found")
        body = resources.files("queuekit.web").joinpath("static", name).read_bytes()
        return Response(200, body, [("cache-control", "public, max-age=86400")], STATIC_FILES[name])


def parse_id(text: str) -> uuid.UUID:
    """A job or history id from a URL; anything that is not a UUID is a 404."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HTTPError(404, "not found: not a job id") from None


def parse_cursor(text: str) -> uuid.UUID | None:
    """A keyset cursor from the query string (400 when malformed)."""
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HTTPError(400, "malformed page cursor") from None
