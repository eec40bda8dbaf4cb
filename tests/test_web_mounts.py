"""The dashboard mounted under a non-root prefix in FastAPI, Flask and Django host apps."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pytest

from queuekit import JobManager
from queuekit.web import asgi_app, basic_auth, wsgi_app
from tests.web_helpers import AUTH, PASSWORD, USER, assert_prefixed, seed

PAGES = ["/", "/jobs", "/history", "/tasks", "/workers"]


def check_host(get: object, post: object, prefix: str, manager: JobManager) -> None:
    """Pages render with every link under ``prefix``; an action works and redirects there."""
    seeded = seed(manager)
    for page in PAGES:
        status, text, _ = get(prefix + page)  # type: ignore[operator]
        assert status == 200, (page, text[:300])
        assert_prefixed(text, prefix)
    status, _, location = post(prefix + f"/jobs/{seeded.waiting}/fail", {"reason": "host"})  # type: ignore[operator]
    assert status == 303 and location.startswith(prefix + "/")
    job = manager.get_job(seeded.waiting)
    assert job is not None and job.last_error == "host"
    status, text, _ = get("/")  # type: ignore[operator]
    assert status == 200 and "host app" in text


def test_fastapi_mount(clean_manager: JobManager) -> None:
    fastapi = pytest.importorskip("fastapi")
    from starlette.testclient import TestClient

    app = fastapi.FastAPI()

    @app.get("/")
    def home() -> str:
        return "host app"

    app.mount("/ops/queuekit", asgi_app(clean_manager, authorize=basic_auth(USER, PASSWORD)))
    client = TestClient(app, follow_redirects=False, headers=AUTH)

    def get(path: str) -> tuple[int, str, str]:
        r = client.get(path)
        return r.status_code, r.text, r.headers.get("location", "")

    def post(path: str, data: dict[str, str]) -> tuple[int, str, str]:
        r = client.post(path, data=data, headers={"Origin": "http://testserver"})
        return r.status_code, r.text, r.headers.get("location", "")

    check_host(get, post, "/ops/queuekit", clean_manager)


def test_flask_dispatcher_mount(clean_manager: JobManager) -> None:
    flask = pytest.importorskip("flask")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    app = flask.Flask("host")

    @app.get("/")
    def home() -> str:
        return "host app"

    dashboard = wsgi_app(clean_manager, authorize=basic_auth(USER, PASSWORD))
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/admin/queuekit": dashboard})  # type: ignore[method-assign]
    client = app.test_client()

    def get(path: str) -> tuple[int, str, str]:
        r = client.get(path, headers=AUTH)
        return r.status_code, r.get_data(as_text=True), r.headers.get("location", "")

    def post(path: str, data: dict[str, str]) -> tuple[int, str, str]:
        r = client.post(path, data=data, headers={**AUTH, "Origin": "http://localhost"})
        return r.status_code, r.get_data(as_text=True), r.headers.get("location", "")

    check_host(get, post, "/admin/queuekit", clean_manager)


def test_django_catch_all_mount(clean_manager: JobManager) -> None:
    pytest.importorskip("django")
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="test",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.test import Client
    from django.urls import clear_url_caches

    global urlpatterns
    urlpatterns = django_urls(wsgi_app(clean_manager, authorize=basic_auth(USER, PASSWORD)))
    clear_url_caches()
    client = Client(HTTP_AUTHORIZATION=AUTH["Authorization"])

    def get(path: str) -> tuple[int, str, str]:
        r = client.get(path)
        return r.status_code, r.content.decode(), r.headers.get("location", "")

    def post(path: str, data: dict[str, str]) -> tuple[int, str, str]:
        form = urlencode(data)
        kind = "application/x-www-form-urlencoded"
        r = client.post(path, data=form, content_type=kind, HTTP_ORIGIN="http://testserver")
        return r.status_code, r.content.decode(), r.headers.get("location", "")

    check_host(get, post, "/tools/queuekit", clean_manager)


urlpatterns: list[object] = []


def django_urls(dashboard: object) -> list[object]:
    """The Django side of the documented mount: a catch-all URL calling the WSGI app."""
    from django.http import HttpRequest, HttpResponse
    from django.urls import path, re_path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def queuekit_view(request: HttpRequest, rest: str = "") -> HttpResponse:
        environ = dict(request.META)
        environ["SCRIPT_NAME"] = "/tools/queuekit"
        environ["PATH_INFO"] = "/" + rest
        environ["wsgi.input"] = io.BytesIO(request.body)
        environ["CONTENT_LENGTH"] = str(len(request.body))
        captured: dict[str, object] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            captured["status"], captured["headers"] = status, headers

        body = b"".join(dashboard(environ, start_response))  # type: ignore[operator]
        response = HttpResponse(body, status=int(str(captured["status"]).split()[0]))
        for name, value in captured["headers"]:  # type: ignore[attr-defined]
            response[name] = value
        return response

    def home(request: HttpRequest) -> HttpResponse:
        return HttpResponse("host app")

    return [
        path("", home),
        re_path(r"^tools/queuekit/(?P<rest>.*)$", queuekit_view),
    ]
