"""What several API handlers read from a request, and the store they need.

A parameter or body that cannot be read is the client's fault, answered 400 naming
the parameter (`cursor: ...`) or `body: ...`; never a 500 (docs/api.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from aiohttp import StreamReader, web
from aiohttp.web_protocol import RequestPayloadError

from itsmd.api.errors import (
    BadRequest,
    ClientGone,
    SlowBody,
    TooLarge,
    UnreadableBody,
    payload_problem,
)
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.durations import parse_since
from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import Writer
from itsmd.store.engine import Database, StoreUnavailable

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
# The largest id the store holds (its id columns are INTEGER, 32 bits on PostgreSQL):
# a cursor or a path naming a larger one names nothing.
MAX_ID = 2**31 - 1
# Nesting a request body may have: the API's bodies are flat objects, and parsers
# downstream (the YAML loader behind maintenance windows) recurse.
MAX_DEPTH = 32
_CHUNK = 65536


def store_of(runtime: Runtime) -> Database:
    if runtime.db is None:
        raise StoreUnavailable("the store is not open yet")
    return runtime.db


async def read_body(request: web.Request, max_bytes: int, limit: str = "the limit") -> bytes:
    """The request body, decoded from its Content-Encoding: 413 over `max_bytes` (named
    `limit`) however it is sent (Content-Length, chunked, compressed: the decoded
    size counts), 408 when it does not arrive within limits.read_timeout, 400 when it
    cannot be read (a corrupt gzip body, broken chunked framing), ClientGone when the
    client hung up before sending it all."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise TooLarge(f"body: {length} bytes is over {limit} ({max_bytes} bytes)")
    content = request.content
    try:
        if content.is_eof():  # all of it is in already (the usual small body): no timer
            return await _read(content, max_bytes, limit)
        runtime = request.app[RUNTIME]
        timeout = runtime.settings.read_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                return await _read(content, max_bytes, limit)
        except TimeoutError:
            runtime.metrics.http_refused.labels("read_timeout").inc()
            raise SlowBody(
                f"body: not received within limits.read_timeout ({timeout:g}s)"
            ) from None
    except (ConnectionResetError, RequestPayloadError) as exc:
        transport = request.transport
        if isinstance(exc, ConnectionResetError) or transport is None or transport.is_closing():
            raise ClientGone() from None
        raise UnreadableBody(f"body: cannot be read: {payload_problem(exc)}") from None


async def _read(content: StreamReader, max_bytes: int, limit: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"body: over {limit} ({max_bytes} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON document; 400 when it is malformed, not UTF-8, nested deeper than
    `max_depth` or holds a NUL character (which PostgreSQL cannot store in text)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: malformed JSON: {exc}") from None
    _check_document(body, max_depth)
    return body


async def json_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body of at most `limits.max_body` bytes; an empty body is `{}`."""
    raw = await read_body(request, request.app[RUNTIME].settings.max_body, "limits.max_body")
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    return body


def acting(request: web.Request, body: Mapping[str, Any]) -> str:
    """Who acts: the token's name, or the `actor` a client names in the body (the CLI's
    `--as`, default $USER) when the daemon has no tokens; with a token, the named
    person and the token both (`ana (token oncall)`)."""
    actor = request.get(ACTOR, "anonymous")
    named = body.get("actor")
    if isinstance(named, str) and named.strip():
        by = named.strip()[:100]
        actor = by if actor == "anonymous" else f"{by} (token {actor})"
    return str(actor)


def page_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def encode_cursor(incident_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{incident_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):  # not base64, not ASCII
        decoded = ""
    digits = decoded[3:]
    if (
        not decoded.startswith("id:")
        or not (digits.isascii() and digits.isdigit())
        or len(digits) > 10
        or int(digits) > MAX_ID
    ):
        raise BadRequest("cursor: not a cursor from a previous page's 'next'")
    return int(digits)


def writer_of(runtime: Runtime) -> Writer:
    if runtime.writer is None:
        raise StoreUnavailable("the store is not open yet")
    return runtime.writer


def text_param(query: Any, name: str) -> str | None:
    """A free-text query parameter (empty is absent); 400 with a NUL character, which
    no stored text holds (PostgreSQL cannot store it)."""
    text: str | None = query.get(name) or None
    if text is not None and "\x00" in text:
        raise BadRequest(f"{name}: must not contain a NUL character")
    return text


def _check_document(value: Any, limit: int) -> None:
    """Arrays and objects nest at most `limit` levels and no string holds a NUL
    character (walked without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest("body: a string holds a NUL character")
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise BadRequest(f"body: JSON nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def since_param(text: str | None, now: datetime) -> datetime | None:
    """`since` of the lists: an RFC 3339 time, or a duration meaning that long ago."""
    if not text:
        return None
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise BadRequest(f"since: {exc}") from None
    except OverflowError:  # a duration longer ago than the calendar reaches (100000y)
        raise BadRequest(f"since: {text!r} is before the year 1") from None
