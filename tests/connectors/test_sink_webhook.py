"""The webhook sink against a fake receiver on loopback: body, headers, signature, answers.

The receiver checks `X-Itsmd-Signature-V2` with the `verify` function printed in
docs/connectors.md, run as written: what receivers are told to do is what is tested.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Callable
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
    Seen,
    http_env,
    incident,
    incident_event,
    problem,
    problem_event,
    refused_url,
    running_peer,
)

SECRET = "s3cret-hook-key"
TOKEN = "hook-bearer-token"
ENVIRON = {"HOOK_SECRET": SECRET, "HOOK_TOKEN": TOKEN, "HOOK_PASSWORD": "pa55:word"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors.md"
Verify = Callable[..., bool]  # (secret, body, header, now=None) -> bool


def documented_verify() -> Verify:
    """The `verify` of the webhook section of docs/connectors.md, run as printed."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### `webhook`") : text.index("### `slack`")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    verify: Verify = namespace["verify"]
    return verify


VERIFY = documented_verify()


def receiver_check(clock: Callable[[], float] = time.time) -> Callable[[Seen], Answer | None]:
    """A receiver's check as the docs describe it: 401 unless the V2 signature verifies
    against the secret, at the receiver's `clock`."""

    def check(seen: Seen) -> Answer | None:
        header = seen.headers.get(webhook.SIGNATURE, "")
        if VERIFY(SECRET.encode(), seen.body, header, now=clock()):
            return None
        return Answer(401, "bad signature")

    return check


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer() as peer:
        yield peer


@pytest.fixture
async def receiver() -> AsyncIterator[FakePeer]:
    """A receiver that verifies every request's signature as docs/connectors.md says."""
    async with running_peer(check=receiver_check()) as peer:
        yield peer


def build(env: SinkEnv, **values: Any) -> webhook.WebhookSink:
    return webhook.build(SinkOptions(values, environ=ENVIRON), env)


def signature(body: bytes) -> str:
    """The deprecated `X-Itsmd-Signature`: the body only."""
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def signed_at(seen: Seen) -> int:
    """The `t` of a request's V2 signature."""
    match = re.fullmatch(r"t=(\d+),v1=[0-9a-f]{64}", seen.headers[webhook.SIGNATURE])
    assert match is not None, seen.headers[webhook.SIGNATURE]
    return int(match[1])


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="webhook")
    assert entry.load() is webhook.KIND
    assert webhook.KIND.kind == "webhook"
    assert webhook.KIND.doc


async def test_posts_the_event_as_signed_json(receiver: FakePeer, env: SinkEnv) -> None:
    sink = build(
        env, url=receiver.url("/hooks/itsmd"), secret_env="HOOK_SECRET", headers={"X-Team": "ops"}
    )
    before = int(time.time())
    assert await sink.send(incident_event()) == Delivered()  # the signature verified

    (seen,) = receiver.seen
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
    assert before <= signed_at(seen) <= time.time()
    assert VERIFY(SECRET.encode(), seen.body, seen.headers[webhook.SIGNATURE])
    assert hmac.compare_digest(seen.headers["X-Itsmd-Signature"], signature(seen.body))


def test_the_signature_is_hmac_of_the_time_a_dot_and_the_body() -> None:
    """The worked example of docs/connectors.md, by the sink and by the documented check."""
    body = b'{"event_id":"evt-0001","event":"opened"}'
    header = webhook.sign(b"example-secret", body, 1772366730)
    assert (
        header
        == "t=1772366730,v1="
        + hmac.new(b"example-secret", b"1772366730." + body, hashlib.sha256).hexdigest()
    )
    assert f"`{header}`" in DOCS.read_text(encoding="utf-8")
    assert VERIFY(b"example-secret", body, header, now=1772366730 + 299)


async def test_a_retry_is_signed_anew_with_the_same_event_id_and_bytes(
    receiver: FakePeer, env: SinkEnv
) -> None:
    now = [time.time() - 60]
    sink = replace(build(env, url=receiver.url(), secret_env="HOOK_SECRET"), clock=lambda: now[0])
    receiver.answer(Answer(500, "database is down"))
    first = incident_event()

    assert await sink.send(first) == Retry("HTTP 500: database is down")
    now[0] += 45
    assert await sink.send(replace(first, attempt=2)) == Delivered()

    one, two = receiver.seen
    assert one.headers["X-Itsmd-Event-Id"] == two.headers["X-Itsmd-Event-Id"] == "evt-0001"
    assert one.body == two.body
    assert signed_at(two) == signed_at(one) + 45  # the time of each attempt
    assert one.headers[webhook.SIGNATURE] != two.headers[webhook.SIGNATURE]
    assert one.headers["X-Itsmd-Signature"] == two.headers["X-Itsmd-Signature"]  # deprecated


