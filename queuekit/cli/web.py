"""``queuekit web``: serve the operators' dashboard alone, closed unless told otherwise."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import click

from queuekit.cli.app import InputError, cli, console, current_state

#: Environment variable holding the basic-auth password (never a command-line flag,
#: which other users of the machine could read from the process list).
PASSWORD_VARIABLE = "QUEUEKIT_WEB_PASSWORD"


def read_only_authorize(_request: Any) -> str:
    """Everyone may look, nobody may act (``--read-only --insecure-no-auth``)."""
    return "read_only"


@cli.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--user", metavar="NAME", help=f"Basic-auth user; password from ${PASSWORD_VARIABLE}."
)
@click.option("--read-only", is_flag=True, help="Show everything, allow no action.")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="With --read-only: serve without any login (only on a trusted network).",
)
def web(host: str, port: int, user: str | None, read_only: bool, insecure_no_auth: bool) -> None:
    """Serve the dashboard on HOST:PORT (uvicorn when installed, else the standard library)."""
    from queuekit.web import basic_auth, wsgi_app

    if user:
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise InputError(
                f"--user needs the password in the environment variable {PASSWORD_VARIABLE}"
            )
        authorize: Any = basic_auth(user, password, role="read_only" if read_only else "admin")
    elif read_only and insecure_no_auth:
        authorize = read_only_authorize
    else:
        raise InputError(
            f"refusing to serve the dashboard without a login: give --user NAME with "
            f"{PASSWORD_VARIABLE} set, or --read-only --insecure-no-auth for an open read-only view"
        )
    manager = current_state().manager()
    console().print(f"queuekit dashboard on http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        import uvicorn
    except ImportError:
        serve_wsgi(wsgi_app(manager, authorize=authorize), host, port)
        return
    from queuekit.web import asgi_app

    uvicorn.run(asgi_app(manager, authorize=authorize), host=host, port=port, log_level="warning")


def serve_wsgi(app: Any, host: str, port: int) -> None:
    """Serve a WSGI app with the standard library, one thread per request."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server(host, port, app, server_class=ThreadingServer)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
