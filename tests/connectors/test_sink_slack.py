"""The slack sink against a fake incoming webhook on loopback: exact messages, answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
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
from itsmd_connectors.sinks import slack
from tests.connectors.fakes_http import (
    NO_IO,
    Answer,
    FakePeer,
    incident_event,
    problem_event,
    refused_url,
    running_peer,
)

TOKEN_PATH = "/services/T000/B000/XXXXsecretXXXX"


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer() as peer:
        yield peer


def build(env: SinkEnv, url: str, **values: Any) -> slack.SlackSink:
    options = SinkOptions({"url_env": "SLACK_WEBHOOK_URL", **values}, {"SLACK_WEBHOOK_URL": url})
    return slack.build(options, env)


def field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{name}*\n{value}"}


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="slack")
    assert entry.load() is slack.KIND
    assert slack.KIND.kind == "slack"
    assert slack.KIND.doc


async def test_an_opened_p1_incident(peer: FakePeer, env: SinkEnv) -> None:
    assert await build(env, peer.url(TOKEN_PATH)).send(incident_event()) == Delivered()

    (seen,) = peer.seen
    assert (seen.method, seen.path) == ("POST", TOKEN_PATH)
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "text": "P1 INC-42 opened: Disk full on db-1 (billing)",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "P1 INC-42 opened: Disk full on db-1"},
            },
            {
                "type": "section",
                "fields": [
                    field("Priority", "P1"),
                    field("Status", "open"),
                    field("Service", "billing"),
                    field("Event", "opened"),
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "<https://itsmd.example.com/incidents/INC-42|View INC-42 in itsmd>",
                },
            },
        ],
    }


async def test_a_resolved_incident_without_link(peer: FakePeer, env: SinkEnv) -> None:
    event = replace(
        incident_event("resolved", status="resolved", priority="P3", service=None), link=""
    )
    sink = build(env, peer.url(), channel="#ops", username="itsmd", icon_emoji=":rotating_light:")
    assert await sink.send(event) == Delivered()

    assert peer.seen[0].json() == {
        "text": "P3 INC-42 resolved: Disk full on db-1",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "P3 INC-42 resolved: Disk full on db-1"},
            },
            {
                "type": "section",
                "fields": [
                    field("Priority", "P3"),
                    field("Status", "resolved"),
                    field("Service", "—"),
                    field("Event", "resolved"),
                ],
            },
        ],
        "channel": "#ops",
        "username": "itsmd",
        "icon_emoji": ":rotating_light:",
    }


async def test_a_problem_opened(peer: FakePeer, env: SinkEnv) -> None:
    assert await build(env, peer.url()).send(problem_event()) == Delivered()

    headline = "Problem PRB-7 opened: Recurring disk full on db hosts"
    assert peer.seen[0].json() == {
        "text": headline,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline}},
            {
                "type": "section",
                "fields": [
                    field("Status", "open"),
                    field("Incidents", "3"),
                    field("Event", "problem_opened"),
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "<https://itsmd.example.com/problems/PRB-7|View PRB-7 in itsmd>",
                },
            },
        ],
    }


@pytest.mark.parametrize(
    ("event", "overrides", "text"),
    [
        ("acknowledged", {}, "P1 INC-42 acknowledged: Disk full on db-1 (billing)"),
        ("reopened", {}, "P1 INC-42 reopened: Disk full on db-1 (billing)"),
        ("assigned", {"assignee": "alice"}, "P1 INC-42 assigned to alice: Disk full on db-1"),
        ("assigned", {"assignee": None}, "P1 INC-42 unassigned: Disk full on db-1 (billing)"),
        ("commented", {}, "P1 INC-42 has a new comment: Disk full on db-1 (billing)"),
        ("sla_breached", {}, "P1 INC-42 breached its SLA: Disk full on db-1 (billing)"),
        ("opened", {"title": "<b> & co"}, "P1 INC-42 opened: &lt;b&gt; &amp; co (billing)"),
        ("opened", {"title": ""}, "P1 INC-42 opened: (no title) (billing)"),
    ],
)
def test_every_incident_event_reads_as_a_sentence(
    event: str, overrides: dict[str, Any], text: str
) -> None:
    assert slack.message(incident_event(event, **overrides))["text"].startswith(text)


def test_problem_resolved_reads_as_a_sentence() -> None:
    message = slack.message(problem_event("problem_resolved", status="resolved"))
    assert message["text"] == "Problem PRB-7 resolved: Recurring disk full on db hosts"


def test_a_long_title_is_clipped_in_the_header_only() -> None:
    message = slack.message(incident_event(title="x" * 300))
    header = message["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")
    assert "x" * 300 in message["text"]


def test_a_link_cannot_break_out_of_its_markup() -> None:
    message = slack.message(replace(incident_event(), link="https://h/x?a=1|<b>"))
    assert (
        message["blocks"][-1]["text"]["text"] == "<https://h/x?a=1%7C%3Cb%3E|View INC-42 in itsmd>"
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(400, "invalid_payload"), Failed("HTTP 400: invalid_payload")),
        (Answer(403, "invalid_token"), Failed("HTTP 403: invalid_token")),
        (Answer(404, "no_service"), Failed("HTTP 404: no_service")),
        (Answer(410, "channel_is_archived"), Failed("HTTP 410: channel_is_archived")),
        (Answer(429, "rate_limited", {"Retry-After": "30"}), Retry("HTTP 429: rate_limited", 30)),
        (Answer(500, "rollup_error"), Retry("HTTP 500: rollup_error")),
        (Answer(503, "unavailable"), Retry("HTTP 503: unavailable")),
    ],
    ids=["400", "403", "404", "410", "429", "500", "503"],
)
async def test_answers_are_classified(
    peer: FakePeer, env: SinkEnv, answer: Answer, expected: Delivery
) -> None:
    peer.answer(answer)
    assert await build(env, peer.url(TOKEN_PATH)).send(incident_event()) == expected


async def test_connection_refused_is_worth_a_retry_and_hides_the_url(env: SinkEnv) -> None:
    with refused_url(TOKEN_PATH) as url:
        delivery = await build(env, url).send(incident_event())
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith("Cannot connect to host 127.0.0.1:")
    assert "secret" not in delivery.reason


def test_the_url_may_come_from_a_file_and_is_never_shown(tmp_path: Path) -> None:
    (tmp_path / "slack.url").write_text("https://hooks.slack.com" + TOKEN_PATH + "\n")
    sink = slack.build(SinkOptions({"url_file": "slack.url"}, base=tmp_path), NO_IO)
    assert sink.url == "https://hooks.slack.com" + TOKEN_PATH
    assert "secret" not in repr(sink)


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({}, "url", "give url_env or url_file"),
        ({"url": "https://hooks.slack.com/x"}, "url", "secrets are never inline"),
        ({"url_env": "UNSET"}, "url_env", "UNSET is not set"),
        ({"url_env": "SLACK_WEBHOOK_URL", "channel": ""}, "channel", "non-empty string"),
        ({"url_env": "SLACK_WEBHOOK_URL", "icon": ":x:"}, "icon", "unknown option"),
        ({"url_env": "SLACK_BAD_URL"}, "url", "expected an https:// URL"),
    ],
    ids=["missing", "inline", "unset", "empty-channel", "unknown", "not-a-url"],
)
def test_bad_options_are_named(values: dict[str, Any], key: str, message: str) -> None:
    environ = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "SLACK_BAD_URL": "secret-junk"}
    with pytest.raises(SinkConfigError) as caught:
        slack.build(SinkOptions(values, environ), NO_IO)
    assert [(k, m) for k, m in caught.value.problems if k == key and message in m], (
        caught.value.problems
    )
    assert "secret-junk" not in str(caught.value)
