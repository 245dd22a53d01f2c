"""The webhook sink against a fake receiver on loopback: body, headers, signature, answers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from itsmd.notify.connector import (
    ENTRY_POINT_GROUP,
    Delivered,
    Delivery,
    Failed,
    Retry,
    SinkConfigError,
    SinkEnv,
    SinkOptions,
)
from itsmd_connectors.sinks import webhook
from tests.connectors.fakes_http import (
    NO_IO,
    Answer,
    FakePeer,
    http_env,
    incident,
    incident_event,
    problem,
    problem_event,
    refused_url,
    running_peer,
)

SECRET = "s3cret-hook-key"
ENVIRON = {"HOOK_SECRET": SECRET}


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer() as peer:
        yield peer


def build(env: SinkEnv, **values: Any) -> webhook.WebhookSink:
    return webhook.build(SinkOptions(values, environ=ENVIRON), env)


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="webhook")
    assert entry.load() is webhook.KIND
    assert webhook.KIND.kind == "webhook"
    assert webhook.KIND.doc


async def test_posts_the_event_as_signed_json(peer: FakePeer, env: SinkEnv) -> None:
    sink = build(
        env, url=peer.url("/hooks/itsmd"), secret_env="HOOK_SECRET", headers={"X-Team": "ops"}
    )
    assert await sink.send(incident_event()) == Delivered()

    (seen,) = peer.seen
    assert (seen.method, seen.path) == ("POST", "/hooks/itsmd")
    assert seen.json() == {
        "event_id": "evt-0001",
        "event": "opened",
        "at": "2026-03-01T12:05:30Z",
        "incident": incident(),
        "problem": None,
    }
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Itsmd-Event-Id"] == "evt-0001"
    assert seen.headers["X-Itsmd-Event"] == "opened"
    assert seen.headers["X-Team"] == "ops"
    assert hmac.compare_digest(seen.headers["X-Itsmd-Signature"], signature(seen.body))


async def test_a_retry_sends_the_same_event_id_and_bytes(peer: FakePeer, env: SinkEnv) -> None:
    sink = build(env, url=peer.url(), secret_env="HOOK_SECRET")
    peer.answer(Answer(500, "database is down"))
    first = incident_event()
    again = replace(first, attempt=2)

    assert await sink.send(first) == Retry("HTTP 500: database is down")
    assert await sink.send(again) == Delivered()

    one, two = peer.seen
    assert one.headers["X-Itsmd-Event-Id"] == two.headers["X-Itsmd-Event-Id"] == "evt-0001"
    assert one.body == two.body
    assert one.headers["X-Itsmd-Signature"] == two.headers["X-Itsmd-Signature"]


async def test_a_problem_event_without_secret_is_not_signed(peer: FakePeer, env: SinkEnv) -> None:
    sink = build(env, url=peer.url())
    assert await sink.send(problem_event()) == Delivered()

    (seen,) = peer.seen
    assert seen.json() == {
        "event_id": "evt-0002",
        "event": "problem_opened",
        "at": "2026-03-01T12:05:30Z",
        "incident": None,
        "problem": problem(),
    }
    assert "X-Itsmd-Signature" not in seen.headers
    assert seen.headers["X-Itsmd-Event"] == "problem_opened"


async def test_the_time_is_utc_with_z_and_microseconds_when_present(
    peer: FakePeer, env: SinkEnv
) -> None:
    paris = timezone(timedelta(hours=1))
    event = replace(incident_event(), at=datetime(2026, 3, 1, 13, 5, 30, 250, tzinfo=paris))
    await build(env, url=peer.url()).send(event)
    assert peer.seen[0].json()["at"] == "2026-03-01T12:05:30.000250Z"
    assert datetime.fromisoformat(peer.seen[0].json()["at"]) == event.at.astimezone(UTC)


async def test_the_secret_may_come_from_a_file(
    peer: FakePeer, env: SinkEnv, tmp_path: Path
) -> None:
    (tmp_path / "hook.key").write_text(SECRET + "\n")
    options = SinkOptions({"url": peer.url(), "secret_file": "hook.key"}, base=tmp_path)
    await webhook.build(options, env).send(incident_event())
    (seen,) = peer.seen
    assert seen.headers["X-Itsmd-Signature"] == signature(seen.body)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(202, ""), Delivered()),
        (Answer(500, "boom"), Retry("HTTP 500: boom")),
        (Answer(503, "busy", {"Retry-After": "30"}), Retry("HTTP 503: busy", 30.0)),
        (Answer(429, "slow down", {"Retry-After": "12"}), Retry("HTTP 429: slow down", 12.0)),
        (Answer(400, "bad payload"), Failed("HTTP 400: bad payload")),
        (Answer(401, "who are you"), Failed("HTTP 401: who are you")),
        (Answer(301, "moved", {"Location": "https://elsewhere/"}), Failed("HTTP 301: moved")),
    ],
    ids=["202", "500", "503-retry-after", "429-retry-after", "400", "401", "redirect"],
)
async def test_answers_are_classified(
    peer: FakePeer, env: SinkEnv, answer: Answer, expected: Delivery
) -> None:
    peer.answer(answer)
    assert await build(env, url=peer.url()).send(incident_event()) == expected
    assert len(peer.seen) == 1  # redirects are not followed


async def test_connection_refused_is_worth_a_retry(env: SinkEnv) -> None:
    with refused_url() as url:
        delivery = await build(env, url=url).send(incident_event())
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith("Cannot connect to host 127.0.0.1:")


async def test_no_answer_in_time_is_worth_a_retry(peer: FakePeer) -> None:
    peer.answer(Answer(hang=True))
    async with http_env(timeout_s=0.05) as env:
        delivery = await build(env, url=peer.url()).send(incident_event())
    assert delivery == Retry("no answer within 0.05s")


def test_building_needs_no_network() -> None:
    sink = build(NO_IO, url="https://hooks.example.com/itsmd", secret_env="HOOK_SECRET")
    assert sink.secret == SECRET.encode()


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({}, "url", "required"),
        ({"url": "ftp://files.example.com/"}, "url", "expected an http:// or https:// URL"),
        ({"url": "https://"}, "url", "expected an http:// or https:// URL"),
        ({"url": "https://h/", "colour": "red"}, "colour", "unknown option"),
        ({"url": "https://h/", "secret": SECRET}, "secret", "secrets are never inline"),
        ({"url": "https://h/", "secret_env": "NOPE"}, "secret_env", "NOPE is not set"),
        ({"url": "https://h/", "headers": ["X-A"]}, "headers", "expected a mapping"),
        ({"url": "https://h/", "headers": {"X Bad": "1"}}, "headers", "not a valid header"),
        ({"url": "https://h/", "headers": {"x-itsmd-event": "1"}}, "headers", "set by itsmd"),
        ({"url": "https://h/", "headers": {"X-A": "1\r\nX-B: 2"}}, "headers", "line break"),
    ],
    ids=[
        "missing-url",
        "ftp",
        "no-host",
        "unknown",
        "inline-secret",
        "unset-env",
        "headers-list",
        "header-name",
        "own-header",
        "header-injection",
    ],
)
def test_bad_options_are_named(values: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(SinkConfigError) as caught:
        build(NO_IO, **values)
    assert [(k, m) for k, m in caught.value.problems if k == key and message in m], (
        caught.value.problems
    )
    assert key in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SinkConfigError) as caught:
        build(NO_IO, secret="x", colour="red")
    assert sorted(k for k, _ in caught.value.problems) == ["colour", "secret", "url"]
