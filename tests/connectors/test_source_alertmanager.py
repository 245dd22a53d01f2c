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
from itsmd.models import Alert, AlertStatus
from itsmd.sources import Parsed, PayloadError, Refusal
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


def parse(body: object) -> list[Alert]:
    """The alerts of a body in which every alert is valid."""
    parsed = parse_webhook(body, NOW)
    assert parsed.refused == []
    return list(parsed.alerts)


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
        alerts = parse(body)
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
    assert parse(decoded) == parse(capture["body"])


def test_firing_end_is_none_although_the_webhook_sends_year_one() -> None:
    body = load("firing-single.json")["body"]
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    (alert,) = parse(body)
    assert alert.status is AlertStatus.FIRING
    assert alert.ends_at is None


def test_resolved_end_before_the_firing_start_parses() -> None:
    capture = load("resolved-endsAt-before-startsAt.json")
    (firing,) = parse(capture["firing_body"])
    (resolved,) = parse(capture["body"])
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.starts_at == resolved.ends_at
    assert resolved.ends_at is not None
    assert resolved.ends_at < firing.starts_at
    assert resolved.identity != firing.identity  # ingest must match on fingerprint alone


def test_nanosecond_start_keeps_microseconds() -> None:
    (firing,) = parse(load("resolved-endsAt-before-startsAt.json")["firing_body"])
    assert firing.raw["startsAt"] == "2026-11-28T02:54:21.538838102Z"
    assert firing.starts_at == datetime(2026, 11, 28, 2, 54, 21, 538838, tzinfo=UTC)


def test_ha_duplicates_give_equal_alerts() -> None:
    first, second = (d["body"] for d in load("ha-duplicate-slow-receiver.json")["deliveries"])
    assert first["externalURL"] != second["externalURL"]
    alerts_a, alerts_b = parse(first), parse(second)
    assert alerts_a == alerts_b
    assert [a.identity for a in alerts_a] == [b.identity for b in alerts_b]


def test_ha_replicas_agree_on_fingerprint() -> None:
    (single,) = parse(load("ha-two-replicas.json")["deliveries"][0]["body"])
    (slow,) = parse(load("ha-duplicate-slow-receiver.json")["deliveries"][0]["body"])
    assert single.fingerprint == slow.fingerprint == "366ae2e0f3423340"


def test_repeat_notification_keeps_the_fingerprint() -> None:
    # This capture is not byte-identical (byte_identical: false): the repeat's startsAt
    # is 2 s later than the first send's. Only the fingerprint is stable across both.
    capture = load("repeat-notification.json")
    first, repeat = (parse(d["body"]) for d in capture["deliveries"])
    assert [a.fingerprint for a in first] == [a.fingerprint for a in repeat]
    assert parse(capture["body"]) == repeat


def test_group_statuses_are_per_alert() -> None:
    alerts = parse(load("mixed-firing-resolved.json")["body"])
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    assert [a.ends_at is None for a in alerts] == [True, False, True]


def test_truncated_notification_gives_the_alerts_it_carries() -> None:
    body = load("truncated-basic-auth.json")["body"]
    assert body["truncatedAlerts"] == 3
    assert len(parse(body)) == 2


def test_source_delegates() -> None:
    source = AlertmanagerSource()
    body = load("firing-grouped.json")["body"]
    assert source.name == "alertmanager"
    assert source.parse_each(body, NOW) == parse_webhook(body, NOW)
    assert list(source.parse(body, NOW)) == parse(body)


# --- lenient where Alertmanager is -----------------------------------------------------


def single() -> Body:
    return copy.deepcopy(load("firing-single.json")["body"])


def first_alert(body: Body) -> dict[str, Any]:
    alert: dict[str, Any] = body["alerts"][0]
    return alert


def test_empty_alert_list_is_valid() -> None:
    body = single()
    body["alerts"] = []
    assert parse(body) == []


def test_unknown_top_level_keys_are_accepted() -> None:
    body = single()
    body["somethingNew"] = {"x": 1}
    del body["receiver"], body["groupKey"], body["status"]
    assert len(parse(body)) == 1


