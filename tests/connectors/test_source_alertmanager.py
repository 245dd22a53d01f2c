"""Alertmanager webhook parsing, against payloads captured from a real Alertmanager 0.25."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from itsmd.correlation.fingerprint import fingerprint
from itsmd.durations import parse_time
from itsmd.models import AlertStatus
from itsmd.sources import PayloadError
from itsmd_connectors.alertmanager import AlertmanagerSource, parse_webhook

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager"
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
EXPECTED_FILES = {
    "README.md",
    "amtool-firing.json",
    "amtool-resolved.json",
    "firing-group-grew.json",
    "firing-grouped-other-group.json",
    "firing-grouped.json",
    "firing-single.json",
    "ha-duplicate-slow-receiver.json",
    "ha-two-replicas.json",
    "mixed-firing-resolved.json",
    "prometheus-rule-firing.json",
    "prometheus-rule-predict-linear.json",
    "prometheus-rule-resolved.json",
    "repeat-notification.json",
    "resolved-endsAt-before-startsAt.json",
    "resolved.json",
    "truncated-basic-auth.json",
}

Body = dict[str, Any]


def fixture_files() -> list[Path]:
    # A missing folder must fail collection, never turn into an empty (skipped) test.
    files = sorted(FIXTURES.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no Alertmanager fixtures in {FIXTURES}")
    return files


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def bodies(capture: dict[str, Any]) -> Iterator[Body]:
    """Every webhook body a capture file holds."""
    if "body" in capture:
        yield capture["body"]
    if "firing_body" in capture:
        yield capture["firing_body"]
    for delivery in capture.get("deliveries", []):
        yield delivery["body"]


def test_fixture_folder_is_complete() -> None:
    assert {path.name for path in FIXTURES.iterdir()} == EXPECTED_FILES


@pytest.mark.parametrize("path", fixture_files(), ids=lambda path: path.name)
def test_every_fixture_body_parses(path: Path) -> None:
    for body in bodies(json.loads(path.read_text())):
        alerts = parse_webhook(body, NOW)
        assert len(alerts) == len(body["alerts"])
        for alert, sent in zip(alerts, body["alerts"], strict=True):
            assert alert.source == "alertmanager"
            assert alert.fingerprint == sent["fingerprint"]
            assert alert.status == sent["status"]
            assert alert.labels == sent["labels"]
            assert alert.annotations == sent["annotations"]
            assert alert.generator_url == sent["generatorURL"]
            assert alert.starts_at == parse_time(sent["startsAt"])
            assert alert.starts_at.tzinfo is UTC
            assert alert.raw is sent
            if alert.status is AlertStatus.FIRING:
                assert alert.ends_at is None
            else:
                assert alert.ends_at == parse_time(sent["endsAt"])


@pytest.mark.parametrize(
    "path", [p for p in fixture_files() if "body_raw" in p.read_text()], ids=lambda p: p.name
)
def test_raw_bytes_decode_to_the_same_alerts(path: Path) -> None:
    capture = json.loads(path.read_text())
    decoded = orjson.loads(capture["body_raw"].encode())
    assert decoded == capture["body"]
    assert parse_webhook(decoded, NOW) == parse_webhook(capture["body"], NOW)


def test_firing_end_is_none_although_the_webhook_sends_year_one() -> None:
    body = load("firing-single.json")["body"]
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    (alert,) = parse_webhook(body, NOW)
    assert alert.status is AlertStatus.FIRING
    assert alert.ends_at is None


def test_resolved_end_before_the_firing_start_parses() -> None:
    capture = load("resolved-endsAt-before-startsAt.json")
    (firing,) = parse_webhook(capture["firing_body"], NOW)
    (resolved,) = parse_webhook(capture["body"], NOW)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.starts_at == resolved.ends_at
    assert resolved.ends_at is not None
    assert resolved.ends_at < firing.starts_at
    assert resolved.identity != firing.identity  # ingest must match on fingerprint alone


def test_nanosecond_start_keeps_microseconds() -> None:
    (firing,) = parse_webhook(load("resolved-endsAt-before-startsAt.json")["firing_body"], NOW)
    assert firing.raw["startsAt"] == "2026-11-28T02:54:21.538838102Z"
    assert firing.starts_at == datetime(2026, 11, 28, 2, 54, 21, 538838, tzinfo=UTC)


def test_ha_duplicates_give_equal_alerts() -> None:
    first, second = (d["body"] for d in load("ha-duplicate-slow-receiver.json")["deliveries"])
    assert first["externalURL"] != second["externalURL"]
    alerts_a, alerts_b = parse_webhook(first, NOW), parse_webhook(second, NOW)
    assert alerts_a == alerts_b
    assert [a.identity for a in alerts_a] == [b.identity for b in alerts_b]


def test_ha_replicas_agree_on_fingerprint() -> None:
    (single,) = parse_webhook(load("ha-two-replicas.json")["deliveries"][0]["body"], NOW)
    (slow,) = parse_webhook(load("ha-duplicate-slow-receiver.json")["deliveries"][0]["body"], NOW)
    assert single.fingerprint == slow.fingerprint == "366ae2e0f3423340"


def test_repeat_notification_keeps_the_fingerprint() -> None:
    # This capture is not byte-identical (byte_identical: false): the repeat's startsAt
    # is 2 s later than the first send's. Only the fingerprint is stable across both.
    capture = load("repeat-notification.json")
    first, repeat = (parse_webhook(d["body"], NOW) for d in capture["deliveries"])
    assert [a.fingerprint for a in first] == [a.fingerprint for a in repeat]
    assert parse_webhook(capture["body"], NOW) == repeat


def test_group_statuses_are_per_alert() -> None:
    alerts = parse_webhook(load("mixed-firing-resolved.json")["body"], NOW)
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    assert [a.ends_at is None for a in alerts] == [True, False, True]


def test_truncated_notification_gives_the_alerts_it_carries() -> None:
    body = load("truncated-basic-auth.json")["body"]
    assert body["truncatedAlerts"] == 3
    assert len(parse_webhook(body, NOW)) == 2


def test_source_delegates() -> None:
    source = AlertmanagerSource()
    body = load("firing-grouped.json")["body"]
    assert source.name == "alertmanager"
    assert list(source.parse(body, NOW)) == parse_webhook(body, NOW)


# --- lenient where Alertmanager is -----------------------------------------------------


def single() -> Body:
    return copy.deepcopy(load("firing-single.json")["body"])


def first_alert(body: Body) -> dict[str, Any]:
    alert: dict[str, Any] = body["alerts"][0]
    return alert


def test_empty_alert_list_is_valid() -> None:
    body = single()
    body["alerts"] = []
    assert parse_webhook(body, NOW) == []


def test_unknown_top_level_keys_are_accepted() -> None:
    body = single()
    body["somethingNew"] = {"x": 1}
    del body["receiver"], body["groupKey"], body["status"]
    assert len(parse_webhook(body, NOW)) == 1


@pytest.mark.parametrize("annotations", [None, "missing"])
def test_absent_annotations_mean_none(annotations: str | None) -> None:
    body = single()
    if annotations == "missing":
        del first_alert(body)["annotations"]
    else:
        first_alert(body)["annotations"] = None
    assert parse_webhook(body, NOW)[0].annotations == {}


def test_absent_generator_url_means_empty() -> None:
    body = single()
    del first_alert(body)["generatorURL"]
    assert parse_webhook(body, NOW)[0].generator_url == ""


def test_absent_fingerprint_is_computed() -> None:
    body = single()
    del first_alert(body)["fingerprint"]
    assert parse_webhook(body, NOW)[0].fingerprint == "20546469c3ecd36f"


def test_sender_fingerprint_is_kept_even_if_it_disagrees() -> None:
    body = single()
    first_alert(body)["fingerprint"] = "0123456789abcdef"
    alert = parse_webhook(body, NOW)[0]
    assert alert.fingerprint == "0123456789abcdef"
    assert fingerprint(alert.labels) != alert.fingerprint


@pytest.mark.parametrize(
    "ends_at", ["2026-11-28T04:00:00Z", "0001-01-01T00:00:00.000Z", "2026-11-28T01:00:00Z"]
)
def test_firing_end_from_a_sender_is_dropped(ends_at: str) -> None:
    body = single()
    first_alert(body)["endsAt"] = ends_at
    assert parse_webhook(body, NOW)[0].ends_at is None


# --- invalid payloads: each names its field --------------------------------------------


def set_alert(key: str, value: object) -> Callable[[Body], object]:
    def mutate(body: Body) -> None:
        first_alert(body)[key] = value

    return mutate


def del_alert(key: str) -> Callable[[Body], object]:
    return lambda body: first_alert(body).pop(key)


def set_label(name: str, value: object) -> Callable[[Body], object]:
    return lambda body: first_alert(body)["labels"].__setitem__(name, value)


def resolve_with(ends_at: str) -> Callable[[Body], object]:
    def mutate(body: Body) -> None:
        first_alert(body).update(status="resolved", endsAt=ends_at)

    return mutate


def second_alert_without_labels(body: Body) -> None:
    other = copy.deepcopy(first_alert(body))
    other["labels"] = {}
    body["alerts"].append(other)


INVALID: list[tuple[str, Callable[[Body], object], str]] = [
    ("version-missing", lambda b: b.pop("version"), "version"),
    ("version-3", lambda b: b.update(version="3"), "version"),
    ("version-number", lambda b: b.update(version=4), "version"),
    ("alerts-missing", lambda b: b.pop("alerts"), "alerts"),
    ("alerts-object", lambda b: b.update(alerts={}), "alerts"),
    ("alerts-null", lambda b: b.update(alerts=None), "alerts"),
    ("alert-not-object", lambda b: b.update(alerts=["x"]), "alerts[0]"),
    ("status-missing", del_alert("status"), "alerts[0].status"),
    ("status-unknown", set_alert("status", "pending"), "alerts[0].status"),
    ("status-list", set_alert("status", ["firing"]), "alerts[0].status"),
    ("labels-missing", del_alert("labels"), "alerts[0].labels"),
    ("labels-empty", set_alert("labels", {}), "alerts[0].labels"),
    ("labels-list", set_alert("labels", ["a"]), "alerts[0].labels"),
    ("label-value-number", set_label("severity", 2), "alerts[0].labels.severity"),
    ("label-value-null", set_label("severity", None), "alerts[0].labels.severity"),
    ("label-name-dash", set_label("bad-name", "x"), "alerts[0].labels"),
    ("label-name-digit", set_label("0abc", "x"), "alerts[0].labels"),
    ("label-name-unicode", set_label("é", "x"), "alerts[0].labels"),
    ("label-name-empty", set_label("", "x"), "alerts[0].labels"),
    ("annotations-list", set_alert("annotations", []), "alerts[0].annotations"),
    (
        "annotation-value-null",
        lambda b: first_alert(b)["annotations"].update(summary=None),
        "alerts[0].annotations.summary",
    ),
    ("startsAt-missing", del_alert("startsAt"), "alerts[0].startsAt"),
    ("startsAt-null", set_alert("startsAt", None), "alerts[0].startsAt"),
    ("startsAt-words", set_alert("startsAt", "yesterday"), "alerts[0].startsAt"),
    ("startsAt-epoch", set_alert("startsAt", 1764298353), "alerts[0].startsAt"),
    ("startsAt-month-13", set_alert("startsAt", "2026-13-01T00:00:00Z"), "alerts[0].startsAt"),
    ("startsAt-no-zone", set_alert("startsAt", "2026-11-28T02:52:33"), "alerts[0].startsAt"),
    ("endsAt-missing", del_alert("endsAt"), "alerts[0].endsAt"),
    ("endsAt-garbage", set_alert("endsAt", "never"), "alerts[0].endsAt"),
    ("resolved-zero-end", resolve_with("0001-01-01T00:00:00Z"), "alerts[0].endsAt"),
    ("resolved-year-one-offset", resolve_with("0001-01-01T00:00:00+01:00"), "alerts[0].endsAt"),
    ("generatorURL-number", set_alert("generatorURL", 1), "alerts[0].generatorURL"),
    ("fingerprint-short", set_alert("fingerprint", "20546469c3ecd36"), "alerts[0].fingerprint"),
    ("fingerprint-upper", set_alert("fingerprint", "20546469C3ECD36F"), "alerts[0].fingerprint"),
    ("fingerprint-not-hex", set_alert("fingerprint", "20546469c3ecd36g"), "alerts[0].fingerprint"),
    ("fingerprint-number", set_alert("fingerprint", 12), "alerts[0].fingerprint"),
    ("second-alert", second_alert_without_labels, "alerts[1].labels"),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_payload_names_the_field(mutate: Callable[[Body], object], field: str) -> None:
    body = single()
    mutate(body)
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, NOW)
    assert caught.value.field == field
    assert "expected" in caught.value.message
    assert "got" in caught.value.message


@pytest.mark.parametrize("body", [[], "x", None, 4], ids=["array", "string", "null", "number"])
def test_body_must_be_an_object(body: object) -> None:
    with pytest.raises(PayloadError, match="expected a JSON object") as caught:
        parse_webhook(body, NOW)
    assert caught.value.field == ""


def test_missing_version_says_so() -> None:
    body = single()
    del body["version"]
    with pytest.raises(PayloadError, match="missing"):
        parse_webhook(body, NOW)


def test_long_values_are_shortened_in_messages() -> None:
    body = single()
    first_alert(body)["startsAt"] = "x" * 10_000
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, NOW)
    assert len(str(caught.value)) < 200
