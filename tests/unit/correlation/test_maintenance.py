"""Maintenance windows: suppress or annotate matching alerts while a window is on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from itsmd.correlation.correlate import Correlator, Router
from itsmd.correlation.rules import load_rules, parse_rule_sections
from itsmd.models import Action, EventKind, TimelineKind
from itsmd.yamlsource import LoadError
from tests.unit.correlation.test_correlate import MIN, T0, Engine, alert

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
maintenance:
  - name: pg-upgrade
    match: '{service="db"}'
    start: 2026-03-01T12:10:00Z
    end: 2026-03-01T12:40:00Z
    change: CHG-123
  - name: api-deploy
    match: '{service="api"}'
    start: 2026-03-01T12:00:00Z
    end: 2026-03-01T13:00:00Z
    action: annotate
"""


def _engine(rules: str = RULES) -> Engine:
    engine = Engine()
    engine.ruleset = parse_rule_sections(rules, "rules.yml").rule_set("rules.yml")
    return engine


def test_an_alert_in_a_suppress_window_is_stored_and_opens_nothing() -> None:
    engine = _engine()

    outcome = engine.send(alert(service="db"), T0 + 15 * MIN)

    assert (outcome.action, outcome.incident_id) == ("suppressed", None)
    (row,) = engine.ws.alerts.values()
    assert row.decision.action is Action.SUPPRESSED
    assert (
        "suppressed by maintenance window pg-upgrade (suppress, change CHG-123) until "
        "2026-03-01T12:40:00Z" in row.decision.reason
    )
    assert row.decision.suppressed_by == "pg-upgrade"
    assert [e.window for e in engine.ws.events if e.kind is EventKind.SUPPRESSED] == ["pg-upgrade"]


def test_before_and_after_the_window_alerts_correlate_as_usual() -> None:
    engine = _engine()
    assert engine.send(alert(service="db", instance="a"), T0 + 9 * MIN).action == "new"
    assert engine.send(alert(service="db", instance="b"), T0 + 40 * MIN).action == "new"


def test_an_incident_open_before_the_window_is_not_hidden() -> None:
    engine = _engine()
    first = engine.send(alert(service="db", instance="a"), T0 + 5 * MIN)

    later = engine.send(alert(service="db", instance="b"), T0 + 20 * MIN)

    assert later.incident_id == first.incident_id
    assert engine.incident(first).alert_count == 2


def test_alerts_still_firing_when_the_window_ends_are_correlated_then() -> None:
    engine = _engine()
    engine.send(alert(service="db", instance="a"), T0 + 15 * MIN)
    engine.send(alert(service="db", instance="b"), T0 + 16 * MIN)
    engine.send(alert("resolved", T0 + 16 * MIN, service="db", instance="b"), T0 + 20 * MIN)
    correlator = Correlator(Router(engine.ruleset), engine.ws, {})
    assert correlator.release_suppressed(T0 + 39 * MIN) == 0  # still on

    assert correlator.release_suppressed(T0 + 40 * MIN) == 1  # only the firing one

    (inc,) = engine.incidents()
    assert inc.alert_count == 1
    opener = next(a for a in engine.ws.alerts.values() if a.incident_id == inc.id)
    assert opener.decision.reason.startswith(
        "suppressed by maintenance window pg-upgrade (suppress, change CHG-123) until it ended; "
    )


def test_an_annotate_window_marks_the_incidents_it_opens() -> None:
    engine = _engine()

    inc = engine.incident(engine.send(alert(service="api"), T0 + MIN))

    (entry,) = [e for e in engine.ws.timeline if e.kind is TimelineKind.MAINTENANCE]
    assert entry.incident_id == inc.id
    assert entry.message == (
        "opened during maintenance window api-deploy (annotate) until 2026-03-01T13:00:00Z"
    )


@pytest.mark.parametrize(
    ("moment", "active"),
    [
        (datetime(2026, 11, 29, 1, 59, tzinfo=UTC), False),  # 02:59 in Berlin
        (datetime(2026, 11, 29, 2, 0, tzinfo=UTC), True),  # 03:00 in Berlin, a Sunday
        (datetime(2026, 11, 29, 3, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 29, 4, 0, tzinfo=UTC), False),  # 2h later: over
        (datetime(2026, 11, 30, 2, 30, tzinfo=UTC), False),  # Monday
        (datetime(2026, 7, 5, 1, 30, tzinfo=UTC), True),  # summer time: 03:30 in Berlin
    ],
)
def test_a_recurring_window_follows_cron_in_its_time_zone(moment: datetime, active: bool) -> None:
    rules = parse_rule_sections(
        "maintenance:\n  - name: weekly\n    match: '{}'\n    every: '0 3 * * sun'\n"
        "    duration: 2h\n    timezone: Europe/Berlin\n",
        "r.yml",
    ).rule_set("r.yml")
    (window,) = rules.maintenance

    span = window.occurrence(moment)

    assert (span is not None) is active
    if span is not None:
        assert span[1] - span[0] == timedelta(hours=2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    match: '{}'\n", "needs start and end (RFC 3339), or every (cron) and duration"),
        (
            "    match: '{}'\n    start: 2026-01-01T02:00:00Z\n    end: 2026-01-01T01:00:00Z\n",
            "end: must be after start",
        ),
        ("    match: '{}'\n    every: '0 3 * *'\n    duration: 1h\n", "invalid cron expression"),
        ("    match: '{}'\n    every: '0 3 * * *'\n", "needs a positive duration"),
        (
            "    match: '{}'\n    every: '0 3 * * *'\n    duration: 1h\n    timezone: Mars/Base\n",
            "unknown time zone 'Mars/Base'",
        ),
        (
            "    match: '{}'\n    every: '0 3 * * *'\n    duration: 1h\n    action: hide\n",
            "expected suppress or annotate, got 'hide'",
        ),
        (
            "    match: '{}'\n    every: '0 3 * * *'\n    duration: 1h\n"
            "    start: 2026-01-01T02:00:00Z\n",
            "give either start and end, or every and duration",
        ),
    ],
)
def test_mistakes_are_reported_with_the_window(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("maintenance:\n  - name: w\n" + body)
    with pytest.raises(LoadError) as raised:
        load_rules([path])
    assert any(
        message in str(p) and "maintenance[0] (w)" in str(p) for p in raised.value.findings
    ), raised.value


@pytest.mark.parametrize(
    "times",
    [
        "    start: 2026-12-01 02:00\n    end: 2026-12-01T04:00:00Z\n",
        "    start: 2026-12-01T02:00:00Z\n    end: tomorrow\n",
    ],
)
def test_a_time_given_but_wrong_is_the_one_finding(tmp_path: Path, times: str) -> None:
    """Not also "needs start and end": it was given, it did not parse."""
    path = tmp_path / "rules.yml"
    path.write_text("maintenance:\n  - name: w\n    match: '{}'\n" + times)
    with pytest.raises(LoadError) as raised:
        load_rules([path])
    (finding,) = raised.value.findings
    assert "not an RFC 3339 time" in str(finding)


def test_a_wrong_start_and_no_end_are_two_findings(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("maintenance:\n  - name: w\n    match: '{}'\n    start: 2026-12-01 02:00\n")
    with pytest.raises(LoadError) as raised:
        load_rules([path])
    assert [str(f).split(": ", 1)[1] for f in raised.value.findings] == [
        "maintenance[0] (w): needs start and end (RFC 3339), or every (cron) and duration",
        "maintenance[0] (w).start: not an RFC 3339 time: '2026-12-01 02:00'",
    ]