@pytest.mark.parametrize("annotations", [None, "missing"])
def test_absent_annotations_mean_none(annotations: str | None) -> None:
    body = single()
    if annotations == "missing":
        del first_alert(body)["annotations"]
    else:
        first_alert(body)["annotations"] = None
    assert parse(body)[0].annotations == {}


def test_absent_generator_url_means_empty() -> None:
    body = single()
    del first_alert(body)["generatorURL"]
    assert parse(body)[0].generator_url == ""


def test_absent_fingerprint_is_computed() -> None:
    body = single()
    del first_alert(body)["fingerprint"]
    assert parse(body)[0].fingerprint == "20546469c3ecd36f"


def test_a_fingerprint_that_is_not_its_labels_is_refused_naming_both() -> None:
    body = single()
    first_alert(body)["fingerprint"] = "0123456789abcdef"
    parsed = parse_webhook(body, NOW)
    assert parsed.alerts == []
    (refusal,) = parsed.refused
    assert (refusal.index, refusal.field) == (0, "alerts[0].fingerprint")
    assert "0123456789abcdef" in refusal.message, "the fingerprint given"
    assert "20546469c3ecd36f" in refusal.message, "the fingerprint of its labels"


def test_another_alerts_fingerprint_is_refused_and_the_others_kept() -> None:
    """Two alerts with one fingerprint and different labels: the second is not filed
    under the first's identity (nor dropped as its duplicate)."""
    body = copy.deepcopy(load("firing-grouped.json")["body"])
    first, second, third = body["alerts"]
    second["fingerprint"] = first["fingerprint"]
    parsed = parse_webhook(body, NOW)
    assert [a.fingerprint for a in parsed.alerts] == [first["fingerprint"], third["fingerprint"]]
    (refusal,) = parsed.refused
    assert (refusal.index, refusal.field) == (1, "alerts[1].fingerprint")
    assert first["fingerprint"] in refusal.message
    assert "9361c7d185abc561" in refusal.message  # what Alertmanager sent for these labels


def test_in_a_long_webhook_each_alert_is_checked_as_alone() -> None:
    """The fingerprints of a webhook's alerts are computed together; each alert is
    still refused for its first fault in the order of its checks (status, labels,
    fingerprint, the rest), and kept with its own fingerprint otherwise."""
    body = copy.deepcopy(load("firing-grouped.json")["body"])
    good = body["alerts"][0]
    alerts = []
    for n in range(40):
        alert = copy.deepcopy(good)
        alert["labels"] = {**good["labels"], "instance": f"api-{n}:9100"}
        del alert["fingerprint"]
        alerts.append(alert)
    alerts[3]["fingerprint"] = "0123456789abcdef"
    alerts[5]["labels"] = {"bad name": "x"}  # and a wrong fingerprint: labels come first
    alerts[5]["fingerprint"] = "0123456789abcdef"
    alerts[8]["fingerprint"] = "0123456789abcdef"  # and bad annotations: fingerprint first
    alerts[8]["annotations"] = {"summary": 1}
    alerts[9]["annotations"] = {"summary": 1}
    alerts[12] = "not an alert"
    body["alerts"] = alerts
    parsed = parse_webhook(body, NOW)
    assert [(r.index, r.field) for r in parsed.refused] == [
        (3, "alerts[3].fingerprint"),
        (5, "alerts[5].labels"),
        (8, "alerts[8].fingerprint"),
        (9, "alerts[9].annotations.summary"),
        (12, "alerts[12]"),
    ]
    kept = [a for n, a in enumerate(alerts) if n not in (3, 5, 8, 9, 12)]
    assert [a.labels["instance"] for a in parsed.alerts] == [a["labels"]["instance"] for a in kept]
    assert [a.fingerprint for a in parsed.alerts] == [fingerprint(a.labels) for a in parsed.alerts]


def test_a_resolve_with_other_labels_under_the_fingerprint_is_refused() -> None:
    capture = load("resolved-endsAt-before-startsAt.json")
    body = copy.deepcopy(capture["body"])
    first_alert(body)["labels"]["instance"] = "elsewhere:9100"
    (refusal,) = parse_webhook(body, NOW).refused
    assert refusal.field == "alerts[0].fingerprint"


