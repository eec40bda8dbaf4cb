"""Who may see the dashboard, who may act, and the audit line every action leaves.

The dashboard is closed by default: the host passes ``authorize(request)``,
which answers ``"admin"`` (may act), ``"read_only"`` (sees everything, acts on
nothing) or None (401, nothing shown). Write actions are POSTs that must come
from the dashboard's own origin.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

from queuekit.web.http import HTTPError, Request

Role = Literal["admin", "read_only"]
ROLES: tuple[Role, ...] = ("admin", "read_only")
Authorize = Callable[[Request], "Role | None"]

#: Cookie and form field of the double-submit token, for browsers that send
#: neither Origin nor Referer on a POST.
CSRF_COOKIE = "queuekit_csrf"
CSRF_FIELD = "csrf_token"

audit_log = logging.getLogger("queuekit.web")


def check_role(role: object) -> Role | None:
    """``role`` as a Role, or None; anything else is the host's bug, said plainly."""
    if role is None:
        return None
    if role not in ROLES:
        raise ValueError(f"authorize() must return 'admin', 'read_only' or None, not {role!r}")
    return role


def basic_auth(user: str, password: str, *, role: Role = "admin") -> Authorize:
    """An ``authorize`` callable for HTTP basic auth with one user name and password.

    Compares in constant time. The user is remembered on the request for the
    audit log through :func:`user_of`.
    """
    if not user or not password:
        raise ValueError("basic_auth needs a non-empty user name and password")
    expected = f"{user}:{password}".encode()

    def authorize(request: Request) -> Role | None:
        given = basic_credentials(request)
        if given is None or not hmac.compare_digest(given, expected):
            return None
        return role

    return authorize


def basic_credentials(request: Request) -> bytes | None:
    """The ``user:password`` bytes of a basic Authorization header, or None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def user_of(request: Request) -> str:
    """A name for the audit log: the basic-auth user, else the host's remote user, else '?'."""
    credentials = basic_credentials(request)
    if credentials is not None:
        return credentials.split(b":", 1)[0].decode("utf-8", "replace")
    raw = request.raw
    if isinstance(raw, dict):
        user = raw.get("REMOTE_USER") or raw.get("user")
        if isinstance(user, str):
            return user
    return "?"


def new_csrf_token() -> str:
    """A fresh random token for the double-submit cookie."""
    return secrets.token_urlsafe(24)


def check_same_origin(request: Request) -> None:
    """Refuse a POST that another site made the browser send (403).

    The Origin header decides when present, then Referer; a request with
    neither must carry the form token that matches its cookie. Hosts are
    compared without the scheme so a TLS-terminating proxy does not matter.
    """
    host = request.headers.get("host", "")
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value and value != "null":
            if urlsplit(value).netloc != host:
                raise HTTPError(403, f"cross-site request refused ({header} is not {host})")
            return
    cookie = request.cookie(CSRF_COOKIE)
    sent = request.form().get(CSRF_FIELD, [""])[0]
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise HTTPError(403, "cross-site request refused (no Origin, Referer or matching token)")


def log_action(request: Request, action: str, detail: str, count: int) -> None:
    """One audit line per action: who, what, on what, how many rows it touched."""
    who = user_of(request)
    audit_log.info(
        "dashboard action %s by %s on %s: %d affected",
        action,
        who,
        detail,
        count,
        extra={"queuekit_user": who, "queuekit_action": action, "queuekit_count": count},
    )
