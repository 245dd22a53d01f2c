"""Who may make a request: Bearer and Basic auth with roles (secrets compared in
constant time), loopback only without tokens, and the rules that keep web pages out.

A web page in a browser can send requests to any address, this daemon's too, and
with DNS rebinding under a name of its own. So (docs/configuration.md, Requests
from browsers):

- without tokens, a request must name this daemon in `Host` (the listen address,
  `localhost`, `127.0.0.1` or `[::1]` with the port, or `external_url`'s host);
- a request that changes something through the JSON API carries JSON
  (`Content-Type: application/json`, 415 otherwise) and, when it says where it
  comes from (`Origin`, which browsers send), comes from this daemon's own origin.

Paths outside `/api/` (the web console's forms, which carry CSRF tokens) are not
held to the JSON rule, but to the Origin rule all the same.

The console's pages authenticate by a session cookie, never by a header (a browser
sends Basic credentials it remembers to any page that asks, so a header would let
another site's form act); the JSON API by a header, never by the cookie. A session
is the token's name, an expiry and an HMAC of both keyed by the token's secret: any
replica can check it without shared state, and removing or changing a token ends
its sessions (docs/console.md).

Repeated wrong tokens from one address refuse it for a while (429), kept in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import hdrs, web

from itsmd.api.errors import error_response
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.config import Role, Settings, Token, split_listen

log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/metrics", "/-/healthy", "/-/ready"})
INGEST_PATHS = frozenset({"/api/v1/webhooks/alertmanager", "/api/v1/alerts"})
# Console paths anyone may reach: signing in needs no session, nor do its style sheet
# and script.
CONSOLE_OPEN = frozenset({"/login", "/logout"})
STATIC_PREFIX = "/static/"
READERS = frozenset({Role.READ, Role.RESPOND, Role.ADMIN})
RESPONDERS = frozenset({Role.RESPOND, Role.ADMIN})
INGESTERS = frozenset({Role.INGEST, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"
# What a web page may send to another site without the browser asking that site
# first (a CORS "simple request"): form encodings and plain text.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="itsmd", Basic realm="itsmd"'}


def required_roles(method: str, path: str) -> frozenset[Role] | None:
    """The roles allowed to make this request; None when it needs no token."""
    if path in PUBLIC_PATHS or path in CONSOLE_OPEN or path.startswith(STATIC_PREFIX):
        return None
    if path == "/-/reload":
        return ADMINS
    if path in INGEST_PATHS and method == "POST":
        return INGESTERS
    if method in SAFE_METHODS:
        return READERS
    # Incident and problem actions, of the API and of the console's forms.
    acts = path.startswith(("/api/v1/incidents", "/api/v1/problems", "/incidents/", "/problems/"))
    return RESPONDERS if acts else ADMINS


def is_console(path: str) -> bool:
    """A page of the web console: authenticated by session cookie, not by header."""
    return not path.startswith(("/api/", "/-/")) and path not in PUBLIC_PATHS


def is_api_write(method: str, path: str) -> bool:
    """A request that changes something through the JSON API: it must carry JSON and
    come from no other site. The console's pages (outside /api/) protect their forms
    with CSRF tokens instead."""
    return method not in SAFE_METHODS and (path.startswith("/api/") or path == "/-/reload")


def authenticate(header: str, tokens: Sequence[Token]) -> Token | None:
    """The token whose secret the header carries. Every candidate is compared, so the
    time taken does not tell which token (or how much of a secret) matched."""
    scheme, _, credentials = header.partition(" ")
    user: str | None = None
    if scheme.lower() == "bearer":
        secret = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, secret = decoded.partition(":")
    else:
        return None
    found = None
    for token in tokens:
        same = hmac.compare_digest(token.secret.encode(), secret.encode())
        if same and (user is None or hmac.compare_digest(token.name.encode(), user.encode())):
            found = token
    return found


class FailureThrottle:
    """Failed authentications per client address, in memory: `limit` failures within
    WINDOW_S refuse the address for BLOCK_S (every request of it that needs a token,
    right or wrong, so that guessing stops). At most MAX_CLIENTS addresses are
    remembered; the one whose count started first is forgotten first."""

    WINDOW_S = 60.0
    BLOCK_S = 60.0
    MAX_CLIENTS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # address -> [start of its counting window, failures in it, refused until]
        self._clients: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        if not self._clients:  # the usual case: nobody failed
            return 0.0
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        left = entry[2] - self._clock()
        return left if left > 0 else 0.0

    def failed(self, client: str, limit: int) -> bool:
        """Count one failure of `client`; True when it is refused from now on. A
        `limit` of 0 counts nothing."""
        if limit <= 0:
            return False
        now = self._clock()
        entry = self._clients.get(client)
        if entry is None or (now - entry[0] > self.WINDOW_S and entry[2] <= now):
            self._clients.pop(client, None)
            while len(self._clients) >= self.MAX_CLIENTS:
                del self._clients[next(iter(self._clients))]
            entry = self._clients[client] = [now, 0.0, 0.0]
        entry[1] += 1
        if entry[1] >= limit:
            entry[2] = now + self.BLOCK_S
            return True
        return False


class RefusalLog:
    """Logs refusals worth an operator's attention (a foreign Host or Origin, an
    address refused for guessing, a client cut off for slowness): at most one line
    per reason a minute, so that a flood of them is one line and a count."""

    INTERVAL_S = 60.0

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic):
        self._log = logger
        self._clock = clock
        self._last: dict[str, float] = {}  # reason -> when its last line was written
        self._quiet: dict[str, int] = {}  # reason -> refusals not logged since

    def __call__(self, reason: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.INTERVAL_S:
            self._quiet[reason] = self._quiet.get(reason, 0) + 1
            return
        self._last[reason] = now
        quiet = self._quiet.pop(reason, 0)
        more = f" (and {quiet} more like it in the last minute)" if quiet else ""
        self._log.warning("%s%s", message, more)


THROTTLE = web.AppKey("auth_throttle", FailureThrottle)
REFUSALS = web.AppKey("refusal_log", RefusalLog)


class RefusalPage(Protocol):
    """How the console answers a refusal on one of its paths: a page, not JSON."""

    def __call__(
        self, request: web.Request, status: int, error: str, headers: Mapping[str, str] | None
    ) -> web.StreamResponse: ...


CONSOLE_REFUSAL = web.AppKey("console_refusal", RefusalPage)


# ---- console sessions

SESSION_COOKIE = "itsmd_session"
SESSION_TTL = timedelta(hours=12)  # an on-call night; a new login after it


@dataclass(frozen=True, slots=True)
class Session:
    """A console session: whose token, until when (Unix seconds), the cookie's value."""

    token: Token
    expires: int
    value: str