async def test_a_replayed_request_is_refused_by_the_documented_check(env: SinkEnv) -> None:
    """A request captured and sent again more than 5 minutes later does not verify."""
    receiver_now = [time.time()]
    async with running_peer(check=receiver_check(lambda: receiver_now[0])) as receiver:
        sink = build(env, url=receiver.url(), secret_env="HOOK_SECRET")
        assert await sink.send(incident_event()) == Delivered()
        (captured,) = receiver.seen
        stamp = signed_at(captured)

        replay = {k: v for k, v in captured.headers.items() if k.lower() not in {"host"}}
        session = env.http()
        receiver_now[0] = stamp + 301
        async with session.post(receiver.url(), data=captured.body, headers=replay) as answer:
            assert answer.status == 401  # too old
        receiver_now[0] = stamp + 299
        async with session.post(receiver.url(), data=captured.body, headers=replay) as answer:
            assert answer.status == 200  # within 5 minutes: the event id is what drops it

    secret, body, header = SECRET.encode(), captured.body, captured.headers[webhook.SIGNATURE]
    assert VERIFY(secret, body, header, now=stamp)
    assert not VERIFY(secret, body, header, now=stamp - 301)  # from the future
    assert not VERIFY(secret, body.replace(b"P1", b"P5"), header, now=stamp)
    assert not VERIFY(b"another-secret", body, header, now=stamp)
    v1 = header.split(",v1=")[1]
    assert not VERIFY(secret, body, f"t={stamp + 1},v1={v1}", now=stamp)  # the time is signed
    assert not VERIFY(secret, body, f"v1={v1}", now=stamp)
    assert not VERIFY(secret, body, f"t={stamp},t={stamp},v1={v1}", now=stamp)
    assert VERIFY(secret, body, f"t={stamp},v1={'0' * 64},v1={v1},v2=future", now=stamp)


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
    assert webhook.SIGNATURE not in seen.headers
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
    receiver: FakePeer, env: SinkEnv, tmp_path: Path
) -> None:
    (tmp_path / "hook.key").write_text(SECRET + "\n")
    options = SinkOptions({"url": receiver.url(), "secret_file": "hook.key"}, base=tmp_path)
    assert await webhook.build(options, env).send(incident_event()) == Delivered()
    (seen,) = receiver.seen
    assert seen.headers["X-Itsmd-Signature"] == signature(seen.body)


async def test_a_bearer_token_comes_from_the_environment(peer: FakePeer, env: SinkEnv) -> None:
    await build(env, url=peer.url(), bearer_token_env="HOOK_TOKEN").send(incident_event())
    assert peer.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_bearer_token_comes_from_a_file(
    peer: FakePeer, env: SinkEnv, tmp_path: Path
) -> None:
    (tmp_path / "hook.token").write_text(TOKEN + "\n")
    options = SinkOptions({"url": peer.url(), "bearer_token_file": "hook.token"}, base=tmp_path)
    await webhook.build(options, env).send(incident_event())
    assert peer.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_basic_auth_comes_from_user_and_a_secret_password(
    peer: FakePeer, env: SinkEnv
) -> None:
    sink = build(env, url=peer.url(), user="itsmd", password_env="HOOK_PASSWORD")
    await sink.send(incident_event())
    credentials = base64.b64encode(b"itsmd:pa55:word").decode()
    assert peer.seen[0].headers["Authorization"] == f"Basic {credentials}"


def test_credentials_stay_out_of_the_repr() -> None:
    sink = build(NO_IO, url="https://h/", secret_env="HOOK_SECRET", bearer_token_env="HOOK_TOKEN")
    assert TOKEN not in repr(sink)
    assert SECRET not in repr(sink)


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
        ({"url": "https://h/", "headers": {"X-Itsmd-Anything": "1"}}, "headers", "set by itsmd"),
        (
            {"url": "https://h/", "headers": {"Authorization": "Bearer xyz"}},
            "headers",
            "Authorization holds a secret and secrets are never inline: use bearer_token_env "
            "or bearer_token_file (Bearer), or user with password_env or password_file (Basic)",
        ),
        (
            {"url": "https://h/", "headers": {"aUTHORIZATION": "Basic eHl6"}},
            "headers",
            "aUTHORIZATION holds a secret",
        ),
        ({"url": "https://h/", "bearer_token": TOKEN}, "bearer_token", "never inline"),
        ({"url": "https://h/", "bearer_token_env": "NOPE"}, "bearer_token_env", "NOPE is not set"),
        (
            {"url": "https://h/", "bearer_token_env": "HOOK_SECRET", "bearer_token_file": "t"},
            "bearer_token",
            "give only one of bearer_token_env and bearer_token_file",
        ),
        (
            {"url": "https://h/", "bearer_token_env": "SPACED"},
            "bearer_token",
            "a bearer token has no spaces or control characters",
        ),
        (
            {"url": "https://h/", "bearer_token_env": "HOOK_TOKEN", "user": "u"},
            "bearer_token",
            "give either bearer_token_env/_file or user, not both",
        ),
        ({"url": "https://h/", "user": "itsmd"}, "password", "give password_env or password_file"),
        ({"url": "https://h/", "password_env": "HOOK_PASSWORD"}, "password", "give user too"),
        ({"url": "https://h/", "user": "a:b", "password_env": "HOOK_PASSWORD"}, "user", "no ':'"),
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
        "own-prefix",
        "inline-authorization",
        "inline-authorization-any-case",
        "inline-bearer-token",
        "unset-bearer-env",
        "bearer-env-and-file",
        "bearer-token-with-space",
        "bearer-and-basic",
        "user-without-password",
        "password-without-user",
        "user-with-colon",
        "header-injection",
    ],
)
def test_bad_options_are_named(values: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(SinkConfigError) as caught:
        webhook.build(SinkOptions(values, environ={**ENVIRON, "SPACED": "a b"}), NO_IO)
    assert [(k, m) for k, m in caught.value.problems if k == key and message in m], (
        caught.value.problems
    )
    assert key in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SinkConfigError) as caught:
        build(NO_IO, secret="x", colour="red")
    assert sorted(k for k, _ in caught.value.problems) == ["colour", "secret", "url"]
