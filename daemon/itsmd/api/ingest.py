"""Alert ingestion: answer 2xx only once the alerts are committed.

Within a valid payload each alert stands on its own: one that is invalid is refused
by its index and the others are stored, and the answer is then a 422 listing what
was refused beside the usual result for what was stored (docs/api.md, Ingestion).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from itsmd.api.errors import BadRequest, ClientGone, SlowBody, TooLarge, error_response
from itsmd.api.keys import RUNTIME
from itsmd.api.params import read_body
from itsmd.runtime.batches import IngestResult
from itsmd.sources import Parsed, PayloadError, Source
from itsmd.store.engine import StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REJECTIONS: tuple[tuple[type[Exception], str], ...] = (
    (BadRequest, "malformed"),
    # A body that cannot be decoded (Content-Encoding) or that the client cut short
    # by hanging up: the errors middleware answers (or drops) them, both a 400.
    (RequestPayloadError, "malformed"),
    (ConnectionResetError, "malformed"),
    (ClientGone, "malformed"),
    (SlowBody, "timeout"),
    (TooLarge, "too_large"),
    (PayloadError, "invalid"),
    (StoreUnavailable, "unavailable"),
)
# Alerts refused one by one inside a valid payload, counted per alert.
REFUSED_ALERT = "invalid_alert"
_NOTHING_STORED = IngestResult(received=0, new=0, updated=0, duplicate=0, unrouted=0, incidents=())


def ingest_handler(source: Source) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        runtime = request.app[RUNTIME]
        try:
            body = await _read_json(request, runtime.settings.max_body)
            parsed = source.parse_each(body, runtime.clock())
            limit = runtime.settings.max_alerts
            if parsed.sent > limit:
                raise TooLarge(f"{parsed.sent} alerts in one request; limits.max_alerts is {limit}")
            if parsed.refused:
                runtime.metrics.alerts_rejected.labels(REFUSED_ALERT).inc(len(parsed.refused))
                if not parsed.alerts:
                    return _refused(parsed, _NOTHING_STORED)
            if runtime.writer is None:
                raise StoreUnavailable("the store is not open yet")
            result = await runtime.writer.ingest(parsed.alerts)
        except Exception as exc:
            reason = next((r for kind, r in _REJECTIONS if isinstance(exc, kind)), "error")
            runtime.metrics.alerts_rejected.labels(reason).inc()
            raise
        runtime.metrics.ingest_duration.observe(time.perf_counter() - started)
        if parsed.refused:
            return _refused(parsed, result)
        return web.json_response(result.as_json())

    return handle


def _refused(parsed: Parsed, stored: IngestResult) -> web.Response:
    """422 naming every refused alert by its index, with what became of the others
    (stored and committed, as in a 200 answer)."""
    refused = parsed.refused
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    error = (
        f"{len(refused)} of {parsed.sent} alerts refused; {len(parsed.alerts)} stored: "
        f"{refused[0]}{more}"
    )
    detail: dict[str, Any] = {
        "stored": len(parsed.alerts),
        "refused": [{"index": r.index, "field": r.field, "error": str(r)} for r in refused],
        **stored.as_json(),
    }
    return error_response(422, error, detail)


async def _read_json(request: web.Request, max_body: int) -> object:
    raw = await read_body(request, max_body, "limits.max_body")
    if not raw:
        raise BadRequest("empty body: expected JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
