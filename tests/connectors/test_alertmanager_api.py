"""Alertmanager's `GET /api/v2/alerts` answer -> held alerts, against a captured answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from itsmd.durations import parse_time
from itsmd.models import AlertStatus
from itsmd_connectors.alertmanager import InvalidField
from itsmd_connectors.alertmanager_api import parse_alerts

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
