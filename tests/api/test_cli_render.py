"""How the CLI writes times, ages, labels and repeated timeline entries (pure
functions of the API's JSON and `now`; the commands using them are tested against a
running daemon in the other test_cli_* files)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from itsmd.cli import render
from itsmd.cli.client import ClientError
from itsmd.cli.selectors import selector
from itsmd.console.present import collapse
from itsmd.durations import format_time
from tests.unit.correlation.test_correlate import MIN, T0, Engine, alert

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")  # UTC-5 in November
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3600 + 5 * 60, "1 h 5 min"),
        (86400, "1 d"),
        (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"),
    ],
)
def test_a_span_is_said_in_at_most_two_units(seconds: int, text: str) -> None:
    assert render.span(timedelta(seconds=seconds)) == text


def test_times_are_local_with_their_age_and_the_date_only_when_it_differs() -> None:
    assert render.when("2026-11-28T02:48:00Z", NOW) == "21:48 (12 min ago)"
    assert render.when("2026-11-28T03:20:00Z", NOW) == "22:20 (in 20 min)"
    assert render.when("2026-11-28T03:00:03Z", NOW) == "22:00 (just now)"
    assert render.when("2026-11-26T03:00:00Z", NOW) == "Nov 25 22:00 (2 d ago)"
    assert render.when("2025-11-28T03:00:00Z", NOW) == "2025-11-27 22:00 (365 d ago)"
    assert render.when(None, NOW) == "-"


def test_the_labels_that_differ_include_those_some_alerts_lack() -> None:
    sets = [
        {"alertname": "Down", "env": "prod", "pod": "a"},
        {"alertname": "Down", "env": "prod", "pod": "b"},
        {"alertname": "Down", "env": "prod", "pod": "b", "zone": "x"},
    ]
    assert render.differing(sets) == ["pod", "zone"]
    assert render.differing(sets[:1]) == []
    assert render.labels_text(sets[2], ["pod", "zone"]) == "pod=b zone=x"
    assert render.labels_text(sets[0], ["zone"]) == "-"


def _entry(
    message: str, kind: str = "alert_joined", at: str = "t1", actor: str = "itsmd"
) -> dict[str, str]:
    return {"kind": kind, "actor": actor, "message": message, "at": at}


def test_placements_that_differ_only_in_a_fingerprint_or_a_count_fold() -> None:
    entry = _entry

    entries = [
        entry("opened", "opened"),
        entry("alert Down (0123456789abcdef): joined (1 firing)", at="t1"),
        entry("alert Down (fedcba9876543210): joined (2 firing)", at="t2"),
        entry("alert Down (aaaaaaaaaaaaaaaa): joined (3 firing)", at="t3"),
        entry("alert Latency (aaaaaaaaaaaaaaaa): joined (4 firing)", at="t4"),
        entry("alert Down (bbbbbbbbbbbbbbbb): joined (5 firing)", at="t5"),
    ]
    folded = [(e["message"], count, last) for e, count, last in render.folded(entries)]
    assert folded == [
        ("opened", 1, "t1"),
        ("alert Down (0123456789abcdef): joined (1 firing)", 3, "t3"),
        ("alert Latency (aaaaaaaaaaaaaaaa): joined (4 firing)", 1, "t4"),
        ("alert Down (bbbbbbbbbbbbbbbb): joined (5 firing)", 1, "t5"),  # not next to its kin
    ]


def test_other_entries_fold_word_for_word_and_never_what_people_did() -> None:
    resolved = "alert_resolved"
    entries = [
        _entry("alert Down (0123456789abcdef) resolved; 2 still firing", resolved, "t1"),
        _entry("alert Down (fedcba9876543210) resolved; 1 still firing", resolved, "t2"),
        _entry("looking", "commented", "t3", actor="ana"),
        _entry("looking", "commented", "t4", actor="ana"),
        _entry("alert Down (fedcba9876543210) resolved; 1 still firing", resolved, "t5"),
    ]
    folded = [(e["message"], count, last) for e, count, last in render.folded(entries)]
    assert folded == [
        ("alert Down (0123456789abcdef) resolved; 2 still firing", 1, "t1"),
        ("alert Down (fedcba9876543210) resolved; 1 still firing", 2, "t5"),  # not next to it
        ("looking", 1, "t3"),
        ("looking", 1, "t4"),
    ]


def test_a_flapping_alert_folds_in_the_cli_as_in_the_console() -> None:
    """The timeline the daemon writes for an alert that fires and resolves three times:
    the CLI folds the same lines as the console, with the same counts."""
    engine = Engine()
    opened = engine.send(alert(instance="a"), T0)
    for flap in range(3):
        engine.send(alert("resolved", instance="a"), T0 + (2 * flap + 1) * MIN)
        if flap < 2:
            engine.send(alert(instance="a"), T0 + (2 * flap + 2) * MIN)
    entries = [e for e in engine.ws.timeline if e.incident_id == opened.incident_id]
    as_json = [
        {"kind": e.kind.value, "actor": e.actor, "message": e.message, "at": format_time(e.at)}
        for e in entries
    ]

    cli = [(e["kind"], count) for e, count, _ in render.folded(as_json)]
    console = [(line.first.kind.value, line.count) for line in collapse(entries)]

    assert cli == console
    assert ("alert_resolved", 3) in cli
    assert ("hold_cancelled", 2) in cli


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        (['{pod="web-7"}'], '{pod="web-7"}'),
        (['pod="web-7"'], '{pod="web-7"}'),
        (["pod=web-7"], '{pod="web-7"}'),
        (["pod!=web-7", "env=~prod|stage"], '{pod!="web-7", env=~"prod|stage"}'),
        (["DiskFull"], '{alertname="DiskFull"}'),
        (['DiskFull{mount="/"}', "env=prod"], '{alertname="DiskFull", mount="/", env="prod"}'),
        (["{}"], "{}"),
        (['a="x y"'], '{a="x y"}'),
        (['a=say "hi"'], '{a="say \\"hi\\""}'),
    ],
)
def test_matchers_are_taken_as_amtool_takes_them(matchers: list[str], expected: str) -> None:
    assert selector(matchers) == expected


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        (["env=prod", "{pod="], "matcher '{pod=': position 5: expected a quoted value"),
        (['pod="web'], "matcher 'pod=\"web': position 4: unterminated string"),
        (['a=~"("'], "matcher 'a=~\"(\"': position 3: invalid regex '(' for label 'a'"),
    ],
)
def test_a_matcher_that_does_not_parse_is_named_with_its_own_positions(
    matchers: list[str], message: str
) -> None:
    with pytest.raises(ClientError) as refused:
        selector(matchers)
    assert str(refused.value).startswith(message)
