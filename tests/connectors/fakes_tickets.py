"""Helpers for the ticket and mail sink tests: recording fake APIs on loopback, sample events.

`FakeApi` is a real aiohttp application on 127.0.0.1 (kernel-chosen port) that
keeps every request as it arrived, decoded for exact assertions (method, path,
query, Basic credentials, JSON body), checks the credentials as the real API
would, and lets a test script one answer for one `(method, path)` before the
fake's own handlers see it. A hanging answer never replies until the fake stops:
that is how a test meets a client timeout without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn, TypeVar

import aiohttp
import orjson
from aiohttp import web

from itsmd.connector import Notification, SinkEnv

Api = TypeVar("Api", bound="FakeApi")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    auth: tuple[str, str] | None  # Basic credentials
    body: Any  # decoded JSON; None without a body

    @property
    def call(self) -> tuple[str, str, dict[str, str], Any]:
        return (self.method, self.path, self.query, self.body)


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int
    body: Any = None  # JSON, or str sent as given
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False


class FakeApi:
    """Recording base of a fake outside API; subclasses add routes to `app`."""

    unauthorized: ClassVar[Any] = {"error": "unauthorized"}

    def __init__(self, user: str, password: str) -> None:
        self.credentials = (user, password)
        self.seen: list[Seen] = []
        self.base_url = ""
        self._script: defaultdict[tuple[str, str], deque[Scripted]] = defaultdict(deque)
        self._stopping = asyncio.Event()
        self.app = web.Application(middlewares=[self._front])

    def script(self, method: str, path: str, *answers: Scripted) -> None:
        """Answer the next requests to `method path` with these, in order."""
        self._script[(method, path)].extend(answers)

    @property
    def calls(self) -> list[tuple[str, str, dict[str, str], Any]]:
        return [seen.call for seen in self.seen]

    @web.middleware
    async def _front(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                request.headers,
                basic_credentials(request.headers.get("Authorization", "")),
                orjson.loads(raw) if raw else None,
            )
        )
        if self.seen[-1].auth != self.credentials:
            return json_response(401, self.unauthorized)
        queue = self._script.get((request.method, request.path))
        if not queue:
            return await handler(request)
        answer = queue.popleft()
        if answer.hang:
            await self._stopping.wait()
        if isinstance(answer.body, str):
            return web.Response(status=answer.status, text=answer.body, headers=answer.headers)
        return json_response(answer.status, answer.body, answer.headers)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers=headers,
        content_type="application/json",
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(value).decode().partition(":")
    return (user, password)


@asynccontextmanager
async def serving(api: Api) -> AsyncIterator[Api]:
    """Run `api` on 127.0.0.1 until the block ends; hanging answers are let go first."""
    runner = web.AppRunner(api.app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        api.base_url = f"http://{host}:{port}"
        yield api
    finally:
        api._stopping.set()
        await runner.cleanup()


@asynccontextmanager
async def http_env(timeout_s: float = 5.0) -> AsyncIterator[SinkEnv]:
    """A SinkEnv over a real client session, closed at the end."""
    async with aiohttp.ClientSession() as session:
        yield SinkEnv(http=lambda: session, timeout_s=timeout_s)


def _no_io() -> NoReturn:
    raise AssertionError("building a sink must not touch the network")


NO_IO = SinkEnv(http=_no_io)


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


# --- sample events -------------------------------------------------------------------

AT = datetime(2026, 3, 1, 12, 5, 30, tzinfo=UTC)
LINK = "https://itsmd.example.com/incidents/INC-42"


def incident(**overrides: Any) -> dict[str, Any]:
    """Incident JSON (DESIGN section 3) of an open P1 disk incident."""
    return {
        "id": "INC-42",
        "status": "open",
        "title": "Disk full on db-1",
        "description": "/var on db-1 is 97% full",
        "priority": "P1",
        "impact": "high",
        "urgency": "high",
        "service": "billing",
        "rule": "disk",
        "key": "billing/disk",
        "assignee": None,
        "opened_at": "2026-03-01T12:05:00Z",
        "acknowledged_at": None,
        "resolved_at": None,
        "alert_count": 2,
        "firing_count": 2,
        "problem_id": None,
        "parent_id": None,
        "sla": {
            "respond_due": "2026-03-01T12:20:00Z",
            "resolve_due": "2026-03-01T16:05:00Z",
            "breached": False,
        },
        "labels": {"alertname": "DiskFull", "service": "billing", "instance": "db-1"},
        "known_error": None,
        **overrides,
    }


def problem(**overrides: Any) -> dict[str, Any]:
    """Problem JSON (DESIGN section 3) of a recurring disk problem."""
    return {
        "id": "PRB-7",
        "status": "open",
        "title": "Recurring disk full on db hosts",
        "rule": "disk",
        "key": "billing/disk",
        "opened_at": "2026-03-01T12:05:00Z",
        "resolved_at": None,
        "root_cause": None,
        "workaround": None,
        "incident_count": 3,
        **overrides,
    }


def incident_event(
    event: str = "opened", ref: str | None = None, attempt: int = 1, **overrides: Any
) -> Notification:
    return Notification(
        event_id="evt-0001",
        event=event,
        at=AT,
        incident=incident(**overrides),
        link=LINK,
        ref=ref,
        attempt=attempt,
    )


def problem_event(event: str = "problem_opened", **overrides: Any) -> Notification:
    return Notification(
        event_id="evt-0002",
        event=event,
        at=AT,
        incident=None,
        problem=problem(**overrides),
        link="https://itsmd.example.com/problems/PRB-7",
    )


def without_link(notification: Notification) -> Notification:
    return replace(notification, link="")
