"""Generic alerts (`POST /api/v1/alerts`): Alertmanager's v2 alert shape plus `status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.models import AlertStatus
from itsmd.sources import PayloadError
from itsmd_connectors.alertmanager import parse_webhook
from itsmd_connectors.generic import GenericSource, parse_alerts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager"
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
EARLIER = "2026-11-28T02:00:00Z"
PAST = "2026-11-28T02:50:00Z"
AT_NOW = "2026-11-28T03:00:00Z"
FUTURE = "2026-11-28T03:10:00Z"
ZERO = "0001-01-01T00:00:00Z"  # Go's zero time: what Go clients send for "not set"
LABELS = {"alertname": "DiskFull", "service": "storage", "instance": "nas-1"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def webhook_alerts() -> Iterator[dict[str, Any]]:
    files = sorted(FIXTURES.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no Alertmanager fixtures in {FIXTURES}")
    for path in files:
        capture = json.loads(path.read_text())
        for body in [capture.get("body"), *(d["body"] for d in capture.get("deliveries", []))]:
            if body is not None:
                yield from body["alerts"]


def test_labels_alone_make_a_firing_alert_now() -> None:
    item = {"labels": LABELS}
    (alert,) = parse_alerts([item], NOW)
    assert alert.status is AlertStatus.FIRING
    assert alert.starts_at == NOW
    assert alert.ends_at is None
    assert alert.annotations == {}
    assert alert.generator_url == ""
    assert alert.source == "generic"
    assert alert.raw is item


def test_fields_are_taken_as_given() -> None:
    item = {
        "labels": LABELS,
        "annotations": {"summary": "disk full"},
        "startsAt": "2026-11-28T02:00:00.123456789+01:00",
        "generatorURL": "http://example/graph",
    }
    (alert,) = parse_alerts([item], NOW)
    assert alert.annotations == {"summary": "disk full"}
    assert alert.starts_at == datetime(2026, 11, 28, 1, 0, 0, 123456, tzinfo=UTC)
    assert alert.generator_url == "http://example/graph"


def test_every_webhook_alert_reposted_here_gets_alertmanagers_identity() -> None:
    for sent in webhook_alerts():
        item = {k: sent[k] for k in ("labels", "annotations", "startsAt", "generatorURL")}
        if sent["status"] == "resolved":
            item["endsAt"] = sent["endsAt"]
        (generic,) = parse_alerts([item], NOW)
        (expected,) = parse_webhook({"version": "4", "alerts": [sent]}, NOW)
        assert generic.identity == expected.identity
        assert (generic.status, generic.ends_at) == (expected.status, expected.ends_at)


# (status, startsAt, endsAt) sent -> (status, starts_at, ends_at) in the domain
DEFAULTS = [
    ("no-status-past-end", None, EARLIER, PAST, "resolved", EARLIER, PAST),
    ("no-status-end-now", None, None, AT_NOW, "resolved", AT_NOW, AT_NOW),
    ("no-status-future-end", None, PAST, FUTURE, "firing", PAST, None),
    ("no-start-past-end", None, None, PAST, "resolved", PAST, PAST),
    ("no-start-future-end", None, None, FUTURE, "firing", AT_NOW, None),
    ("zero-start", None, ZERO, None, "firing", AT_NOW, None),
    ("zero-end", None, PAST, ZERO, "firing", PAST, None),
    # An explicit status wins over endsAt: this one stays firing, without an end.
    ("firing-past-end", "firing", EARLIER, PAST, "firing", EARLIER, None),
    ("resolved-no-end", "resolved", PAST, None, "resolved", PAST, AT_NOW),
    ("resolved-future-end", "resolved", PAST, FUTURE, "resolved", PAST, FUTURE),
    ("null-status", None, PAST, None, "firing", PAST, None),
]


@pytest.mark.parametrize(
    ("status", "starts_at", "ends_at", "want_status", "want_start", "want_end"),
    [case[1:] for case in DEFAULTS],
    ids=[case[0] for case in DEFAULTS],
)
def test_status_and_time_defaults(
    status: str | None,
    starts_at: str | None,
    ends_at: str | None,
    want_status: str,
    want_start: str,
    want_end: str | None,
) -> None:
    item: dict[str, Any] = {"labels": LABELS, "status": status}
    if starts_at is not None:
        item["startsAt"] = starts_at
    if ends_at is not None:
        item["endsAt"] = ends_at
    (alert,) = parse_alerts([item], NOW)
    assert alert.status == want_status
    assert alert.starts_at == at(want_start)
    assert alert.ends_at == (None if want_end is None else at(want_end))


def test_missing_start_differs_per_send() -> None:
    # Documented: without startsAt every send is a new episode unless ingest merges.
    first = parse_alerts([{"labels": LABELS}], NOW)[0]
    later = parse_alerts([{"labels": LABELS}], NOW + timedelta(seconds=30))[0]
    assert first.fingerprint == later.fingerprint
    assert first.identity != later.identity
    assert "startsAt" not in later.raw


def test_empty_list_is_valid() -> None:
    assert parse_alerts([], NOW) == []


def test_source_delegates() -> None:
    source = GenericSource()
    body = [{"labels": LABELS}]
    assert source.name == "generic"
    assert list(source.parse(body, NOW)) == parse_alerts(body, NOW)


def ok(**fields: object) -> dict[str, object]:
    return {"labels": LABELS, **fields}


INVALID: list[tuple[str, object, str]] = [
    ("body-object", {"labels": LABELS}, ""),
    ("body-null", None, ""),
    ("item-string", ["x"], "[0]"),
    ("labels-missing", [{"annotations": {}}], "[0].labels"),
    ("labels-empty", [ok(labels={})], "[0].labels"),
    ("labels-string", [ok(labels="a=b")], "[0].labels"),
    ("label-value-number", [ok(labels={"a": 1})], "[0].labels.a"),
    ("label-name-dot", [ok(labels={"a.b": "x"})], "[0].labels"),
    ("annotations-string", [ok(annotations="x")], "[0].annotations"),
    ("annotation-value-list", [ok(annotations={"s": []})], "[0].annotations.s"),
    ("status-unknown", [ok(status="ok")], "[0].status"),
    ("status-bool", [ok(status=True)], "[0].status"),
    ("startsAt-bad", [ok(startsAt="now")], "[0].startsAt"),
    ("startsAt-number", [ok(startsAt=0)], "[0].startsAt"),
    ("endsAt-bad", [ok(endsAt="2026-11-28")], "[0].endsAt"),
    ("endsAt-before-startsAt", [ok(startsAt=PAST, endsAt=EARLIER)], "[0].endsAt"),
    ("generatorURL-object", [ok(generatorURL={})], "[0].generatorURL"),
    ("fourth-item", [ok(), ok(), ok(), ok(labels={})], "[3].labels"),
]


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_payload_names_the_field(body: object, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alerts(body, NOW)
    assert caught.value.field == field
    assert "expected" in caught.value.message
    assert "got" in caught.value.message
