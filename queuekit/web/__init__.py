"""The operators' dashboard (``pip install queuekit[web]``).

Mount it in the host app under any prefix::

    from queuekit.web import asgi_app, basic_auth
    app.mount("/queuekit", asgi_app(manager, authorize=basic_auth("ops", password)))

or serve it alone with ``queuekit web``. It is closed by default: ``authorize``
decides per request whether the caller is ``"admin"``, ``"read_only"`` or
nobody (None → 401).
"""

from __future__ import annotations

from typing import Any

from queuekit.manager import JobManager
from queuekit.web.access import Authorize, Role, basic_auth
from queuekit.web.asgi import ASGIDashboard
from queuekit.web.dashboard import Dashboard
from queuekit.web.http import Request, Response
from queuekit.web.wsgi import WSGIDashboard


def asgi_app(manager: JobManager, *, authorize: Authorize, **options: Any) -> ASGIDashboard:
    """The dashboard as an ASGI application (FastAPI/Starlette ``app.mount``, uvicorn).

    ``options`` go to :class:`Dashboard` (``refresh`` seconds, ``cache_ttl``).
    """
    return ASGIDashboard(Dashboard(manager, authorize=authorize, **options))


def wsgi_app(manager: JobManager, *, authorize: Authorize, **options: Any) -> WSGIDashboard:
    """The dashboard as a WSGI application (Flask ``DispatcherMiddleware``, Django, wsgiref)."""
    return WSGIDashboard(Dashboard(manager, authorize=authorize, **options))


__all__ = [
    "Authorize",
    "Dashboard",
    "Request",
    "Response",
    "Role",
    "asgi_app",
    "basic_auth",
    "wsgi_app",
]