ROLE = web.RequestKey("role", Role)  # the role the request is made with
SESSION = web.RequestKey("session", Session)  # a console request's session, with tokens


def _session_mac(token: Token, expires: int) -> str:
    message = f"itsmd-session\x00{token.name}\x00{expires}".encode()
    return hmac.new(token.secret.encode(), message, hashlib.sha256).hexdigest()


def sign_session(token: Token, now: datetime) -> Session:
    """A new session of `token`, good for SESSION_TTL."""
    expires = int((now + SESSION_TTL).timestamp())
    name = base64.urlsafe_b64encode(token.name.encode()).decode().rstrip("=")
    return Session(token, expires, f"{name}.{expires}.{_session_mac(token, expires)}")


def session_of(value: str | None, tokens: Sequence[Token], now: datetime) -> Session | None:
    """The session a cookie's value proves, or None: malformed, expired, or signed
    with a secret no configured token of that name has (any more)."""
    if not value or len(value) > 512:
        return None
    encoded, _, rest = value.partition(".")
    expires_text, _, mac = rest.partition(".")
    try:
        name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12:
        return None
    expires = int(expires_text)
    token = next((t for t in tokens if t.name == name), None)
    if token is None or expires <= now.timestamp():
        return None
    if not hmac.compare_digest(_session_mac(token, expires).encode(), mac.encode()):
        return None
    return Session(token, expires, value)


