"""The `webhook` sink: every event as one signed JSON POST to the operator's URL.

The shape is ours (docs/connectors.md): `POST <url>` with the body
`{"event_id", "event", "at", "incident", "problem"}`, where `at` is RFC 3339 UTC with
a `Z`, `incident` is the Incident JSON (null for problem events) and `problem` the
Problem JSON (null for incident events). Headers: `Content-Type: application/json`,
`X-Itsmd-Event-Id` (the idempotency key, the same on every retry, so a receiver can
drop duplicates), `X-Itsmd-Event`, and with a secret `X-Itsmd-Signature-V2:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` in the manner of Stripe's
`Stripe-Signature`: the time of this attempt is signed with the body, so a receiver
that refuses old times cannot be made to accept a captured request again later, and
every attempt (a retry too) is signed anew. The body is serialized once and the
signature covers exactly the bytes sent. The older `X-Itsmd-Signature:
sha256=<hex HMAC-SHA256 of the body>` (no time: replayable) is still sent, for one
release, and is deprecated.

Credentials for the receiver come from the environment or a file like every secret:
`bearer_token_env`/`_file` (Bearer) or `user` with `password_env`/`_file` (Basic); an
`Authorization` among the inline `headers` is refused.
Redirects are not followed: a 3xx means the URL is wrong, and is reported as such.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from itsmd.notify.connector import (
    Delivery,
    Notification,
    SinkEnv,
    SinkKind,
    SinkOptions,
    http_post,
    is_http_url,
    rfc3339,
)

SIGNATURE = "X-Itsmd-Signature-V2"
LEGACY_SIGNATURE = "X-Itsmd-Signature"  # deprecated: signs the body only
OWN_PREFIX = "x-itsmd-"  # every X-Itsmd-* header is ours
OWN_HEADERS = ("Content-Type", "X-Itsmd-Event-Id", "X-Itsmd-Event", SIGNATURE, LEGACY_SIGNATURE)
SECRET_HEADERS = ("Authorization",)
CREDENTIAL_OPTIONS = (
    "bearer_token_env or bearer_token_file (Bearer), "
    "or user with password_env or password_file (Basic)"
)
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def build(options: SinkOptions, env: SinkEnv) -> WebhookSink:
    url = options.text("url")
    secret = options.secret("secret", required=False)
    authorization = _authorization(options)
    headers = options.mapping("headers")
    if url and not is_http_url(url):
        options.fail("url", f"expected an http:// or https:// URL, got {url!r}")
    for problem in _header_problems(headers):
        options.fail("headers", problem)
    options.done()
    if authorization is not None:
        headers["Authorization"] = authorization
    return WebhookSink(url, secret.encode() if secret else None, headers, env)


@dataclass(frozen=True, slots=True)
class WebhookSink:
    url: str
    secret: bytes | None = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)  # extra ones, Authorization included
    env: SinkEnv
    clock: Callable[[], float] = field(default=time.time, repr=False)  # Unix seconds

    async def send(self, notification: Notification) -> Delivery:
        body = encode(notification)
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "X-Itsmd-Event-Id": notification.event_id,
            "X-Itsmd-Event": notification.event,
        }
        if self.secret is not None:
            headers[SIGNATURE] = sign(self.secret, body, int(self.clock()))
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers[LEGACY_SIGNATURE] = f"sha256={digest}"
        return await http_post(self.env, self.url, body, headers)


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-Itsmd-Signature-V2` value: `t=<timestamp>,v1=<hex HMAC-SHA256 of
    "<timestamp>.<body>">`, the timestamp in decimal Unix seconds."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return f"t={timestamp},v1={hmac.new(secret, signed, hashlib.sha256).hexdigest()}"


def encode(notification: Notification) -> bytes:
    """The body, serialized once: what is signed is what is sent."""
    return orjson.dumps(
        {
            "event_id": notification.event_id,
            "event": notification.event,
            "at": rfc3339(notification.at),
            "incident": notification.incident,
            "problem": notification.problem,
        },
        default=_plain,
    )


def _plain(value: object) -> dict[str, Any]:
    """orjson encodes dicts only; the Incident JSON may come as another Mapping."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _authorization(options: SinkOptions) -> str | None:
    """The `Authorization` value from the secret options, None without them: Bearer from
    `bearer_token`, or Basic from `user` and `password`, not both."""
    bearer = options.bearer_auth("bearer_token")
    if "user" not in options.values:
        if options.secret("password", required=False) is not None:
            options.fail("password", "a password is for Basic auth: give user too")
        return bearer
    basic = options.basic_auth("user", "password")
    if bearer is not None:
        options.fail("bearer_token", "give either bearer_token_env/_file or user, not both")
    return basic or None


def _header_problems(headers: Mapping[str, str]) -> Iterator[str]:
    own = {name.lower() for name in OWN_HEADERS}
    secret = {name.lower() for name in SECRET_HEADERS}
    for name, value in headers.items():
        if not _FIELD_NAME.fullmatch(name):
            yield f"{name!r} is not a valid header name"
        elif name.lower() in own or name.lower().startswith(OWN_PREFIX):
            yield f"{name} is set by itsmd"
        elif name.lower() in secret:
            yield f"{name} holds a secret and secrets are never inline: use {CREDENTIAL_OPTIONS}"
        elif any(c in value for c in "\r\n\0"):
            yield f"the value of {name} holds a line break or NUL"


KIND = SinkKind(
    kind="webhook",
    build=build,
    doc="POST each event as JSON, signed with HMAC-SHA256, to any HTTP endpoint",
)
