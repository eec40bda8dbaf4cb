"""What the dashboard tests share: seeded jobs, clients under a prefix, link checks."""

from __future__ import annotations

import base64
import html as html_lib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queuekit import JobError, JobManager
from queuekit.web import Request, Role, basic_auth

PREFIX = "/ops/queuekit"
USER, PASSWORD = "ops", "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def authorizer(role: Role = "admin") -> Callable[[Request], Role | None]:
    """Basic auth with the test user, answering ``role``."""
    return basic_auth(USER, PASSWORD, role=role)


@dataclass
class Seeded:
    """Ids of the jobs :func:`seed` made."""

    waiting: uuid.UUID
    exhausted: uuid.UUID
    locked: uuid.UUID
    worker: str


def failure(message: str) -> BaseException:
    """An exception with a real traceback."""
    try:
        raise RuntimeError(message)
    except RuntimeError as error:
        return error


def seed(manager: JobManager, *, task: str = "mail.send", error: str = "SMTP down") -> Seeded:
    """One waiting job, one exhausted job (failed once, with a traceback), one running job."""
    failing = manager.add_job(task, {"to": "a@example.com"}, max_attempts=1, priority=-10)
    claimed = manager.get_jobs("seed-worker", batch_size=1)
    assert [j.id for j in claimed] == [failing.id]
    manager.fail_jobs("seed-worker", [JobError(claimed[0], failure(error))], 12)
    running = manager.add_job("report.build", {"n": 1}, queue_name="reports", priority=-5)
    assert [j.id for j in manager.get_jobs("seed-worker", batch_size=1)] == [running.id]
    waiting = manager.add_job(task, {"to": "b@example.com"}, priority=5)
    return Seeded(waiting.id, failing.id, running.id, "seed-worker")


LINK = re.compile(r'(?:href|action|src|hx-get)="([^"]*)"')


def links(html: str) -> list[str]:
    """Every link, form action, script source and htmx URL of a page."""
    return LINK.findall(html)


def assert_prefixed(html: str, prefix: str = PREFIX) -> None:
    """Every URL of the page stays under the mount prefix."""
    found = links(html)
    assert found, "the page has no links at all"
    # An inline ``data:`` URL (the empty favicon) loads nothing from any server.
    outside = [link for link in found if not link.startswith((prefix + "/", "data:"))]
    assert outside == [], f"links outside {prefix}: {outside}"


def post_form(html: str, action: str) -> dict[str, Any]:
    """The hidden fields of the form posting to ``action`` on a page."""
    pattern = re.compile(
        r'<form method="post" action="' + re.escape(action) + r'".*?</form>', re.DOTALL
    )
    form = pattern.search(html)
    assert form is not None, f"no form posting to {action}"
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(0))
    return {name: html_lib.unescape(value) for name, value in fields}


class Client:
    """GET and POST against the dashboard mounted at :data:`PREFIX`, through WSGI or ASGI."""

    def __init__(self, adapter: str, manager: JobManager, role: Role = "admin", **options: Any):
        from queuekit.web import asgi_app, wsgi_app

        self.adapter = adapter
        if adapter == "wsgi":
            from werkzeug.exceptions import NotFound
            from werkzeug.middleware.dispatcher import DispatcherMiddleware
            from werkzeug.test import Client as WerkzeugClient

            app = wsgi_app(manager, authorize=authorizer(role), **options)
            self.wsgi = WerkzeugClient(DispatcherMiddleware(NotFound(), {PREFIX: app}))
            self.host = "localhost"
        else:
            from starlette.applications import Starlette
            from starlette.routing import Mount
            from starlette.testclient import TestClient

            app = asgi_app(manager, authorize=authorizer(role), **options)
            host_app = Starlette(routes=[Mount(PREFIX, app=app)])
            self.asgi = TestClient(host_app, follow_redirects=False)
            self.host = "testserver"

    @property
    def origin(self) -> str:
        """This client's own origin, for same-origin POSTs."""
        return f"http://{self.host}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        """GET ``PREFIX + path``."""
        return self.request("GET", path, headers=headers)

    def post(self, path: str, data: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
        """POST a form to ``PREFIX + path`` (same-origin unless headers say otherwise)."""
        sent = {"Origin": self.origin, **AUTH, **(headers or {})}
        return self.request("POST", path, data=data, headers={k: v for k, v in sent.items() if v})

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        headers = kwargs.pop("headers", None)
        headers = AUTH if headers is None else headers
        if self.adapter == "wsgi":
            r = self.wsgi.open(PREFIX + path, method=method, headers=headers, **kwargs)
            return Reply(r.status_code, dict(r.headers), r.get_data(as_text=True))
        a = self.asgi.request(method, PREFIX + path, headers=headers, **kwargs)
        return Reply(a.status_code, dict(a.headers), a.text)


@dataclass
class Reply:
    """What came back."""

    status: int
    headers: dict[str, str]
    text: str

    def header(self, name: str) -> str:
        """One header, case-insensitively ('' when absent)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return ""
