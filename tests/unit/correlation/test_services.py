"""The service catalog: dependencies, tiers, and symptoms attached to upstream incidents."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from itsmd.correlation import lifecycle
from itsmd.correlation.correlate import Correlator, Router, WorkingSet
from itsmd.correlation.rules import load_rules
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Action, Alert, IncidentStatus, Level, Priority, TimelineKind
from itsmd.yamlsource import LoadError
from tests.unit.correlation.test_correlate import MIN, T0, Engine, alert

CATALOG = """\
services:
  - name: checkout
    depends_on: [payments]
    tier: 1
  - name: payments
    depends_on: [postgres]
    tier: 2
    slo: 99.9
  - name: postgres
  - name: search
    tier: 3
"""
RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
    attach_to_upstream: true
    auto_resolve: 0s
"""


def _engine(tmp_path: Path, rules: str = RULES, catalog: str = CATALOG) -> Engine:
    (tmp_path / "10-rules.yml").write_text(rules)
    (tmp_path / "20-services.yml").write_text(catalog)
    engine = Engine()
    engine.ruleset = load_rules([tmp_path / "10-rules.yml", tmp_path / "20-services.yml"])
    return engine


def test_upstream_is_transitive_and_nearest_first(tmp_path: Path) -> None:
    rules = _engine(tmp_path).ruleset
    assert rules.upstream("checkout") == ["payments", "postgres"]
    assert rules.upstream("postgres") == []
    assert rules.upstream("unknown") == []


def test_a_symptom_joins_the_open_incident_of_its_nearest_upstream(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    root = engine.send(alert(service="postgres", instance="db-1"), T0)

    symptom = engine.send(alert(service="checkout", instance="web-1"), T0 + MIN)

    assert symptom.incident_id == root.incident_id
    inc = engine.incident(root)
    assert (inc.alert_count, inc.firing_count) == (2, 2)
    row = next(a for a in engine.ws.alerts.values() if a.labels["service"] == "checkout")
    assert row.decision.action is Action.ATTACHED
    assert row.decision.reason.endswith(
        "attached as a symptom of the incident opened for it: upstream service postgres of "
        "checkout has it open"
    )
    (entry,) = [e for e in engine.ws.timeline if e.kind is TimelineKind.SYMPTOM_ATTACHED]
    assert entry.incident_id == inc.id


def test_without_an_upstream_incident_it_correlates_as_usual(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    own = engine.send(alert(service="checkout"), T0)
    assert engine.incident(own).key == 'by-service{service="checkout"}'


def test_a_resolved_upstream_takes_no_symptoms_and_symptoms_resolve_with_the_root(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    root_alert = alert(service="payments")
    root = engine.send(root_alert, T0)
    symptom_alert = alert(service="checkout")
    engine.send(symptom_alert, T0 + MIN)
    engine.send(alert("resolved", T0, service="payments"), T0 + 2 * MIN)
    assert engine.incident(root).status is IncidentStatus.OPEN  # the symptom still fires

    engine.send(alert("resolved", T0, service="checkout"), T0 + 3 * MIN)
    assert engine.incident(root).status is IncidentStatus.RESOLVED

    later = engine.send(alert(service="checkout", instance="web-2"), T0 + 4 * MIN)
    assert later.incident_id != root.incident_id


def test_a_rule_without_impact_takes_the_service_tier(tmp_path: Path) -> None:
    engine = _engine(tmp_path, RULES.replace("    attach_to_upstream: true\n", ""))
    assert engine.incident(engine.send(alert(service="checkout"), T0)).impact is Level.HIGH
    assert engine.incident(engine.send(alert(service="search"), T0)).impact is Level.LOW
    assert engine.incident(engine.send(alert(service="postgres"), T0)).impact is Level.MEDIUM
    opened = [e.message for e in engine.ws.timeline if e.kind is TimelineKind.OPENED]
    assert "impact high from service checkout tier 1" in opened[0]


def test_an_explicit_impact_wins_over_the_tier(tmp_path: Path) -> None:
    engine = _engine(tmp_path, RULES + "    impact: low\n")
    assert engine.incident(engine.send(alert(service="checkout"), T0)).impact is Level.LOW


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        (
            "services:\n  - name: a\n    depends_on: [b]\n  - name: b\n    depends_on: [a]\n",
            "services: dependency cycle: a -> b -> a",
        ),
        (
            "services:\n  - name: a\n    depends_on: [nope]\n",
            "services: a: depends on unknown service 'nope'",
        ),
        ("services:\n  - name: a\n    tier: 4\n", "tier: expected 1, 2 or 3, got 4"),
        ("services:\n  - name: a\n    slo: 120\n", "slo: expected a percentage like 99.9"),
        ("services:\n  - name: a\n  - name: a\n", "services: name 'a' already used at"),
        ("", "attach_to_upstream needs a services: catalog"),
    ],
)
def test_catalog_mistakes_are_errors(tmp_path: Path, catalog: str, message: str) -> None:
    with pytest.raises(LoadError) as raised:
        _engine(tmp_path, catalog=catalog)
    assert any(message in str(p) for p in raised.value.findings), raised.value


SLA = {
    Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=4)),
    Priority.P3: SlaTarget(respond=timedelta(hours=4), resolve=timedelta(hours=24)),
}


