"""The pagerduty sink against a fake Events API v2 on loopback: exact events, answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from importlib.metadata import entry_points
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
from itsmd_connectors.sinks import pagerduty
from tests.connectors.fakes_http import (
    LINK,
    NO_IO,
    Answer,
    FakePeer,
    incident_event,
    problem_event,
    refused_url,
    running_peer,
)

ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
ACCEPTED = Answer(
    202,
    '{"status":"success","message":"Event processed","dedup_key":"INC-42"}',
    content_type="application/json",
)
INVALID = Answer(
    400,
    '{"status":"invalid event","message":"Event object is invalid",'
    '"errors":["Length of \'routing_key\' is incorrect (should be 32 characters)"]}',
    content_type="application/json",
)


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(ACCEPTED) as peer:
        yield peer


def build(env: SinkEnv, url: str, **values: Any) -> pagerduty.PagerDutySink:
    values = {"routing_key_env": "PD_ROUTING_KEY", "url": url, **values}
    return pagerduty.build(SinkOptions(values, {"PD_ROUTING_KEY": ROUTING_KEY}), env)


def trigger(**payload_overrides: Any) -> dict[str, Any]:
    """The trigger PagerDuty should get for the sample incident."""
    return {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "INC-42",
        "payload": {
            "summary": "Disk full on db-1",
            "source": "billing",
            "severity": "critical",
            "timestamp": "2026-03-01T12:05:30Z",
            "component": "billing",
            "group": "disk",
            "class": "P1",
            "custom_details": {
                "incident": "INC-42",
                "status": "open",
                "priority": "P1",
                "labels": {"alertname": "DiskFull", "service": "billing", "instance": "db-1"},
                "description": "/var on db-1 is 97% full",
                "known_error": None,
            },
            **payload_overrides,
        },
        "links": [{"href": LINK, "text": "INC-42 in itsmd"}],
        "client": "itsmd",
    }


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="pagerduty")
    assert entry.load() is pagerduty.KIND
    assert pagerduty.KIND.kind == "pagerduty"
    assert pagerduty.KIND.doc


async def test_opened_triggers_an_alert(peer: FakePeer, env: SinkEnv) -> None:
    sink = build(env, peer.url("/v2/enqueue"))
    assert await sink.send(incident_event("opened")) == Delivered(ref="INC-42")

    (seen,) = peer.seen
    assert (seen.method, seen.path) == ("POST", "/v2/enqueue")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == trigger()


async def test_reopened_triggers_again(peer: FakePeer, env: SinkEnv) -> None:
    await build(env, peer.url()).send(incident_event("reopened"))
    assert peer.seen[0].json() == trigger()


async def test_sla_breached_triggers_with_the_same_dedup_key(peer: FakePeer, env: SinkEnv) -> None:
    await build(env, peer.url()).send(incident_event("sla_breached"))
    assert peer.seen[0].json() == trigger(summary="SLA breached: Disk full on db-1")


async def test_acknowledged_acknowledges(peer: FakePeer, env: SinkEnv) -> None:
    event = incident_event("acknowledged", status="acknowledged")
    assert await build(env, peer.url()).send(event) == Delivered(ref="INC-42")
    assert peer.seen[0].json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": "INC-42",
    }


async def test_resolved_resolves(peer: FakePeer, env: SinkEnv) -> None:
    event = incident_event("resolved", status="resolved")
    assert await build(env, peer.url()).send(event) == Delivered(ref="INC-42")
    assert peer.seen[0].json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "INC-42",
    }


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("P1", "critical"), ("P2", "error"), ("P3", "warning"), ("P4", "info"), ("P5", "info")],
)
def test_priority_maps_to_severity(priority: str, severity: str) -> None:
    event = pagerduty.event_body(incident_event(priority=priority), ROUTING_KEY)
    assert event is not None
    assert (event["payload"]["severity"], event["payload"]["class"]) == (severity, priority)


def test_a_bare_incident_still_makes_a_valid_trigger() -> None:
    notification = replace(
        incident_event(title="", service=None, rule=None, priority="P4"), link=""
    )
    event = pagerduty.event_body(notification, ROUTING_KEY)
    assert event is not None
    assert "links" not in event
    payload = event["payload"]
    assert (payload["summary"], payload["source"], payload["severity"]) == (
        "INC-42",
        "itsmd",
        "info",
    )
    assert "component" not in payload
    assert "group" not in payload


def test_the_summary_is_clipped_to_pagerdutys_limit() -> None:
    event = pagerduty.event_body(incident_event(title="x" * 2000), ROUTING_KEY)
    assert event is not None
    assert event["payload"]["summary"] == "x" * 1024


@pytest.mark.parametrize(
    "notification",
    [
        incident_event("assigned", assignee="alice"),
        incident_event("commented"),
        problem_event("problem_opened"),
        problem_event("problem_resolved"),
    ],
    ids=lambda n: n.event,
)
async def test_events_pagerduty_lacks_are_not_sent(
    peer: FakePeer, env: SinkEnv, notification: Any
) -> None:
    delivery = await build(env, peer.url()).send(notification)
    assert delivery == Delivered(detail="not sent: PagerDuty has no such event")
    assert peer.seen == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (INVALID, Failed("HTTP 400: " + INVALID.body)),
        (Answer(429, "", content_type="application/json"), Retry("HTTP 429: ")),
        (Answer(500, "oops"), Retry("HTTP 500: oops")),
        (Answer(503, "down", {"Retry-After": "60"}), Retry("HTTP 503: down", 60.0)),
        (Answer(404, "not found"), Failed("HTTP 404: not found")),
    ],
    ids=["400", "429", "500", "503", "404"],
)
async def test_answers_are_classified(
    peer: FakePeer, env: SinkEnv, answer: Answer, expected: Delivery
) -> None:
    peer.answer(answer)
    assert await build(env, peer.url()).send(incident_event()) == expected


async def test_connection_refused_is_worth_a_retry(env: SinkEnv) -> None:
    with refused_url("/v2/enqueue") as url:
        delivery = await build(env, url).send(incident_event())
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith("Cannot connect to host 127.0.0.1:")


def test_the_url_defaults_to_pagerduty_and_the_key_is_never_shown() -> None:
    options = SinkOptions({"routing_key_env": "PD"}, {"PD": ROUTING_KEY})
    sink = pagerduty.build(options, NO_IO)
    assert sink.url == "https://events.pagerduty.com/v2/enqueue"
    assert ROUTING_KEY not in repr(sink)


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({}, "routing_key", "give routing_key_env or routing_key_file"),
        ({"routing_key": ROUTING_KEY}, "routing_key", "secrets are never inline"),
        ({"routing_key_env": "PD", "url": "mailto:x@y"}, "url", "expected an http"),
        ({"routing_key_env": "PD", "severity_map": {}}, "severity_map", "unknown option"),
    ],
    ids=["missing", "inline", "bad-url", "unknown"],
)
def test_bad_options_are_named(values: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(SinkConfigError) as caught:
        pagerduty.build(SinkOptions(values, {"PD": ROUTING_KEY}), NO_IO)
    assert [(k, m) for k, m in caught.value.problems if k == key and message in m], (
        caught.value.problems
    )
    assert ROUTING_KEY not in str(caught.value)
