"""Helpers for sink tests: a fake outside HTTP API on 127.0.0.1, sink envs, sample events.

`running_peer()` serves any method and path on a kernel-chosen loopback port, records
every request as it arrived (method, path, headers, raw body) and answers from a
script (`peer.answer(...)`), else with its default answer; a `check` sees each
request first and may answer it instead (a receiver that verifies signatures). A
hanging answer never replies until the peer stops: that is how a test meets a client
timeout without sleeping. `refused_url()` holds a bound port that does not listen,
so a connection to it is refused for certain (a "free" port could be taken by someone
else).

`serving_app()` runs any aiohttp application so (the ticket fakes of fakes_tickets.py
use it too), and the sample events at the end serve the tests of every sink.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import aiohttp
import orjson
from aiohttp import web

from itsmd.notify.connector import Notification, SinkEnv


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: str = "ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"
    hang: bool = False  # never answer (until the peer stops)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the peer received it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Check = Callable[[Seen], Answer | None]  # an answer refuses the request


class FakePeer:
    def __init__(self, default: Answer, check: Check | None = None) -> None:
        self.default = default
        self.check = check
        self.seen: list[Seen] = []
        self.base_url = ""
        self._script: deque[Answer] = deque()
        self._stopping = asyncio.Event()

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; then with the default."""
        self._script.extend(answers)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def release(self) -> None:
        """Let hanging answers go (before the server stops)."""
        self._stopping.set()

    async def handle(self, request: web.Request) -> web.Response:
        seen = Seen(request.method, request.path_qs, request.headers, await request.read())
        self.seen.append(seen)
        refused = self.check(seen) if self.check is not None else None
        if refused is not None:
            return web.Response(status=refused.status, text=refused.body)
        answer = self._script.popleft() if self._script else self.default
        if answer.hang:
            await self._stopping.wait()
        return web.Response(
            status=answer.status,
            text=answer.body,
            headers=answer.headers,
            content_type=answer.content_type,
        )


@asynccontextmanager
async def serving_app(app: web.Application, release: Callable[[], None]) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 until the block ends, yielding its base URL; `release`
    lets hanging answers go before the server stops."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        release()
        await runner.cleanup()


@asynccontextmanager
async def running_peer(
    default: Answer | None = None, check: Check | None = None
) -> AsyncIterator[FakePeer]:
    peer = FakePeer(default or Answer(), check)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", peer.handle)
    async with serving_app(app, peer.release) as base_url:
        peer.base_url = base_url
        yield peer


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


@contextmanager
def refused_url(path: str = "/") -> Iterator[str]:
    """A loopback URL on a `refused_port()`."""
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}{path}"


# --- sample events -------------------------------------------------------------------

AT = datetime(2026, 3, 1, 12, 5, 30, tzinfo=UTC)
LINK = "https://itsmd.example.com/incidents/INC-42"


def incident(**overrides: Any) -> dict[str, Any]:
    """Incident JSON (docs/api.md) of an open P1 disk incident."""
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
    """Problem JSON (docs/api.md) of a recurring disk problem."""
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
    event: str = "opened", ref: str | None = None, attempt: int = 1, **incident_overrides: Any
) -> Notification:
    return Notification(
        event_id="evt-0001",
        event=event,
        at=AT,
        incident=incident(**incident_overrides),
        link=LINK,
        ref=ref,
        attempt=attempt,
    )


def problem_event(event: str = "problem_opened", **problem_overrides: Any) -> Notification:
    return Notification(
        event_id="evt-0002",
        event=event,
        at=AT,
        incident=None,
        problem=problem(**problem_overrides),
        link="https://itsmd.example.com/problems/PRB-7",
    )


def without_link(notification: Notification) -> Notification:
    return replace(notification, link="")
