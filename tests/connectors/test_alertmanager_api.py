"""Alertmanager's `GET /api/v2/alerts` answer -> held alerts, against a captured answer."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from itsmd.durations import parse_time
from itsmd.models import AlertStatus
from itsmd_connectors.alertmanager import InvalidField
from itsmd_connectors.alertmanager_api import AlertmanagerAPI, AlertmanagerError, parse_alerts
from tests.connectors.fakes_http import Answer, refused_port, running_peer

CAPTURED = Path(__file__).parents[1] / "fixtures" / "alertmanager-api" / "v2-alerts.json"


def captured() -> list[dict[str, Any]]:
    doc: list[dict[str, Any]] = json.loads(CAPTURED.read_text())
    return doc


def test_a_captured_answer_parses_with_alertmanagers_own_fingerprints() -> None:
    doc = captured()
    held = parse_alerts(doc)
    assert [(h.alert.labels["alertname"], h.state, h.receivers) for h in held] == [
        ("DiskFull", "active", ("itsmd",)),
        ("Maintenance", "suppressed", ("itsmd",)),
        ("Queue", "active", ("team-b",)),
    ]
    for h, sent in zip(held, doc, strict=True):
        assert h.alert.fingerprint == sent["fingerprint"]
        assert h.alert.status is AlertStatus.FIRING
        assert h.alert.ends_at is None  # endsAt of a held alert is only its timeout
        assert h.alert.starts_at == parse_time(sent["startsAt"])
        assert h.alert.source == "alertmanager"
        assert "startsAt" in h.alert.raw  # an episode's start, as in a webhook
    assert held[0].alert.generator_url.startswith("http://prometheus.example:9090/graph")
    assert held[0].alert.annotations == {"summary": "disk 95% full"}
    assert held[1].alert.generator_url == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.pop("labels"),
            "[0].labels: expected an object of strings, got nothing (the key is missing)",
        ),
        (lambda a: a.update(startsAt="soon"), "[0].startsAt: expected an RFC 3339 time"),
        (
            lambda a: a.update(status="active"),
            '[0].status: expected an object, got the string "active"',
        ),
        (
            lambda a: a["status"].pop("state"),
            "[0].status.state: expected a string, got nothing (the key is missing)",
        ),
    ],
)
def test_an_answer_that_is_not_alertmanagers_is_refused_whole(change: Any, message: str) -> None:
    doc = captured()
    change(doc[0])
    with pytest.raises(InvalidField, match=re.escape(message)):
        parse_alerts(doc)


def test_an_answer_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(InvalidField, match="expected an array of alerts, got an object"):
        parse_alerts({"data": []})


# ---- the client against an HTTP server on loopback that answers what a test scripts


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_the_client_reads_the_alerts_with_the_auth_headers(
    session: aiohttp.ClientSession,
) -> None:
    body = CAPTURED.read_text()
    async with running_peer(Answer(body=body, content_type="application/json")) as am:
        api = AlertmanagerAPI(lambda: session, am.url(), 2.0, {"Authorization": "Bearer t0k"})
        held = await api.held()
    assert [h.alert.labels["alertname"] for h in held] == ["DiskFull", "Maintenance", "Queue"]
    (seen,) = am.seen
    assert (seen.method, seen.path) == ("GET", "/api/v2/alerts")
    assert seen.headers["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Answer(status=503, body="gossip not settled"), "HTTP 503: 'gossip not settled'"),
        (Answer(body="<html>login</html>"), "not JSON: '<html>login</html>'"),
        (
            Answer(body='{"data": []}', content_type="application/json"),
            "malformed answer: expected an array of alerts, got an object",
        ),
        (Answer(hang=True), "no answer within 0.2s"),
    ],
    ids=["http-error", "not-json", "not-alertmanager", "timeout"],
)
async def test_every_failure_names_the_alertmanager_and_what_went_wrong(
    session: aiohttp.ClientSession, answer: Answer, says: str
) -> None:
    async with running_peer(answer) as am:
        secret = am.url().replace("http://", "http://itsmd:s3cret@")
        with pytest.raises(AlertmanagerError) as caught:
            await AlertmanagerAPI(lambda: session, secret, 0.2).held()
    assert str(caught.value) == f"Alertmanager at {am.url().rstrip('/')}: {says}"


async def test_a_refused_connection_is_said_so(session: aiohttp.ClientSession) -> None:
    with refused_port() as port, pytest.raises(AlertmanagerError, match="connection refused"):
        await AlertmanagerAPI(lambda: session, f"http://127.0.0.1:{port}", 1.0).held()