class LoginRefused(Exception):
    """A console login that failed: the message for the person, and for a throttled
    address the seconds until it may try again."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def log_in(request: web.Request, secret: str) -> Token:
    """The token a console login's secret names, counted and throttled like a wrong
    token in a header; raises LoginRefused."""
    settings = request.app[RUNTIME].settings
    client = request.remote or "unknown"
    throttle = request.app[THROTTLE]
    wait = throttle.retry_after(client)
    if wait:
        seconds = math.ceil(wait)
        raise LoginRefused(
            f"too many failed sign-ins from {client}: try again in {seconds}s", seconds
        )
    token = authenticate(f"Bearer {secret}", settings.tokens) if secret.strip() else None
    if token is None:
        _failed(request, "unknown_token", "unauthorized")
        if throttle.failed(client, settings.max_auth_failures):
            request.app[REFUSALS](
                "throttled",
                f"refusing {client} for {throttle.BLOCK_S:g}s: "
                f"{settings.max_auth_failures} wrong tokens within a minute",
            )
        raise LoginRefused("unknown or wrong token")
    if token.role not in READERS:
        _failed(request, "wrong_role", "forbidden")
        raise LoginRefused(
            f"token {token.name!r} has role {token.role}; the console needs read, respond or admin"
        )
    return token


class OwnHosts(NamedTuple):
    accepted: frozenset[str]  # lowercased `Host` values (and origins' host[:port])
    shown: tuple[str, ...]  # what an error lists as expected


@lru_cache(maxsize=64)
def own_hosts(listen: str, external_url: str | None, port: int | None) -> OwnHosts:
    """The names this daemon answers to: the listen address (host:port and the bare
    host), localhost, 127.0.0.1 and [::1] with the port (the one the connection came
    in on, and the configured one), and external_url's host."""
    host, listen_port = split_listen(listen)
    name = f"[{host}]" if ":" in host else host
    ports = dict.fromkeys(p for p in (port, listen_port) if p is not None)
    shown = [f"{n}:{p}" for p in ports for n in (name, *LOOPBACK_NAMES)]
    accepted = {*shown, name}
    if external_url:
        url = urlsplit(external_url)
        netloc = url.netloc.rpartition("@")[2]
        shown.append(netloc)
        accepted |= {netloc, netloc.rpartition(":")[0] if url.port else netloc}
    shown = list(dict.fromkeys(s.lower() for s in shown))
    return OwnHosts(frozenset(a.lower() for a in accepted), tuple(shown))


def foreign_host(request: web.Request, settings: Settings) -> str | None:
    """Why the request's `Host` is not this daemon's, or None. Without one it is no
    browser's (browsers always send it)."""
    host = request.headers.get(hdrs.HOST)
    if host is None:
        return None
    own = own_hosts(settings.listen, settings.external_url, _local_port(request))
    if host.lower() in own.accepted:
        return None
    return f"Host {host!r} is not this daemon's (expected {_either(own.shown)})"


def foreign_origin(request: web.Request, settings: Settings) -> str | None:
    """Why the request's `Origin` is not this daemon's own, or None (no Origin: not
    sent by a browser, which always sends one with a POST)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return None
    scheme, sep, netloc = origin.lower().partition("://")
    host = request.headers.get(hdrs.HOST, "").lower()
    if sep and scheme in ("http", "https") and netloc:
        if netloc == host:
            return None
        own = own_hosts(settings.listen, settings.external_url, _local_port(request))
        if netloc in own.accepted:
            return None
    expected = [f"http://{host}"] if host else []
    if settings.external_url:
        expected.append(settings.external_url)
    return f"Origin {origin!r} is not this daemon's (expected {_either(expected) or 'none'})"


def not_json(request: web.Request) -> str | None:
    """Why the request's body is not declared JSON, or None. A request without a body
    (`curl -X POST .../-/reload`) may leave Content-Type out, but not send a form's."""
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    if declared == JSON:
        return None
    media = (declared or "").partition(";")[0].strip().lower()
    if media == JSON or not (request.body_exists or media in FORM_TYPES):
        return None
    got = repr(declared) if declared else "none"
    return f"Content-Type: expected {JSON}, got {got}"


