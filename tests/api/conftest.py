"""API tests: the real app from `build_app` on aiohttp's test server, against a real store.

`make_client(rules_yaml, clock=..., remote=..., **settings)` builds Settings (the
database is the `db_url` of the test, so every test runs on SQLite and on PostgreSQL),
a RuleSet from YAML text and an app whose clock is a `FakeClock`; it returns the
started test client. `remote` makes the app see the client at that address.
Nothing but the database is written to disk. The scheduler runs its hold sweep only
hourly, so tests call `client.sweep()` themselves after moving the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from itsmd.config import Settings
from itsmd.correlation.rules import RuleSet, parse_rule_sections
from itsmd.server.app import build_app
from itsmd.store.engine import Database
from itsmd.store.migrate import upgrade
from tests.api.api_support import DEFAULT_RULES, ApiClient, FakeClock, MakeClient, remote_is

RULES_FILENAME = "test-rules.yml"


@pytest.fixture
def aiohttp_client_cls() -> type[ApiClient]:
    """pytest-aiohttp builds its clients from this class."""
    return ApiClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def rule_set(rules_yaml: str) -> RuleSet:
    return parse_rule_sections(rules_yaml, RULES_FILENAME).rule_set(RULES_FILENAME)


@pytest.fixture
def make_client(
    db_url: str,  # first: the database outlives the clients (torn down in reverse)
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
) -> MakeClient:
    default_clock = clock

    async def create(
        rules_yaml: str = DEFAULT_RULES,
        *,
        clock: FakeClock | None = None,
        remote: str | None = None,
        **settings: Any,
    ) -> ApiClient:
        app_clock = clock or default_clock
        app = build_app(
            Settings(**{"database": db_url, **settings}),
            clock=app_clock,
            rules=rule_set(rules_yaml),
            sweep_interval=timedelta(hours=1),
            run_checks=False,  # tests run checks one by one: `client.run_check(name)`
        )
        if remote is not None:
            app.middlewares.insert(0, remote_is(remote))  # outermost: before auth
        client = await aiohttp_client(app)
        assert isinstance(client, ApiClient)
        client.clock = app_clock
        return client

    return create


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The test's database, migrated, for store code run without an app."""
    database = Database(db_url, busy_timeout=timedelta(seconds=1))
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()
