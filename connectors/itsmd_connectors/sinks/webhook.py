"""The `webhook` sink: every event as one signed JSON POST to the operator's URL.

The shape is ours (docs/connectors.md): `POST <url>` with the body
`{"event_id", "event", "at", "incident", "problem"}`, where `at` is RFC 3339 UTC with
a `Z`, `incident` is the Incident JSON (null for problem events) and `problem` the
Problem JSON (null for incident events). Headers: `Content-Type: application/json`,
`X-Itsmd-Event-Id` (the idempotency key, the same on every retry, so a receiver can
drop duplicates), `X-Itsmd-Event`, and with a secret `X-Itsmd-Signature:
sha256=<hex HMAC-SHA256 of the body>` in the manner of GitHub's `X-Hub-Signature-256`:
the body is serialized once and the signature covers exactly the bytes sent.
Redirects are not followed: a 3xx means the URL is wrong, and is reported as such.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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

OWN_HEADERS = ("Content-Type", "X-Itsmd-Event-Id", "X-Itsmd-Event", "X-Itsmd-Signature")
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def build(options: SinkOptions, env: SinkEnv) -> WebhookSink:
    url = options.text("url")
    secret = options.secret("secret", required=False)
    headers = options.mapping("headers")
    if url and not is_http_url(url):
        options.fail("url", f"expected an http:// or https:// URL, got {url!r}")
    for problem in _header_problems(headers):
        options.fail("headers", problem)
    options.done()
    return WebhookSink(url, secret.encode() if secret else None, headers, env)


@dataclass(frozen=True, slots=True)
class WebhookSink:
    url: str
    secret: bytes | None
    headers: Mapping[str, str]  # extra ones from the config
    env: SinkEnv

    async def send(self, notification: Notification) -> Delivery:
        body = encode(notification)
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "X-Itsmd-Event-Id": notification.event_id,
            "X-Itsmd-Event": notification.event,
        }
        if self.secret is not None:
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Itsmd-Signature"] = f"sha256={digest}"
        return await http_post(self.env, self.url, body, headers)


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


def _header_problems(headers: Mapping[str, str]) -> Iterator[str]:
    own = {name.lower() for name in OWN_HEADERS}
    for name, value in headers.items():
        if not _FIELD_NAME.fullmatch(name):
            yield f"{name!r} is not a valid header name"
        elif name.lower() in own:
            yield f"{name} is set by itsmd"
        elif any(c in value for c in "\r\n\0"):
            yield f"the value of {name} holds a line break or NUL"


KIND = SinkKind(
    kind="webhook",
    build=build,
    doc="POST each event as JSON, signed with HMAC-SHA256, to any HTTP endpoint",
)