@pytest.mark.parametrize(
    "ends_at", ["2026-11-28T04:00:00Z", "0001-01-01T00:00:00.000Z", "2026-11-28T01:00:00Z"]
)
def test_firing_end_from_a_sender_is_dropped(ends_at: str) -> None:
    body = single()
    first_alert(body)["endsAt"] = ends_at
    assert parse(body)[0].ends_at is None


# --- invalid payloads: the whole payload, or one alert by its index -----------------


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


def set_annotation(name: str, value: object) -> Callable[[Body], object]:
    return lambda body: first_alert(body)["annotations"].__setitem__(name, value)


WHOLE: list[tuple[str, Callable[[Body], object], str]] = [
    ("version-missing", lambda b: b.pop("version"), "version"),
    ("version-3", lambda b: b.update(version="3"), "version"),
    ("version-number", lambda b: b.update(version=4), "version"),
    ("alerts-missing", lambda b: b.pop("alerts"), "alerts"),
    ("alerts-object", lambda b: b.update(alerts={}), "alerts"),
    ("alerts-null", lambda b: b.update(alerts=None), "alerts"),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in WHOLE], ids=[c[0] for c in WHOLE])
def test_invalid_payload_names_the_field(mutate: Callable[[Body], object], field: str) -> None:
    body = single()
    mutate(body)
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, NOW)
    assert caught.value.field == field
    assert "expected" in caught.value.message
    assert "got" in caught.value.message


# Each makes the first (only) alert of firing-single.json invalid; field without "alerts[0]".
ONE_ALERT: list[tuple[str, Callable[[Body], object], str]] = [
    ("alert-not-object", lambda b: b.update(alerts=["x"]), ""),
    ("status-missing", del_alert("status"), "status"),
    ("status-unknown", set_alert("status", "pending"), "status"),
    ("status-list", set_alert("status", ["firing"]), "status"),
    ("labels-missing", del_alert("labels"), "labels"),
    ("labels-empty", set_alert("labels", {}), "labels"),
    ("labels-list", set_alert("labels", ["a"]), "labels"),
    ("label-value-number", set_label("severity", 2), "labels.severity"),
    ("label-value-null", set_label("severity", None), "labels.severity"),
    ("label-name-dash", set_label("bad-name", "x"), "labels"),
    ("label-name-digit", set_label("0abc", "x"), "labels"),
    ("label-name-unicode", set_label("é", "x"), "labels"),
    ("label-name-empty", set_label("", "x"), "labels"),
    ("label-name-nul", set_label("a\x00b", "x"), "labels"),
    ("annotations-list", set_alert("annotations", []), "annotations"),
    ("annotation-value-null", set_annotation("summary", None), "annotations.summary"),
    ("startsAt-missing", del_alert("startsAt"), "startsAt"),
    ("startsAt-null", set_alert("startsAt", None), "startsAt"),
    ("startsAt-words", set_alert("startsAt", "yesterday"), "startsAt"),
    ("startsAt-epoch", set_alert("startsAt", 1764298353), "startsAt"),
    ("startsAt-month-13", set_alert("startsAt", "2026-13-01T00:00:00Z"), "startsAt"),
    ("startsAt-no-zone", set_alert("startsAt", "2026-11-28T02:52:33"), "startsAt"),
    ("startsAt-nul", set_alert("startsAt", "2026-11-28T02:52:33Z\x00"), "startsAt"),
    ("endsAt-missing", del_alert("endsAt"), "endsAt"),
    ("endsAt-garbage", set_alert("endsAt", "never"), "endsAt"),
    ("resolved-zero-end", resolve_with("0001-01-01T00:00:00Z"), "endsAt"),
    ("resolved-year-one-offset", resolve_with("0001-01-01T00:00:00+01:00"), "endsAt"),
    ("generatorURL-number", set_alert("generatorURL", 1), "generatorURL"),
    ("fingerprint-short", set_alert("fingerprint", "20546469c3ecd36"), "fingerprint"),
    ("fingerprint-upper", set_alert("fingerprint", "20546469C3ECD36F"), "fingerprint"),
    ("fingerprint-not-hex", set_alert("fingerprint", "20546469c3ecd36g"), "fingerprint"),
    ("fingerprint-number", set_alert("fingerprint", 12), "fingerprint"),
    ("fingerprint-other", set_alert("fingerprint", "3ec3a65148f903ac"), "fingerprint"),
]


