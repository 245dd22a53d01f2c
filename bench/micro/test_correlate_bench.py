"""Correlation decisions: `Correlator.apply` for one alert over an in-memory WorkingSet.

`apply` mutates the working set, so every round gets a fresh one from `setup` (not
timed) and each figure is one decision from the same starting state. The loaded
incident and alert rows are frozen dataclasses that `apply` replaces rather than
changes, so they are built once and only the containers are fresh per round.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from itsmd.correlation.correlate import Correlator, Outcome, Router, WorkingSet
from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.rules import RuleSet
from itsmd.correlation.sla import SlaTarget, SlaTargets
from itsmd.models import (
    Action,
    Alert,
    AlertStatus,
    Decision,
    Incident,
    IncidentStatus,
    Level,
    Priority,
    StoredAlert,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=2)
SLA: SlaTargets = {
    Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=4)),
    Priority.P2: SlaTarget(respond=timedelta(hours=1), resolve=timedelta(hours=8)),
}
KEY = 'service-outage{service="api", env="prod"}'
INCIDENT_ID = 1

# Rounds per figure: one decision is tens of microseconds, so 2,000 rounds give a
# stable median in well under a second. Warm-up lets caches (Jinja, re) settle.
ROUNDS = 2000
WARMUP_ROUNDS = 50


def make_alert(instance: str) -> Alert:
    labels = {
        "alertname": "InstanceDown",
        "severity": "critical",
        "env": "prod",
        "service": "api",
        "instance": instance,
        "job": "node",
    }
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus.FIRING,
        labels=labels,
        annotations={"summary": f"{instance} is down"},
        starts_at=T0,
        ends_at=None,
        generator_url="http://prometheus:9090/graph",
        source="alertmanager",
        raw={"startsAt": T0.isoformat()},  # present: no firing-episode search
    )


def stored(alert: Alert) -> StoredAlert:
    """The alert as the store returns it after it opened INC-1."""
    return StoredAlert(
        id=1,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        status=alert.status,
        ends_at=None,
        labels=alert.labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url,
        source=alert.source,
        first_received=T0,
        last_received=T0,
        receive_count=1,
        incident_id=INCIDENT_ID,
        decision=Decision(Action.OPENED, "opened", "service-outage", KEY),
    )


def open_incident(rules: RuleSet) -> Incident:
    """INC-1 of the key, open with one firing alert, as the store returns it."""
    rule = rules.rule("service-outage")
    assert rule is not None
    return Incident(
        id=INCIDENT_ID,
        rule=rule.name,
        key=KEY,
        status=IncidentStatus.OPEN,
        title="api failing in prod",
        description="api-1 is down",
        priority=Priority.P1,
        impact=Level.HIGH,
        urgency=Level.HIGH,
        service="api",
        assignee=None,
        labels={"service": "api", "env": "prod"},
        opened_at=T0,
        acknowledged_at=None,
        resolved_at=None,
        alert_count=1,
        firing_count=1,
        policy=rule.policy,
    )


def loaded(alerts: list[StoredAlert], incidents: list[Incident]) -> WorkingSet:
    """A working set filled as store.repo.load_working_set fills it: nothing dirty yet."""
    ws = WorkingSet()
    for a in alerts:
        ws.load_alert(a)
    for inc in incidents:
        ws.load_incident(inc)  # as loaded: a change copies it (WorkingSet.change_incident)
    return ws


Scenario = Callable[[], WorkingSet]


def decide(
    benchmark: BenchmarkFixture, rules: RuleSet, alert: Alert, fresh: Scenario
) -> tuple[Outcome, WorkingSet]:
    """Benchmark `apply` over a fresh working set per round; return the last round."""
    last: list[WorkingSet] = []

    def setup() -> tuple[tuple[Correlator, Alert, datetime], dict[str, Any]]:
        ws = fresh()
        last[:] = [ws]
        # A fresh Router too: the writer makes one per batch, and a warm one would skip
        # routing, which is part of deciding a new alert.
        return (Correlator(Router(rules), ws, SLA), alert, NOW), {}

    def apply(correlator: Correlator, alert: Alert, now: datetime) -> Outcome:
        return correlator.apply(alert, now)

    benchmark.group = "correlate: one apply"
    outcome: Outcome = benchmark.pedantic(
        apply, setup=setup, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS
    )
    return outcome, last[0]


@pytest.fixture(scope="module")
def first_alert() -> Alert:
    return make_alert("api-1")


def test_new_alert_opens_incident(
    benchmark: BenchmarkFixture, shipped_rules: RuleSet, first_alert: Alert
) -> None:
    outcome, ws = decide(benchmark, shipped_rules, first_alert, WorkingSet)
    assert outcome.action == "new"
    (inc,) = ws.incidents.values()
    assert outcome.incident_id == inc.id
    assert (inc.key, inc.priority, inc.title) == (KEY, Priority.P1, "api failing in prod")
    assert inc.respond_due == NOW + timedelta(minutes=15)
    assert ws.alerts[first_alert.identity].decision.action is Action.OPENED


def test_new_alert_joins_open_incident(benchmark: BenchmarkFixture, shipped_rules: RuleSet) -> None:
    incident = open_incident(shipped_rules)
    second = make_alert("api-2")
    outcome, ws = decide(benchmark, shipped_rules, second, lambda: loaded([], [incident]))
    assert outcome == Outcome("new", INCIDENT_ID)
    assert len(ws.incidents) == 1
    joined = ws.incidents[INCIDENT_ID]
    assert (joined.alert_count, joined.firing_count) == (2, 2)
    assert ws.alerts[second.identity].decision.action is Action.JOINED


def test_resend_is_duplicate(
    benchmark: BenchmarkFixture, shipped_rules: RuleSet, first_alert: Alert
) -> None:
    incident = open_incident(shipped_rules)
    row = stored(first_alert)
    outcome, ws = decide(benchmark, shipped_rules, first_alert, lambda: loaded([row], [incident]))
    assert outcome == Outcome("duplicate", INCIDENT_ID)
    assert len(ws.alerts) == 1
    assert ws.alerts[first_alert.identity].receive_count == 2
    assert ws.incidents[INCIDENT_ID].alert_count == 1
    assert [e.kind for e in ws.events] == ["duplicate"]
