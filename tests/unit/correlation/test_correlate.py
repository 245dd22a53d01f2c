"""Correlation decisions over plain data, with an explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itsmd.correlation import lifecycle
from itsmd.correlation.correlate import Correlator, Outcome, Router, WorkingSet
from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.rules import RuleSet, parse_rule_file
from itsmd.correlation.sla import SlaTarget
from itsmd.durations import format_time
from itsmd.models import (
    Action,
    Alert,
    AlertStatus,
    EventKind,
    Incident,
    IncidentStatus,
    IngestAction,
    Level,
    Priority,
    ResolvedBy,
    TimelineKind,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

RULES = """
incidents:
  - name: outage
    match: '{severity="critical"}'
    group_by: [service]
    window: 10m
    title: '{{ labels.service }} down'
    description: '{{ annotations.summary }}'
    impact: high
    auto_resolve: 5m
    reopen: 30m
  - name: warnings
    match: ['{severity="warning"}', '{alertname="Flaky"}']
    group_by: [alertname]
    auto_resolve: 0s
    impact: low
  - name: manual
    match: '{team="db"}'
    auto_resolve: never
"""


def alert(
    status: str = "firing",
    starts_at: datetime = T0,
    *,
    raw: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> Alert:
    labels = {"alertname": "Down", "severity": "critical", "service": "api", **labels}
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus(status),
        labels=labels,
        annotations=annotations or {"summary": "it broke"},
        starts_at=starts_at,
        ends_at=None if status == "firing" else starts_at + MIN,
        generator_url="",
        source="test",
        raw={"startsAt": "given"} if raw is None else raw,
    )


class Engine:
    """Correlation over one in-memory working set, as a store would keep it."""

    def __init__(self, rules: str = RULES, sla: dict[Any, SlaTarget] | None = None) -> None:
        self.ruleset = RuleSet(tuple(parse_rule_file(rules, "rules.yml")))
        self.ws = WorkingSet()
        self.sla = sla or {}

    def send(self, a: Alert, now: datetime) -> Outcome:
        return Correlator(Router(self.ruleset), self.ws, self.sla).apply(a, now)

    def sweep(self, now: datetime) -> int:
        return Correlator(Router(self.ruleset), self.ws, self.sla).resolve_due(now)

    def incident(self, outcome: Outcome) -> Incident:
        assert outcome.incident_id is not None
        return self.ws.incidents[outcome.incident_id]

    def incidents(self) -> list[Incident]:
        return sorted(self.ws.incidents.values(), key=lambda i: -(i.id or 0))

    def kinds(self, inc: Incident) -> list[TimelineKind]:
        return [e.kind for e in self.ws.timeline if e.incident_id == inc.id]


def test_alerts_of_one_group_share_an_incident_and_others_get_their_own() -> None:
    e = Engine()
    first = e.send(alert(instance="a"), T0)
    second = e.send(alert(instance="b"), T0 + MIN)
    other = e.send(alert(instance="c", service="db"), T0 + MIN)
    inc = e.incident(first)
    assert first.incident_id == second.incident_id != other.incident_id
    assert (inc.alert_count, inc.firing_count) == (2, 2)
    assert inc.key == 'outage{service="api"}'
    assert inc.title == "api down"
    assert inc.description == "it broke"
    decisions = [a.decision for a in e.ws.alerts.values() if a.incident_id == inc.id]
    assert [d.action for d in decisions] == [Action.OPENED, Action.JOINED]
    assert all(d.rule == "outage" and d.key == inc.key for d in decisions)
    assert "1 firing" in decisions[1].reason


def test_a_resent_alert_is_a_duplicate_not_a_second_alert() -> None:
    e = Engine()
    e.send(alert(), T0)
    again = e.send(alert(annotations={"summary": "updated"}), T0 + MIN)
    assert again.action == "duplicate"
    (stored,) = e.ws.alerts.values()
    assert stored.receive_count == 2
    assert stored.last_received == T0 + MIN
    assert stored.annotations == {"summary": "updated"}
    assert e.incident(again).alert_count == 1


def test_a_new_starts_at_is_a_new_episode_of_the_same_incident() -> None:
    e = Engine()
    first = e.send(alert(), T0)
    second = e.send(alert(starts_at=T0 + MIN), T0 + MIN)
    assert second.action == "new"
    assert second.incident_id == first.incident_id
    assert len(e.ws.alerts) == 2


@pytest.mark.parametrize(
    ("labels", "rule"),
    [
        ({"severity": "critical"}, "outage"),
        ({"severity": "warning"}, "warnings"),
        ({"severity": "info", "alertname": "Flaky"}, "warnings"),  # second selector of a list
        ({"severity": "critical", "team": "db"}, "outage"),  # first match wins
        ({"severity": "info", "team": "db"}, "manual"),
        ({"severity": "info"}, None),
    ],
)
def test_first_matching_rule_wins(labels: dict[str, str], rule: str | None) -> None:
    e = Engine()
    outcome = e.send(alert(**labels), T0)
    if rule is None:
        assert outcome == Outcome("unrouted", None)
        (stored,) = e.ws.alerts.values()
        assert stored.decision.action is Action.UNROUTED
        assert [ev.kind for ev in e.ws.events] == ["unrouted"]
    else:
        assert e.incident(outcome).rule == rule


@pytest.mark.parametrize(
    ("rule_extra", "severity", "priority", "impact", "urgency"),
    [
        ("impact: high", "critical", "P1", "high", "high"),
        ("impact: high", "warning", "P2", "high", "medium"),
        ("impact: medium", "critical", "P2", "medium", "high"),
        ("impact: medium", "warning", "P3", "medium", "medium"),
        ("impact: low", "critical", "P3", "low", "high"),
        ("impact: high", "info", "P3", "high", "low"),
        ("impact: medium", "none", "P4", "medium", "low"),
        ("impact: low", "warning", "P4", "low", "medium"),
        ("impact: low", "info", "P5", "low", "low"),
        ("{impact: low, priority: P1}", "info", "P1", "low", "low"),
        ("{impact: high, urgency: low}", "critical", "P3", "high", "low"),
        ("{impact: '{{ labels.tier }}'}", "critical", "P1", "high", "high"),
    ],
)
def test_priority_from_impact_and_urgency(
    rule_extra: str, severity: str, priority: str, impact: str, urgency: str
) -> None:
    extra = rule_extra.strip("{}").replace(", ", "\n    ")
    e = Engine(f"incidents:\n  - name: r\n    match: '{{}}'\n    {extra}\n")
    inc = e.incident(e.send(alert(severity=severity, tier="high"), T0))
    assert (inc.priority, inc.impact, inc.urgency) == (priority, impact, urgency)


def test_a_failing_template_opens_the_incident_anyway_and_says_why() -> None:
    e = Engine("incidents:\n  - name: r\n    match: '{}'\n    title: '{{ labels.x.y.z() }}'\n")
    inc = e.incident(e.send(alert(), T0))
    assert inc.title.startswith("<template error")
    opened = next(t for t in e.ws.timeline if t.kind is TimelineKind.OPENED)
    assert "title template" in opened.message


def test_an_impact_template_with_a_bad_value_falls_back_and_says_so() -> None:
    e = Engine("incidents:\n  - name: r\n    match: '{}'\n    impact: '{{ labels.tier }}'\n")
    inc = e.incident(e.send(alert(tier="gold"), T0))
    assert inc.impact == "medium"
    assert "impact template gave 'gold'" in e.ws.timeline[0].message


def test_sla_due_times_follow_the_priority() -> None:
    e = Engine(sla={"P1": SlaTarget(respond=15 * MIN, resolve=None)})
    inc = e.incident(e.send(alert(), T0))
    assert (inc.respond_due, inc.resolve_due) == (T0 + 15 * MIN, None)


AUTO = """
incidents:
  - name: fixed
    match: '{team="db"}'
    group_by: [service]
    urgency: low
  - name: auto
    match: '{}'
    group_by: [service]
