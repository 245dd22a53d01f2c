"""One middleware maps domain errors to HTTP answers `{"error", "detail"}`."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from itsmd.correlation.lifecycle import Conflict
from itsmd.runtime.actions import InvalidAction, NotFound
from itsmd.sources import PayloadError
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """Malformed request (HTTP 400)."""


class TooLarge(Exception):
    """Request over a configured limit (HTTP 413)."""


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadRequest, 400),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (PayloadError, 422),
    (InvalidAction, 422),
)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(
            exc.status,
            exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text,
            headers=dict(exc.headers) if exc.status in (401, 405) else None,
        )
    except StoreUnavailable as exc:
        what = "cannot read the store" if request.method in ("GET", "HEAD") else "cannot store"
        return error_response(503, f"{what} right now: {exc}", headers={"Retry-After": "1"})
    except Exception as exc:
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                detail = {"field": exc.field} if isinstance(exc, PayloadError) else None
                return error_response(status, str(exc), detail)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error; see the daemon's log")
