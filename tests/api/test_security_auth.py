"""Brute force (docs/configuration.md, auth): failed authentications are counted by
reason, and an address that keeps sending wrong tokens is refused (429 with
Retry-After) for a while, in memory and bounded."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from pytest_aiohttp import AiohttpClient

from itsmd.api.auth import FailureThrottle, RefusalLog
from itsmd.config import Role, Settings, Token
from itsmd.server.app import build_app
from tests.api.api_support import (
    DEFAULT_RULES,
    INCIDENTS,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    webhook_body,
)
from tests.api.conftest import rule_set

TOKENS = (
    Token("alertmanager", Role.INGEST, "s3cret-ingest-0123456789"),
    Token("viewer", Role.READ, "s3cret-read-0123456789"),
)
JSON = {"Content-Type": "application/json"}
WRONG = {"Authorization": "Bearer not-the-secret-0123456789", **JSON}
RIGHT = {"Authorization": f"Bearer {TOKENS[0].secret}", **JSON}
FAILURES = "itsmd_auth_failures_total"
BODY = json.dumps(webhook_body(alert("Probe"))).encode()


async def _post(client: ApiClient, headers: dict[str, str]) -> int:
    resp = await client.post(WEBHOOK, data=BODY, headers=headers)
    await resp.read()
    return resp.status


async def test_failed_authentications_are_counted_by_reason(make_client: MakeClient) -> None:
    client = await make_client(tokens=TOKENS)
    assert await _post(client, JSON) == 401
    assert await _post(client, WRONG) == 401
    assert await _post(client, {"Authorization": "Token abc", **JSON}) == 401
    viewer = {"Authorization": f"Bearer {TOKENS[1].secret}", **JSON}
    assert await _post(client, viewer) == 403
    assert await _post(client, RIGHT) == 200

    assert await client.metric(FAILURES, reason="missing") == 1
    assert await client.metric(FAILURES, reason="unknown_token") == 2
    assert await client.metric(FAILURES, reason="wrong_role") == 1


async def test_a_client_not_on_loopback_without_tokens_is_counted(
    make_client: MakeClient,
) -> None:
    client = await make_client(remote="203.0.113.7")
    assert (await client.get(INCIDENTS)).status == 403
    assert await client.metric(FAILURES, reason="not_loopback") == 1


async def test_ten_wrong_tokens_in_a_minute_refuse_the_address_with_429(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(tokens=TOKENS)
    for _ in range(10):
        assert await _post(client, WRONG) == 401
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == ["refusing 127.0.0.1 for 60s: 10 wrong tokens within a minute"]

    # Refused now, the right token too: whether a guess was right stays unknown.
    for headers in (WRONG, RIGHT, {}):
        resp = await client.post(WEBHOOK, data=BODY, headers={**JSON, **headers})
        answer = await resp.json()
        assert resp.status == 429, answer
        assert answer["error"] == (
            "too many failed authentications from 127.0.0.1: try again in 60s"
        )
        assert resp.headers["Retry-After"] == "60"
    resp = await client.get(INCIDENTS, headers={"Authorization": f"Bearer {TOKENS[1].secret}"})
    assert resp.status == 429

    assert await client.stored_alerts() == []
    assert await client.metric(FAILURES, reason="unknown_token") == 10
    assert await client.metric("itsmd_http_refused_total", reason="throttled") == 4
    assert await client.metric("itsmd_alerts_rejected_total", reason="throttled") == 3
    # What needs no token is still served.
    assert (await client.get("/-/healthy")).status == 200


@web.middleware
async def _remote_from_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The client's address from `X-Test-Remote`, as a reverse proxy would set it."""
    return await handler(request.clone(remote=request.headers["X-Test-Remote"]))


async def test_other_addresses_are_served_meanwhile(
    db_url: str, aiohttp_client: AiohttpClient
) -> None:
    app = build_app(
        Settings(database=db_url, tokens=TOKENS),
        rules=rule_set(DEFAULT_RULES),
        sweep_interval=timedelta(hours=1),
        run_checks=False,
    )
    app.middlewares.insert(0, _remote_from_header)
    client = await aiohttp_client(app)
    guessing, other = {"X-Test-Remote": "203.0.113.7"}, {"X-Test-Remote": "198.51.100.1"}
    for _ in range(10):
        resp = await client.post(WEBHOOK, data=BODY, headers={**WRONG, **guessing})
        assert resp.status == 401
    resp = await client.post(WEBHOOK, data=BODY, headers={**RIGHT, **guessing})
    assert resp.status == 429
    resp = await client.post(WEBHOOK, data=BODY, headers={**RIGHT, **other})
    assert resp.status == 200, await resp.text()


async def test_missing_headers_and_wrong_roles_do_not_refuse_the_address(
    make_client: MakeClient,
) -> None:
    client = await make_client(tokens=TOKENS)
    viewer = {"Authorization": f"Bearer {TOKENS[1].secret}", **JSON}
    for _ in range(20):
        assert await _post(client, JSON) == 401
        assert await _post(client, viewer) == 403
    assert await _post(client, RIGHT) == 200


async def test_max_auth_failures_sets_the_count_and_0_turns_it_off(
    make_client: MakeClient,
) -> None:
    client = await make_client(tokens=TOKENS, max_auth_failures=3)
    assert [await _post(client, WRONG) for _ in range(4)] == [401, 401, 401, 429]
    client = await make_client(tokens=TOKENS, max_auth_failures=0)
    assert {await _post(client, WRONG) for _ in range(30)} == {401}
    assert await _post(client, RIGHT) == 200


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_refusal_ends_after_a_minute() -> None:
    clock = FakeTime()
    throttle = FailureThrottle(clock)
    assert [throttle.failed("a", 3) for _ in range(3)] == [False, False, True]
    assert throttle.retry_after("a") == 60
    assert throttle.retry_after("b") == 0
    clock.now += 59.5
    assert throttle.retry_after("a") == pytest.approx(0.5)
    clock.now += 1
    assert throttle.retry_after("a") == 0
    assert not throttle.failed("a", 3), "a fresh count after the refusal"


def test_failures_spread_over_more_than_a_minute_are_not_refused() -> None:
    clock = FakeTime()
    throttle = FailureThrottle(clock)
    for _ in range(5):
        assert not throttle.failed("a", 3)
        clock.now += 31  # two in a minute at most
    assert throttle.retry_after("a") == 0


def test_the_throttle_remembers_a_bounded_number_of_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FailureThrottle, "MAX_CLIENTS", 100)
    clock = FakeTime()
    throttle = FailureThrottle(clock)
    for n in range(1000):
        throttle.failed(f"2001:db8::{n:x}", 10)
    assert len(throttle) == 100
    throttle.failed("2001:db8::3e7", 10)  # the newest is remembered
    assert len(throttle) == 100


def test_a_flood_of_refusals_is_a_line_a_minute_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeTime()
    refusals = RefusalLog(logging.getLogger("test.refusals"), clock)
    for n in range(3):
        refusals("host", f"refused {n}")
    refusals("origin", "refused another way")
    clock.now += 61
    refusals("host", "refused again")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused another way",
        "refused again (and 2 more like it in the last minute)",
    ]
