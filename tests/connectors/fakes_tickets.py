"""Helpers for the ticket and mail sink tests: recording fake APIs on loopback, sample events.

`FakeApi` is a real aiohttp application on 127.0.0.1 (kernel-chosen port) that
keeps every request as it arrived, decoded for exact assertions (method, path,
query, Basic credentials, JSON body), checks the credentials as the real API
would, and lets a test script one answer for one `(method, path)` before the
fake's own handlers see it. A hanging answer never replies until the fake stops:
that is how a test meets a client timeout without sleeping.

The sample events, `http_env`, `NO_IO` and `refused_port()` come from fakes_http.py.
"""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson
from aiohttp import web

# the shared sample events and helpers, re-exported for the ticket and mail sink tests
from tests.connectors.fakes_http import LINK as LINK
from tests.connectors.fakes_http import NO_IO as NO_IO
from tests.connectors.fakes_http import http_env as http_env
from tests.connectors.fakes_http import incident_event as incident_event
from tests.connectors.fakes_http import problem_event as problem_event
from tests.connectors.fakes_http import refused_port as refused_port
from tests.connectors.fakes_http import serving_app
from tests.connectors.fakes_http import without_link as without_link

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
    async with serving_app(api.app, api._stopping.set) as base_url:
        api.base_url = base_url
        yield api