def _either(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


@lru_cache(maxsize=1024)  # one parse per client address, not per request
def _is_loopback(remote: str | None) -> bool:
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return remote == "localhost"


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    method, path = request.method, request.path
    roles = required_roles(method, path)
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    tokens = settings.tokens
    response: web.StreamResponse
    if roles is not None and not tokens:
        if not _is_loopback(request.remote):
            _failed(request, "not_loopback", "forbidden")
            return _answer(
                request, 403, "no auth tokens are configured: only loopback clients are served"
            )
        problem = foreign_host(request, settings)
        if problem is not None:
            return _refuse(request, 403, "host", problem, logged=True)
    if is_api_write(method, path):
        problem = foreign_origin(request, settings)
        if problem is not None:
            return _refuse(request, 403, "origin", problem, logged=True)
        problem = not_json(request)
        if problem is not None:
            return _refuse(request, 415, "content_type", problem)
    elif method not in SAFE_METHODS and is_console(path):
        # The console's forms: another site's page must not post them (login included).
        problem = foreign_origin(request, settings)
        if problem is not None:
            return _refuse(request, 403, "origin", problem, logged=True)
    if roles is None:
        if tokens and path in CONSOLE_OPEN:
            _attach_session(request)  # none needed, but /logout checks whose form it is
        response = await handler(request)
        return response
    if not tokens:
        request[ACTOR] = "anonymous"
        request[ROLE] = Role.ADMIN
        response = await handler(request)
        return response
    if is_console(path):
        return await _console_session(request, handler, roles)
    client = request.remote or "unknown"
    throttle = request.app[THROTTLE]
    wait = throttle.retry_after(client)
    if wait:
        seconds = math.ceil(wait)
        return _refuse(
            request,
            429,
            "throttled",
            f"too many failed authentications from {client}: try again in {seconds}s",
            {"Retry-After": str(seconds)},
        )
    header = request.headers.get(hdrs.AUTHORIZATION)
    token = authenticate(header, tokens) if header else None
    if token is None:
        if header:
            _failed(request, "unknown_token", "unauthorized")
            if throttle.failed(client, settings.max_auth_failures):
                request.app[REFUSALS](
                    "throttled",
                    f"refusing {client} for {throttle.BLOCK_S:g}s: "
                    f"{settings.max_auth_failures} wrong tokens within a minute",
                )
        else:
            _failed(request, "missing", "unauthorized")
        what = "missing Authorization header" if not header else "unknown or wrong token"
        return error_response(
            401, f"{what}: send Authorization: Bearer <secret> or Basic auth", headers=_CHALLENGE
        )
    if token.role not in roles:
        _failed(request, "wrong_role", "forbidden")
        allowed = ", ".join(sorted(r.value for r in roles))
        return error_response(
            403,
            f"token {token.name!r} has role {token.role}; "
            f"{request.method} {request.path} needs one of: {allowed}",
        )
    request[ACTOR] = token.name
    request[ROLE] = token.role
    response = await handler(request)
    return response


def _attach_session(request: web.Request) -> None:
    """The session of the cookie, when it is a valid one, on a page that needs none."""
    runtime = request.app[RUNTIME]
    session = session_of(
        request.cookies.get(SESSION_COOKIE), runtime.settings.tokens, runtime.clock()
    )
    if session is not None:
        request[ACTOR] = session.token.name
        request[ROLE] = session.token.role
        request[SESSION] = session


async def _console_session(
    request: web.Request, handler: Any, roles: frozenset[Role]
) -> web.StreamResponse:
    """A console page with tokens configured: the session cookie says who. Without one
    a page sends the browser to sign in (and back here after), a form is refused."""
    runtime = request.app[RUNTIME]
    value = request.cookies.get(SESSION_COOKIE)
    session = session_of(value, runtime.settings.tokens, runtime.clock())
    if session is None:
        if request.method in SAFE_METHODS:
            target = "/login?next=" + quote(str(request.rel_url), safe="")
            return web.Response(status=303, headers={hdrs.LOCATION: target})
        why = "your session has ended" if value else "you are not signed in"
        return _answer(request, 403, f"{why}: sign in again, then send the form again")
    token = session.token
    if token.role not in roles:
        _failed(request, "wrong_role", "forbidden")
        allowed = ", ".join(sorted(r.value for r in roles))
        return _answer(
            request,
            403,
            f"token {token.name!r} has role {token.role}; this needs one of: {allowed}",
        )
    request[ACTOR] = token.name
    request[ROLE] = token.role
    request[SESSION] = session
    response: web.StreamResponse = await handler(request)
    return response


def _answer(
    request: web.Request, status: int, error: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """A refusal: a page on the console's paths (once the console is set up), else JSON."""
    page = request.app.get(CONSOLE_REFUSAL)
    if page is not None and is_console(request.path):
        return page(request, status, error, headers)
    return error_response(status, error, headers=headers)


def _failed(request: web.Request, reason: str, rejected: str) -> None:
    """Count a failed authentication (and a refused ingest request)."""
    request.app[RUNTIME].metrics.auth_failures.labels(reason).inc()
    _reject(request, rejected)


def _refuse(
    request: web.Request,
    status: int,
    reason: str,
    error: str,
    headers: dict[str, str] | None = None,
    *,
    logged: bool = False,
) -> web.StreamResponse:
    request.app[RUNTIME].metrics.http_refused.labels(reason).inc()
    if logged:
        request.app[REFUSALS](
            reason, f"refused {request.method} {request.path} from {request.remote}: {error}"
        )
    rejected = {403: "forbidden", 415: "unsupported_media_type", 429: "throttled"}[status]
    _reject(request, rejected)
    return _answer(request, status, error, headers)


def _reject(request: web.Request, reason: str) -> None:
    if request.path in INGEST_PATHS:
        request.app[RUNTIME].metrics.alerts_rejected.labels(reason).inc()