def _sla_engine(tmp_path: Path) -> Engine:
    engine = _engine(tmp_path)
    engine.sla = SLA
    return engine


def test_a_symptom_more_severe_than_its_root_raises_the_root(tmp_path: Path) -> None:
    """A P1 outage of checkout (tier 1, critical) never hides in a P3 disk incident."""
    engine = _sla_engine(tmp_path)
    root = engine.send(alert(alertname="DiskFull", severity="warning", service="postgres"), T0)
    assert engine.incident(root).priority is Priority.P3  # medium x medium

    engine.send(alert(alertname="Down", severity="critical", service="checkout"), T0 + MIN)

    inc = engine.incident(root)
    assert (inc.priority, inc.impact, inc.urgency) == (Priority.P1, Level.HIGH, Level.HIGH)
    assert (inc.respond_due, inc.resolve_due) == (
        T0 + timedelta(minutes=15),
        T0 + timedelta(hours=4),
    )
    (raised,) = [e for e in engine.ws.timeline if e.kind is TimelineKind.PRIORITY_RAISED]
    assert raised.message.startswith("priority P3 -> P1: symptom Down (")
    assert "of service checkout would open a P1 incident of its own (impact high x urgency " in (
        raised.message
    )


def test_a_symptom_no_more_urgent_than_its_root_leaves_it(tmp_path: Path) -> None:
    engine = _sla_engine(tmp_path)
    root = engine.send(alert(alertname="DiskFull", severity="critical", service="postgres"), T0)
    before = engine.incident(root).priority
    engine.send(alert(alertname="Slow", severity="warning", service="search"), T0 + MIN)
    engine.send(alert(alertname="Slow", severity="info", service="checkout"), T0 + MIN)
    assert engine.incident(root).priority is before
    assert TimelineKind.PRIORITY_RAISED not in engine.kinds(engine.incident(root))


def test_a_raise_by_a_symptom_keeps_a_response_already_made(tmp_path: Path) -> None:
    engine = _sla_engine(tmp_path)
    root = engine.send(alert(alertname="DiskFull", severity="warning", service="postgres"), T0)
    acked, _, _ = lifecycle.acknowledge(engine.incident(root), "alice", T0 + timedelta(hours=1))
    engine.ws.put_incident(acked)

    engine.send(alert(alertname="Down", severity="critical", service="checkout"), T0 + 2 * MIN)

    inc = engine.incident(root)
    assert inc.priority is Priority.P1
    assert inc.respond_due == T0 + timedelta(hours=4)  # met at P3: not breached after the fact
    assert inc.resolve_due == T0 + timedelta(hours=4)


def test_a_comment_is_a_response_a_later_raise_keeps(tmp_path: Path) -> None:
    """Commented at P3 in time: a raise to P1 afterwards does not breach it."""
    engine = _sla_engine(tmp_path)
    root = engine.send(alert(alertname="DiskFull", severity="warning", service="postgres"), T0)
    commented = lifecycle.comment(engine.incident(root), "looking", "bob", T0 + 20 * MIN)
    engine.ws.put_incident(commented.incident)

    engine.send(alert(alertname="Down", severity="critical", service="checkout"), T0 + 30 * MIN)

    inc = engine.incident(root)
    assert inc.priority is Priority.P1
    assert inc.respond_due == T0 + timedelta(hours=4)


