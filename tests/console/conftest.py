"""Console tests: the real app from `build_app` with the console's routes, on aiohttp's
test server, against a real store (SQLite and PostgreSQL, through `db_url`).

`make_console(rules_yaml, remote=..., **settings)` returns a started `ConsoleClient`: the API
client's shortcuts plus signing in (`login_as(name)`, which forgets the previous
session first: one client, one cookie jar, one person at a time; `sign_in(fields)`
sends the form of /login as it is), reading pages and
sending forms with the CSRF token of the page they are on. Redirects are never
followed, so that a test sees each 303 and where it leads.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from html import unescape
from typing import Any, Protocol

import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from itsmd import console
from itsmd.api import routes
from itsmd.config import Role, Settings, Token
from itsmd.console.render import JINJA
from itsmd.server.app import build_app
from tests.api.api_support import DEFAULT_RULES, ApiClient, FakeClock, remote_is
from tests.api.conftest import rule_set

TOKENS = (  # secrets of 16 characters or more, as the config requires
    Token("alertmanager", Role.INGEST, "s3cret-ingest-0123456789"),
    Token("viewer", Role.READ, "s3cret-read-0123456789"),
    Token("oncall", Role.RESPOND, "s3cret-respond-0123456789"),
    Token("root", Role.ADMIN, "s3cret-admin-0123456789"),
)
SECRETS = {t.name: t.secret for t in TOKENS}
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


class ConsoleClient(ApiClient):
    async def login_as(self, name: str) -> ClientResponse:
        """Sign in with the token of that name (its secret on /login), fresh."""
        self.session.cookie_jar.clear()
        resp = await self.sign_in({"token": SECRETS[name], "next": "/incidents"})
        assert resp.status == 303, await resp.text()
        return resp

    async def sign_in(self, fields: Mapping[str, str]) -> ClientResponse:
        """Send the sign-in form as a browser would from /login (its CSRF token)."""
        return await self.submit("/login", fields, on="/login")

    async def page(self, path: str, status: int = 200) -> str:
        resp = await self.get(path, allow_redirects=False)
        text = await resp.text()
        assert resp.status == status, f"GET {path} -> {resp.status}: {text[:2000]}"
        return text

    async def csrf(self, path: str) -> str:
        """The CSRF token of the forms on a page."""
        found = _CSRF.search(await self.page(path))
        assert found is not None, f"no form with a CSRF token on {path}"
        return found.group(1)

    async def submit(
        self, path: str, fields: Mapping[str, str], *, on: str, csrf: str | None = None
    ) -> ClientResponse:
        """POST a form as the browser would from page `on` (its CSRF token unless given)."""
        token = await self.csrf(on) if csrf is None else csrf
        return await self.post(path, data={"csrf": token, **fields}, allow_redirects=False)

    async def api_incident(self, ref: str, token: str = "root") -> dict[str, Any]:
        """The incident as the JSON API shows it (header auth, as an API client)."""
        with_tokens = self.runtime.settings.tokens
        headers = {"Authorization": f"Bearer {SECRETS[token]}"} if with_tokens else {}
        resp = await self.get(f"/api/v1/incidents/{ref}", headers=headers)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def text_of(html: str) -> str:
    """The page's text without tags, entities decoded: what a person reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


class MakeConsole(Protocol):
    def __call__(
        self, rules_yaml: str = ..., *, remote: str | None = ..., **settings: Any
    ) -> Awaitable[ConsoleClient]: ...


@pytest.fixture
def aiohttp_client_cls() -> type[ConsoleClient]:
    return ConsoleClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_console(db_url: str, clock: FakeClock, aiohttp_client: AiohttpClient) -> MakeConsole:
    async def create(
        rules_yaml: str = DEFAULT_RULES, *, remote: str | None = None, **settings: Any
    ) -> ConsoleClient:
        app = build_app(
            Settings(**{"database": db_url, **settings}),
            clock=clock,
            rules=rule_set(rules_yaml),
            sweep_interval=timedelta(hours=1),
            run_checks=False,
        )
        if JINJA not in app:  # until the composition root wires the console itself
            routes.register(app, console.OPERATIONS)
            console.setup(app)
        if remote is not None:
            app.middlewares.insert(0, remote_is(remote))  # outermost: before auth
        client = await aiohttp_client(app)
        assert isinstance(client, ConsoleClient)
        client.clock = clock
        return client

    return create
