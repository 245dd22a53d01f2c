"""Bearer and Basic auth with roles; constant-time secret comparison."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from aiohttp import web

from itsmd.api.errors import error_response
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.config import Role, Token

PUBLIC_PATHS = frozenset({"/metrics", "/-/healthy", "/-/ready"})
INGEST_PATHS = frozenset({"/api/v1/webhooks/alertmanager", "/api/v1/alerts"})
READERS = frozenset({Role.READ, Role.RESPOND, Role.ADMIN})
RESPONDERS = frozenset({Role.RESPOND, Role.ADMIN})
INGESTERS = frozenset({Role.INGEST, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="itsmd", Basic realm="itsmd"'}


def required_roles(method: str, path: str) -> frozenset[Role] | None:
    """The roles allowed to make this request; None when it needs no token."""
    if path in PUBLIC_PATHS:
        return None
    if path == "/-/reload":
        return ADMINS
    if path in INGEST_PATHS and method == "POST":
        return INGESTERS
    if method in ("GET", "HEAD", "OPTIONS"):
        return READERS
    acts = path.startswith(("/api/v1/incidents", "/api/v1/problems"))
    return RESPONDERS if acts else ADMINS


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
    roles = required_roles(request.method, request.path)
    response: web.StreamResponse
    if roles is None:
        response = await handler(request)
        return response
    runtime = request.app[RUNTIME]
    tokens = runtime.settings.tokens
    if not tokens:
        if not _is_loopback(request.remote):
            _reject(request, "forbidden")
            return error_response(
                403, "no auth tokens are configured: only loopback clients are served"
            )
        request[ACTOR] = "anonymous"
        response = await handler(request)
        return response
    header = request.headers.get("Authorization")
    token = authenticate(header, tokens) if header else None
    if token is None:
        _reject(request, "unauthorized")
        what = "missing Authorization header" if not header else "unknown or wrong token"
        return error_response(
            401, f"{what}: send Authorization: Bearer <secret> or Basic auth", headers=_CHALLENGE
        )
    if token.role not in roles:
        _reject(request, "forbidden")
        allowed = ", ".join(sorted(r.value for r in roles))
        return error_response(
            403,
            f"token {token.name!r} has role {token.role}; "
            f"{request.method} {request.path} needs one of: {allowed}",
        )
    request[ACTOR] = token.name
    response = await handler(request)
    return response


def _reject(request: web.Request, reason: str) -> None:
    if request.path in INGEST_PATHS:
        request.app[RUNTIME].metrics.alerts_rejected.labels(reason).inc()
