"""Alert ingestion: answer 2xx only once the alerts are committed."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from itsmd.api.errors import BadRequest, TooLarge
from itsmd.api.keys import RUNTIME
from itsmd.sources import PayloadError, Source
from itsmd.store.engine import StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REJECTIONS: tuple[tuple[type[Exception], str], ...] = (
    (BadRequest, "malformed"),
    (TooLarge, "too_large"),
    (PayloadError, "invalid"),
    (StoreUnavailable, "unavailable"),
)


def ingest_handler(source: Source) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        runtime = request.app[RUNTIME]
        try:
            body = await _read_body(request, runtime.settings.max_body)
            alerts = source.parse(body, runtime.clock())
            limit = runtime.settings.max_alerts
            if len(alerts) > limit:
                raise TooLarge(f"{len(alerts)} alerts in one request; limits.max_alerts is {limit}")
            if runtime.writer is None:
                raise StoreUnavailable("the store is not open yet")
            result = await runtime.writer.ingest(alerts)
        except Exception as exc:
            reason = next((r for kind, r in _REJECTIONS if isinstance(exc, kind)), "error")
            runtime.metrics.alerts_rejected.labels(reason).inc()
            raise
        runtime.metrics.ingest_duration.observe(time.perf_counter() - started)
        return web.json_response(result.as_json())

    return handle


async def _read_body(request: web.Request, max_body: int) -> object:
    length = request.content_length
    if length is not None and length > max_body:
        raise TooLarge(f"body of {length} bytes is over limits.max_body ({max_body} bytes)")
    chunks, size = [], 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > max_body:
            raise TooLarge(f"body is over limits.max_body ({max_body} bytes)")
        chunks.append(chunk)
    if not size:
        raise BadRequest("empty body: expected JSON")
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
