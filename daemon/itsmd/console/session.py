"""Who is looking at a page, what they may do, and the CSRF tokens of their forms.

With tokens, `api.auth` has checked the session cookie before a page runs (the
cookie itself is made and checked there, docs/console.md). Without tokens (loopback
only) there is no login: actions are recorded under the name typed on `/login`, kept
in a cookie, or else the daemon's own user.

A CSRF token is an HMAC of the session: keyed by the token's secret with tokens, by
a random key of this process without (a restart makes open forms ask for a reload).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from aiohttp import web

from itsmd.api.auth import ROLE, SESSION
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.config import Role

NAME_COOKIE = "itsmd_name"
CSRF_FIELD = "csrf"
MAX_NAME = 100
PROCESS_KEY = web.AppKey("console_csrf_key", bytes)  # the key without tokens


def new_process_key() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person a page is for."""

    name: str  # what their actions are recorded under
    role: Role
    signed_in: bool  # through a token (False: loopback without tokens)
    csrf: str

    @property
    def can_respond(self) -> bool:
        return self.role in (Role.RESPOND, Role.ADMIN)

    @property
    def can_admin(self) -> bool:
        return self.role is Role.ADMIN


def local_name(request: web.Request) -> str:
    """Without tokens: the name typed on /login, else the daemon process's user."""
    typed = clean_name(unquote(request.cookies.get(NAME_COOKIE, "")))
    if typed:
        return typed
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid (a bare container)
        return "local"


def clean_name(text: str) -> str:
    """A typed name as it is recorded: printable, trimmed, at most MAX_NAME characters."""
    return "".join(c for c in text if c.isprintable()).strip()[:MAX_NAME]


def viewer_of(request: web.Request) -> Viewer:
    session = request.get(SESSION)
    role = request.get(ROLE, Role.READ)
    if session is not None:
        key = session.token.secret.encode()
        return Viewer(request[ACTOR], role, True, _mac(key, session.value))
    if request.app[RUNTIME].settings.tokens:  # a page anyone may see (/login)
        return Viewer("", Role.READ, False, "")
    name = local_name(request)
    return Viewer(name, Role.ADMIN, False, _mac(request.app[PROCESS_KEY], name))


def csrf_ok(request: web.Request, sent: str) -> bool:
    expected = viewer_of(request).csrf
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


def _mac(key: bytes, bound_to: str) -> str:
    return hmac.new(key, f"itsmd-csrf\x00{bound_to}".encode(), hashlib.sha256).hexdigest()


def safe_next(target: str | None, default: str = "/incidents") -> str:
    """Where to go after signing in: a path of this daemon only. Anything that could
    leave it (`//evil`, `/\\evil`, `https://...`, control characters) goes to the
    default instead."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(not c.isprintable() or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    if parts.path in ("/login", "/logout"):
        return default
    return target
