"""Generic alerts (`POST /api/v1/alerts`): Alertmanager's v2 alert shape plus `status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.correlation.fingerprint import fingerprint
from itsmd.models import Alert, AlertStatus
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


def parse(body: object, now: datetime = NOW) -> list[Alert]:
    """The alerts of a body in which every alert is valid."""
    parsed = parse_alerts(body, now)
    assert parsed.refused == []
    return list(parsed.alerts)


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
    (alert,) = parse([item])
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
    (alert,) = parse([item])
    assert alert.annotations == {"summary": "disk full"}
    assert alert.starts_at == datetime(2026, 11, 28, 1, 0, 0, 123456, tzinfo=UTC)
    assert alert.generator_url == "http://example/graph"


def test_every_webhook_alert_reposted_here_gets_alertmanagers_identity() -> None:
    for sent in webhook_alerts():
        item = {k: sent[k] for k in ("labels", "annotations", "startsAt", "generatorURL")}
        if sent["status"] == "resolved":
            item["endsAt"] = sent["endsAt"]
        (generic,) = parse([item])
        (expected,) = parse_webhook({"version": "4", "alerts": [sent]}, NOW).alerts
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
    (alert,) = parse([item])
    assert alert.status == want_status
    assert alert.starts_at == at(want_start)
    assert alert.ends_at == (None if want_end is None else at(want_end))


def test_missing_start_differs_per_send() -> None:
    # Documented: without startsAt every send is a new episode unless ingest merges.
    first = parse([{"labels": LABELS}])[0]
    later = parse([{"labels": LABELS}], NOW + timedelta(seconds=30))[0]
    assert first.fingerprint == later.fingerprint
    assert first.identity != later.identity
    assert "startsAt" not in later.raw


def test_empty_list_is_valid() -> None:
    assert parse([]) == []


def test_source_delegates() -> None:
    source = GenericSource()
    body = [{"labels": LABELS}]
    assert source.name == "generic"
    assert source.parse_each(body, NOW) == parse_alerts(body, NOW)
    assert list(source.parse(body, NOW)) == parse(body)


def ok(**fields: object) -> dict[str, object]:
    return {"labels": LABELS, **fields}


WHOLE: list[tuple[str, object]] = [
    ("body-object", {"labels": LABELS}),
    ("body-null", None),
    ("body-string", "x"),
]


@pytest.mark.parametrize("body", [c[1] for c in WHOLE], ids=[c[0] for c in WHOLE])
def test_a_body_that_is_not_an_array_is_refused_whole(body: object) -> None:
    with pytest.raises(PayloadError, match="expected a JSON array of alerts") as caught:
        parse_alerts(body, NOW)
    assert caught.value.field == ""


# One alert, invalid on its own: (id, the alert, the field at fault after "[index]")
ONE_ALERT: list[tuple[str, object, str]] = [
    ("item-string", "x", ""),
    ("labels-missing", {"annotations": {}}, ".labels"),
    ("labels-empty", ok(labels={}), ".labels"),
    ("labels-string", ok(labels="a=b"), ".labels"),
    ("label-value-number", ok(labels={"a": 1}), ".labels.a"),
    ("label-name-dot", ok(labels={"a.b": "x"}), ".labels"),
    ("annotations-string", ok(annotations="x"), ".annotations"),
    ("annotation-value-list", ok(annotations={"s": []}), ".annotations.s"),
    ("status-unknown", ok(status="ok"), ".status"),
    ("status-bool", ok(status=True), ".status"),
    ("startsAt-bad", ok(startsAt="now"), ".startsAt"),
    ("startsAt-number", ok(startsAt=0), ".startsAt"),
    ("endsAt-bad", ok(endsAt="2026-11-28"), ".endsAt"),
    ("endsAt-before-startsAt", ok(startsAt=PAST, endsAt=EARLIER), ".endsAt"),
    ("generatorURL-object", ok(generatorURL={}), ".generatorURL"),
    ("fingerprint-other", ok(fingerprint="0123456789abcdef"), ".fingerprint"),
    ("fingerprint-number", ok(fingerprint=7), ".fingerprint"),
]


@pytest.mark.parametrize(
    ("item", "field"), [c[1:] for c in ONE_ALERT], ids=[c[0] for c in ONE_ALERT]
)
def test_an_invalid_alert_is_refused_by_its_index_and_the_others_kept(
    item: object, field: str
) -> None:
    body = [ok(), ok(labels={**LABELS, "instance": "nas-2"}), ok(), item]
    parsed = parse_alerts(body, NOW)
    assert [a.labels.get("instance") for a in parsed.alerts] == ["nas-1", "nas-2", "nas-1"]
    (refusal,) = parsed.refused
    assert (refusal.index, refusal.field) == (3, f"[3]{field}")
    assert "expected" in refusal.message
    assert "got" in refusal.message


NUL: list[tuple[str, object, str]] = [
    ("label-value", ok(labels={**LABELS, "instance": "a\x00"}), "[0].labels.instance"),
    ("annotation-value", ok(annotations={"summary": "x\x00y"}), "[0].annotations.summary"),
    ("annotation-name", ok(annotations={"a\x00": "x"}), "[0].annotations"),
    ("generatorURL", ok(generatorURL="\x00"), "[0].generatorURL"),
]


@pytest.mark.parametrize(("item", "field"), [c[1:] for c in NUL], ids=[c[0] for c in NUL])
def test_a_nul_character_refuses_the_alert_naming_the_field(item: object, field: str) -> None:
    (refusal,) = parse_alerts([item], NOW).refused
    assert refusal.field == field
    assert "contains a NUL character" in refusal.message


def test_a_fingerprint_given_must_be_its_labels() -> None:
    (alert,) = parse([ok(fingerprint=fingerprint(LABELS))])
    assert alert.fingerprint == fingerprint(LABELS)
    (refusal,) = parse_alerts([ok(fingerprint="0123456789abcdef")], NOW).refused
    assert "0123456789abcdef" in refusal.message
    assert fingerprint(LABELS) in refusal.message


def test_every_alert_refused_gives_no_alerts() -> None:
    parsed = parse_alerts([ok(labels={}), "x"], NOW)
    assert parsed.alerts == []
    assert [(r.index, r.field) for r in parsed.refused] == [(0, "[0].labels"), (1, "[1]")]
