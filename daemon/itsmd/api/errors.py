"""One middleware maps domain errors to HTTP answers `{"error", "detail"}`."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from itsmd.correlation.lifecycle import Conflict
from itsmd.runtime.actions import InvalidAction, NotFound
from itsmd.sources import PayloadError
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """Malformed request (HTTP 400)."""


class TooLarge(Exception):
    """Request over a configured limit (HTTP 413)."""


class UnreadableBody(BadRequest):
    """A body aiohttp could not read (HTTP 400); the connection cannot carry another
    request after it."""


class SlowBody(Exception):
    """A body that did not arrive within limits.read_timeout (HTTP 408); the connection
    closes after the answer."""


class ClientGone(Exception):
    """The client closed its connection before its request was read: there is nobody
    to answer, and nothing went wrong here."""


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def payload_problem(exc: RequestPayloadError) -> str:
    """What is wrong with a body aiohttp could not read (a Content-Encoding that does
    not decode, broken chunked framing), in one line."""
    cause = exc.__cause__
    message = getattr(cause, "message", None) or str(cause or exc) or type(exc).__name__
    return " ".join(str(message).split())


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadRequest, 400),
    (NotFound, 404),
    (SlowBody, 408),
    (Conflict, 409),
    (TooLarge, 413),
    (PayloadError, 422),
    (InvalidAction, 422),
)
# Headers of an HTTPException that describe its own text body, not the JSON answer.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error(request, exc)
    except StoreUnavailable as exc:
        reading = request.method in ("GET", "HEAD")
        cause = store_cause(exc)
        if cause != str(exc):
            # The writer logs what it could not store; a read is logged here.
            level = logging.WARNING if reading else logging.DEBUG
            log.log(level, "%s %s: 503, the store cannot serve: %s", *_line(request), exc)
        what = "cannot read the store" if reading else "cannot store"
        return error_response(503, f"{what} right now: {cause}", headers={"Retry-After": "1"})
    except (ClientGone, ConnectionResetError, RequestPayloadError) as exc:
        if isinstance(exc, ClientGone) or _client_gone(request):
            log.debug("%s %s: the client went away before its body was read", *_line(request))
            return error_response(400, "the client closed the connection")
        if isinstance(exc, RequestPayloadError):
            response = error_response(400, f"body: cannot be read: {payload_problem(exc)}")
            return _closing(request, response)
        log.exception("unexpected error on %s %s", *_line(request))
        return error_response(500, "internal error; see the daemon's log")
    except Exception as exc:
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                detail = {"field": exc.field} if isinstance(exc, PayloadError) else None
                response = error_response(status, str(exc), detail)
                if isinstance(exc, (UnreadableBody, SlowBody)):
                    return _closing(request, response)
                return response
        log.exception("unexpected error on %s %s", *_line(request))
        return error_response(500, "internal error; see the daemon's log")


# The text of a driver's error as the store passes it on (`describe_error`): its class
# name first. Such text may name the database's host and port.
_DRIVER_TEXT = re.compile(r"[A-Za-z_][\w.]*: ")
# What a client is told about a store that cannot serve, by what the driver's text
# says (lowercased), first match wins; the text itself stays in the log.
_STORE_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("statement timeout", "querycanceled"), "statement timeout"),
    (
        ("lock timeout", "locknotavailable", "lock not available", "is locked", "sqlite_busy"),
        "lock timeout: the database is locked by another transaction",
    ),
    (
        ("serializ", "could not serialize"),
        "serialization failure: another transaction changed the same data",
    ),
    (("deadlock",), "deadlock with another transaction"),
    (("duplicate key", "unique", "integrity"), "a conflict with another writer"),
    (("disk is full", "diskfull", "disk full", "no space left"), "disk full"),
    (("not a database", "notadb", "malformed", "corrupt"), "the database file is damaged"),
    (("readonly", "read-only", "read only"), "the database is read-only"),
    (("unable to open database", "cantopen"), "the database file cannot be opened"),
    (("too many clients", "too many connections", "toomanyconnections"), "too many connections"),
    (("out of memory", "nomem"), "the database is out of memory"),
    (("disk i/o", "ioerr"), "disk I/O error"),
    (
        (
            "terminating connection",
            "shutdown",
            "cannotconnectnow",
            "starting up",
            "shutting down",
            "recovery",
            "connection was closed",
            "connectiondoesnotexist",
            "connection is closed",
            "closed the connection",
        ),
        "the database session was ended (killed, or the server is restarting)",
    ),
    (("queuepool", "pool limit"), "no database connection free in time"),
    (
        (
            "connect",
            "refused",
            "unreachable",
            "timed out",
            "timeout",
            "name or service",
            "name resolution",
            "gaierror",
            "no route",
            "errno",
            "oserror",
        ),
        "the database server is unreachable",
    ),
)


def store_cause(exc: StoreUnavailable) -> str:
    """Why the store cannot serve, in general terms fit for any client: a driver's
    text may name the database's host and port (asyncpg: "Connect call failed
    ('10.0.0.5', 5432)"), which the log keeps and the answer does not."""
    text = str(exc)
    if not _DRIVER_TEXT.match(text):
        return text  # the daemon's own words (not open yet, too much queued)
    lowered = text.lower()
    for needles, cause in _STORE_CAUSES:
        if any(n in lowered for n in needles):
            return cause
    return "a database error (the daemon's log has it)"


def http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, wrong method, body over the server's ceiling)
    as JSON, keeping the headers that belong to the answer (`Allow`, a challenge)."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        return error_response(
            405,
            f"method {request.method} is not allowed on {request.path}; "
            f"allowed: {', '.join(allowed)}",
            {"allowed": allowed},
            headers,
        )
    if exc.text is None or exc.text.startswith(f"{exc.status}:"):
        error = f"{exc.reason}: {request.method} {request.path}"
    else:
        error = exc.text
    return error_response(exc.status, error, headers=headers or None)


def _closing(request: web.Request, response: web.Response) -> web.Response:
    """The answer to a body that could not be read: the connection closes after it
    (`Connection: close`), and the rest of the body is not read (aiohttp would
    otherwise read on after the answer, meet the same error and log it)."""
    request.content.feed_eof()
    response.force_close()
    return response


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _line(request: web.Request) -> tuple[str, str]:
    return request.method, request.path