def test_a_raise_takes_the_priority_of_the_combined_impact_and_urgency(tmp_path: Path) -> None:
    """Root high x low (P3), symptom medium x high (P2): the root is high x high, P1."""
    rules = RULES.replace(
        "    auto_resolve: 0s\n", "    auto_resolve: 0s\n    impact: '{{ labels.impact }}'\n"
    )
    engine = _engine(tmp_path, rules=rules)
    root = engine.send(
        alert(alertname="Full", severity="info", service="postgres", impact="high"), T0
    )
    assert engine.incident(root).priority is Priority.P3
    engine.send(
        alert(alertname="Down", severity="critical", service="checkout", impact="medium"), T0 + MIN
    )
    inc = engine.incident(root)
    assert (inc.impact, inc.urgency, inc.priority) == (Level.HIGH, Level.HIGH, Priority.P1)


# Two open incidents of one upstream service, changed in one batch (one working set):
# the symptom goes to the newest still open, however often the older one changed.
BY_ALERT = """\
incidents:
  - name: symptoms
    match: '{service="checkout"}'
    group_by: [service]
    attach_to_upstream: true
  - name: by-alert
    match: '{}'
    group_by: [alertname]
    auto_resolve: 0s
services:
  - name: checkout
    depends_on: [postgres]
  - name: postgres
"""


def _batch(tmp_path: Path, ws: WorkingSet | None = None) -> tuple[Correlator, WorkingSet]:
    (tmp_path / "rules.yml").write_text(BY_ALERT)
    ws = ws or WorkingSet()
    return Correlator(Router(load_rules([tmp_path / "rules.yml"])), ws, {}), ws


def _firing(name: str, service: str, instance: str = "1", status: str = "firing") -> Alert:
    return alert(status, alertname=name, service=service, instance=instance)


def test_a_symptom_finds_the_older_upstream_incident_once_the_newer_resolved(
    tmp_path: Path,
) -> None:
    correlator, _ = _batch(tmp_path)
    older = correlator.apply(_firing("A", "postgres"), T0)
    newer = correlator.apply(_firing("B", "postgres"), T0 + MIN)
    assert older.incident_id != newer.incident_id
    correlator.apply(_firing("B", "postgres", status="resolved"), T0 + 2 * MIN)  # auto-resolves
    correlator.apply(_firing("A", "postgres", "2"), T0 + 3 * MIN)  # the older changes again
    symptom = correlator.apply(_firing("Slow", "checkout"), T0 + 4 * MIN)
    assert symptom.incident_id == older.incident_id


def test_of_two_upstream_incidents_opened_together_the_one_changed_last_takes_a_symptom(
    tmp_path: Path,
) -> None:
    correlator, _ = _batch(tmp_path)
    first = correlator.apply(_firing("A", "postgres"), T0)
    correlator.apply(_firing("B", "postgres"), T0)
    correlator.apply(_firing("A", "postgres", "2"), T0)
    symptom = correlator.apply(_firing("Slow", "checkout"), T0)
    assert symptom.incident_id == first.incident_id


def test_a_batch_over_loaded_incidents_finds_the_older_upstream_incident(tmp_path: Path) -> None:
    correlator, earlier = _batch(tmp_path)
    older = correlator.apply(_firing("A", "postgres"), T0)
    correlator.apply(_firing("B", "postgres"), T0 + MIN)
    loaded = WorkingSet()  # the next batch, as the store loads it
    for inc in earlier.incidents.values():
        loaded.load_incident(inc)
    for row in earlier.alerts.values():
        loaded.load_alert(row)
    correlator, _ = _batch(tmp_path, loaded)
    correlator.apply(_firing("A", "postgres", "2"), T0 + 2 * MIN)  # copied
    correlator.apply(_firing("B", "postgres", status="resolved"), T0 + 2 * MIN)
    correlator.apply(_firing("A", "postgres", "3"), T0 + 2 * MIN)  # changed in place
    symptom = correlator.apply(_firing("Slow", "checkout"), T0 + 2 * MIN)
    assert symptom.incident_id == older.incident_id