"""


P3_P2_SLA = {
    Priority.P3: SlaTarget(respond=timedelta(hours=4), resolve=timedelta(hours=24)),
    Priority.P2: SlaTarget(respond=timedelta(hours=1), resolve=timedelta(hours=8)),
}


def test_a_more_severe_alert_joining_raises_priority_and_moves_the_due_times() -> None:
    e = Engine(AUTO, P3_P2_SLA)
    opened = e.incident(e.send(alert(alertname="Slow", severity="warning"), T0))
    assert (opened.urgency, opened.priority) == (Level.MEDIUM, Priority.P3)  # impact medium
    e.send(alert(alertname="Slower", severity="warning"), T0 + MIN)  # as urgent: no change
    assert e.incident(Outcome(IngestAction.NEW, opened.id)).priority is Priority.P3

    e.send(alert(alertname="Down", severity="critical"), T0 + 10 * MIN)
    raised = e.incident(Outcome(IngestAction.NEW, opened.id))
    assert (raised.urgency, raised.priority) == (Level.HIGH, Priority.P2)
    assert raised.respond_due == T0 + timedelta(hours=1)  # from the opening
    assert raised.resolve_due == T0 + timedelta(hours=8)
    entry = e.ws.timeline[-1]
    assert entry.kind is TimelineKind.PRIORITY_RAISED
    assert entry.message.startswith("priority P3 -> P2: alert Down (")
    assert "severity critical, urgency medium -> high (impact medium)" in entry.message

    e.send(alert(alertname="Info", severity="info"), T0 + 11 * MIN)  # never falls
    assert e.incident(Outcome(IngestAction.NEW, opened.id)).priority is Priority.P2


def test_a_raise_after_the_acknowledgement_keeps_the_met_response_target() -> None:
    hour = timedelta(hours=1)
    e = Engine(AUTO, P3_P2_SLA)
    opened = e.incident(e.send(alert(alertname="Slow", severity="warning"), T0))
    acked, _, _ = lifecycle.acknowledge(
        opened, "alice", T0 + 2 * hour
    )  # in time for P3, late for P2
    e.ws.put_incident(acked)

    e.send(alert(alertname="Down", severity="critical"), T0 + 3 * hour)
    raised = e.incident(Outcome(IngestAction.NEW, opened.id))
    assert raised.priority is Priority.P2
    assert raised.respond_due == T0 + 4 * hour  # judged at the priority of its moment
    assert raised.resolve_due == T0 + 8 * hour  # still open: follows the new priority
    assert "SLA respond due" in e.ws.timeline[-1].message


def test_a_fixed_urgency_is_kept_whatever_joins() -> None:
    e = Engine(AUTO)
    opened = e.incident(e.send(alert(team="db", severity="warning"), T0))
    e.send(alert(team="db", alertname="Worse", severity="critical"), T0 + MIN)
    assert e.incident(Outcome(IngestAction.NEW, opened.id)).priority is opened.priority
    assert TimelineKind.PRIORITY_RAISED not in e.kinds(opened)


def test_all_alerts_resolved_starts_the_hold_and_the_sweep_resolves_at_its_end() -> None:
    e = Engine()
    opened = e.send(alert(instance="a"), T0)
    e.send(alert(instance="b"), T0)
    e.send(alert("resolved", instance="a"), T0 + MIN)
    inc = e.incident(opened)
    assert inc.firing_count == 1
    assert inc.auto_resolve_at is None
    e.send(alert("resolved", instance="b"), T0 + 2 * MIN)
    inc = e.incident(opened)
    assert inc.firing_count == 0
    assert inc.auto_resolve_at == T0 + 7 * MIN
    assert e.sweep(T0 + 6 * MIN) == 0
    assert e.sweep(T0 + 7 * MIN) == 1
    inc = e.incident(opened)
    assert inc.status is IncidentStatus.RESOLVED
    assert inc.resolved_at == T0 + 7 * MIN
    assert e.kinds(inc)[-2:] == [TimelineKind.HOLD_STARTED, TimelineKind.AUTO_RESOLVED]
    resolved = [ev for ev in e.ws.events if ev.kind is EventKind.RESOLVED]
    assert [(ev.resolved_by, ev.after_s) for ev in resolved] == [(ResolvedBy.AUTO, 7 * 60.0)]


def test_an_alert_firing_within_the_hold_cancels_it() -> None:
    e = Engine()
    opened = e.send(alert(), T0)
    e.send(alert("resolved"), T0 + MIN)
    joined = e.send(alert(starts_at=T0 + 3 * MIN), T0 + 3 * MIN)
    inc = e.incident(joined)
    assert joined.incident_id == opened.incident_id
    assert inc.auto_resolve_at is None
    assert inc.firing_count == 1
    assert TimelineKind.HOLD_CANCELLED in e.kinds(inc)
    assert e.sweep(T0 + 60 * MIN) == 0


def test_zero_hold_resolves_at_once_and_never_waits_for_a_human() -> None:
    e = Engine()
    at_once = e.send(alert(severity="warning"), T0)
    e.send(alert("resolved", severity="warning"), T0 + MIN)
    assert e.incident(at_once).status is IncidentStatus.RESOLVED
    assert e.incident(at_once).resolved_at == T0 + MIN
    never = e.send(alert(severity="info", team="db"), T0)
    e.send(alert("resolved", severity="info", team="db"), T0 + MIN)
    assert e.sweep(T0 + 1000 * MIN) == 0
    inc = e.incident(never)
    assert inc.status is IncidentStatus.OPEN
    assert "waiting for a human" in e.ws.timeline[-1].message


@pytest.mark.parametrize(
    ("gap", "same_incident"),
    [(5 * MIN, True), (10 * MIN, True), (11 * MIN, False)],
)
def test_window_after_the_last_alert_resolved(gap: timedelta, same_incident: bool) -> None:
    e = Engine(
        "incidents:\n  - name: r\n    match: '{}'\n    window: 10m\n    auto_resolve: never\n"
    )
    first = e.send(alert(instance="a"), T0)
    e.send(alert("resolved", instance="a"), T0 + MIN)
    later = e.send(alert(instance="b", starts_at=T0 + MIN + gap), T0 + MIN + gap)
    assert (later.incident_id == first.incident_id) is same_incident
    old = e.incident(first)
    if not same_incident:
        assert not old.active
        assert old.status is IncidentStatus.OPEN
        assert e.kinds(old)[-1] is TimelineKind.CLOSED_TO_ALERTS
        assert e.ws.current[old.key] == later.incident_id
        (new_alert,) = [a for a in e.ws.alerts.values() if a.incident_id == later.incident_id]
        assert "takes no more alerts" in new_alert.decision.reason


@pytest.mark.parametrize(
    ("after_resolve", "reopened"),
    [(10 * MIN, True), (30 * MIN, True), (31 * MIN, False)],
)
def test_reopen_within_the_reopen_span(after_resolve: timedelta, reopened: bool) -> None:
    e = Engine()
    first = e.send(alert(), T0)
    e.send(alert("resolved"), T0 + MIN)
    e.sweep(T0 + 6 * MIN)
    assert e.incident(first).status is IncidentStatus.RESOLVED
    at = T0 + 6 * MIN + after_resolve
    later = e.send(alert(starts_at=at), at)
    assert (later.incident_id == first.incident_id) is reopened
    inc = e.incident(later)
    assert inc.status is IncidentStatus.OPEN
    (new_alert,) = [a for a in e.ws.alerts.values() if a.starts_at == at]
    assert new_alert.decision.action is (Action.REOPENED if reopened else Action.OPENED)
    if reopened:
        assert TimelineKind.REOPENED in e.kinds(inc)
        assert inc.resolved_at is None
        assert [ev.kind for ev in e.ws.events].count("reopened") == 1


def test_a_resolve_with_another_starts_at_resolves_the_latest_firing_episode() -> None:
    e = Engine()
    opened = e.send(alert(starts_at=T0), T0)
    stray = alert("resolved", starts_at=T0 + 2 * MIN)  # Alertmanager replaced the alert
    assert e.send(stray, T0 + 3 * MIN).action == "updated"
    (stored,) = e.ws.alerts.values()
    assert stored.status is AlertStatus.RESOLVED
    assert stored.starts_at == T0
    assert e.incident(opened).firing_count == 0
    assert e.send(stray, T0 + 4 * MIN).action == "duplicate"  # its re-send
    assert len(e.ws.alerts) == 1


def test_a_resolve_for_an_alert_never_seen_is_stored_and_opens_nothing() -> None:
    e = Engine()
    outcome = e.send(alert("resolved"), T0)
    assert outcome == Outcome("orphan", None)
    (stored,) = e.ws.alerts.values()
    assert stored.decision.action is Action.ORPHAN_RESOLVE
    assert stored.incident_id is None
    assert not e.ws.incidents
    assert e.send(alert("resolved"), T0 + MIN).action == "duplicate"


def test_the_same_episode_firing_again_rejoins_its_incident() -> None:
    e = Engine()
    opened = e.send(alert(), T0)
    e.send(alert("resolved"), T0 + MIN)
    again = e.send(alert(), T0 + 2 * MIN)
    assert again == Outcome("updated", opened.incident_id)
    inc = e.incident(opened)
    assert (inc.alert_count, inc.firing_count, inc.auto_resolve_at) == (1, 1, None)
    assert e.kinds(inc)[-1] is TimelineKind.ALERT_REFIRED


def test_alerts_without_starts_at_continue_their_firing_episode() -> None:
    e = Engine()
    e.send(alert(raw={}), T0)
    again = e.send(alert(starts_at=T0 + MIN, raw={}), T0 + MIN)
    assert again.action == "duplicate"
    assert len(e.ws.alerts) == 1


def test_after_a_human_resolved_it_alert_resolves_start_no_hold() -> None:
    e = Engine()
    opened = e.send(alert(), T0)
    e.ws.apply(lifecycle.resolve(e.incident(opened), "alice", T0 + MIN))
    e.send(alert("resolved"), T0 + 2 * MIN)
    inc = e.incident(opened)
    assert inc.status is IncidentStatus.RESOLVED
    assert inc.resolved_at == T0 + MIN
    assert inc.auto_resolve_at is None
    assert inc.firing_count == 0


def test_every_decision_leaves_a_timeline_entry() -> None:
    e = Engine()
    opened = e.send(alert(instance="a"), T0)
    e.send(alert(instance="b"), T0)
    e.send(alert("resolved", instance="a"), T0 + MIN)
    e.send(alert("resolved", instance="b"), T0 + MIN)
    e.sweep(T0 + 10 * MIN)
    assert e.kinds(e.incident(opened)) == [
        TimelineKind.OPENED,
        TimelineKind.ALERT_JOINED,
        TimelineKind.ALERT_JOINED,
        TimelineKind.ALERT_RESOLVED,
        TimelineKind.ALERT_RESOLVED,
        TimelineKind.HOLD_STARTED,
        TimelineKind.AUTO_RESOLVED,
    ]


def test_the_hold_names_its_end_in_whole_seconds_and_the_incident_keeps_it_exact() -> None:
    e = Engine()
    opened = e.send(alert(), T0)
    resolved_at = T0 + MIN + timedelta(microseconds=250_000)
    e.send(alert("resolved"), resolved_at)
    inc = e.incident(opened)
    hold = [t for t in e.ws.timeline if t.kind is TimelineKind.HOLD_STARTED]
    assert inc.auto_resolve_at == resolved_at + 5 * MIN
    assert len(hold) == 1
    assert hold[0].message.startswith(
        f"all alerts resolved; resolves automatically at {format_time(T0 + 6 * MIN)} unless"
    )


def test_router_routes_each_fingerprint_once() -> None:
    calls: list[object] = []

    class CountingRules(RuleSet):
        def route(self, labels: Any) -> Any:
            calls.append(labels)
            return super().route(labels)

    rules = RuleSet(tuple(parse_rule_file(RULES, "r.yml")))
    router = Router(CountingRules(rules.incident_rules))
    a = alert()
    assert router.route(a.fingerprint, a.labels) is router.route(a.fingerprint, a.labels)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("apart", "episodes"),
    [
        (timedelta(milliseconds=3), 1),  # two unclustered Alertmanagers' own stamps
        (timedelta(seconds=-4), 1),  # either one first
        (timedelta(seconds=10), 1),
        (timedelta(seconds=11), 2),  # a new episode whose resolve went missing
    ],
)
def test_a_start_close_to_a_firing_episode_is_that_episode(apart: timedelta, episodes: int) -> None:
    e = Engine()
    first = e.send(alert(), T0)
    again = e.send(alert(starts_at=T0 + apart), T0 + MIN)
    assert len(e.ws.alerts) == episodes
    assert again.incident_id == first.incident_id
    if episodes == 1:
        (row,) = e.ws.alerts.values()
        assert (row.starts_at, row.receive_count) == (T0, 2)
        assert again.action is IngestAction.UPDATED or again.action is IngestAction.DUPLICATE


def test_after_its_episode_resolved_a_close_start_is_a_new_episode() -> None:
    e = Engine()
    e.send(alert(), T0)
    e.send(alert("resolved"), T0 + MIN)
    e.send(alert(starts_at=T0 + timedelta(seconds=5)), T0 + 2 * MIN)
    assert len(e.ws.alerts) == 2
