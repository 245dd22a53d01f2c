"""What several API handlers read from a request, and the store they need."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from itsmd.api.errors import BadRequest
from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import Writer
from itsmd.store.engine import Database, StoreUnavailable

DEFAULT_LIMIT, MAX_LIMIT = 50, 500


def store_of(runtime: Runtime) -> Database:
    if runtime.db is None:
        raise StoreUnavailable("the store is not open yet")
    return runtime.db


async def json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def page_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdecimal() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def encode_cursor(incident_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{incident_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if not decoded.startswith("id:") or not decoded[3:].isdecimal():
        raise BadRequest("cursor: not a cursor from a previous page's 'next'")
    return int(decoded[3:])


def writer_of(runtime: Runtime) -> Writer:
    if runtime.writer is None:
        raise StoreUnavailable("the store is not open yet")
    return runtime.writer