def _field(index: int, field: str) -> str:
    return f"alerts[{index}].{field}" if field else f"alerts[{index}]"


@pytest.mark.parametrize(
    ("mutate", "field"), [c[1:] for c in ONE_ALERT], ids=[c[0] for c in ONE_ALERT]
)
def test_an_invalid_alert_is_refused_by_its_index_naming_the_field(
    mutate: Callable[[Body], object], field: str
) -> None:
    body = single()
    mutate(body)
    parsed = parse_webhook(body, NOW)
    assert parsed.alerts == []
    (refusal,) = parsed.refused
    assert (refusal.index, refusal.field) == (0, _field(0, field))
    assert "expected" in refusal.message
    assert "got" in refusal.message
    assert str(refusal) == f"{refusal.field}: {refusal.message}"


@pytest.mark.parametrize(
    ("mutate", "field"), [c[1:] for c in ONE_ALERT], ids=[c[0] for c in ONE_ALERT]
)
def test_an_invalid_alert_among_valid_ones_leaves_them_parsed(
    mutate: Callable[[Body], object], field: str
) -> None:
    grouped = load("firing-grouped.json")["body"]
    body = single()
    mutate(body)
    body["alerts"] = [grouped["alerts"][0], *body["alerts"], grouped["alerts"][1]]
    parsed = parse_webhook(body, NOW)
    assert parsed == Parsed(
        alerts=parse({**grouped, "alerts": [grouped["alerts"][0], grouped["alerts"][1]]}),
        refused=[Refusal(1, _field(1, field), parsed.refused[0].message)],
    )
    assert parsed.sent == 3


def test_every_alert_refused_gives_no_alerts() -> None:
    body = copy.deepcopy(load("firing-grouped.json")["body"])
    for item in body["alerts"]:
        item["labels"]["bad-name"] = "x"
    parsed = parse_webhook(body, NOW)
    assert parsed.alerts == []
    assert [(r.index, r.field) for r in parsed.refused] == [
        (0, "alerts[0].labels"),
        (1, "alerts[1].labels"),
        (2, "alerts[2].labels"),
    ]


NUL: list[tuple[str, Callable[[Body], object], str]] = [
    ("label-value", set_label("instance", "x\x00y"), "labels.instance"),
    ("annotation-value", set_annotation("summary", "x\x00y"), "annotations.summary"),
    ("annotation-name", set_annotation("sum\x00mary", "x"), "annotations"),
    ("generatorURL", set_alert("generatorURL", "http://x/\x00"), "generatorURL"),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in NUL], ids=[c[0] for c in NUL])
def test_a_nul_character_refuses_the_alert_naming_the_field(
    mutate: Callable[[Body], object], field: str
) -> None:
    """The store cannot hold U+0000 (PostgreSQL text): refused before it gets there."""
    body = single()
    mutate(body)
    (refusal,) = parse_webhook(body, NOW).refused
    assert refusal.field == f"alerts[0].{field}"
    assert "contains a NUL character" in refusal.message


def test_a_nul_character_from_the_json_escape_is_refused() -> None:
    raw = load("firing-single.json")["body_raw"].replace('"summary":"', '"summary":"x\\u0000')
    body = orjson.loads(raw.encode())
    assert "\x00" in body["alerts"][0]["annotations"]["summary"]
    (refusal,) = parse_webhook(body, NOW).refused
    assert str(refusal).startswith("alerts[0].annotations.summary: contains a NUL character")


def test_the_whole_payload_parse_raises_the_first_refusal() -> None:
    """`Source.parse` takes a payload whole (rule tools): the first invalid alert fails it."""
    body = copy.deepcopy(load("firing-grouped.json")["body"])
    body["alerts"][1]["labels"] = {}
    body["alerts"][2]["startsAt"] = "never"
    with pytest.raises(PayloadError) as caught:
        AlertmanagerSource().parse(body, NOW)
    assert caught.value.field == "alerts[1].labels"


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
    (refusal,) = parse_webhook(body, NOW).refused
    assert len(str(refusal)) < 200
