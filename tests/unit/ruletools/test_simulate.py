"""ruletools/simulate.py: the in-memory daemon that replay and rule unit tests run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsmd.correlation.rules import parse_rule_sections
from itsmd.models import IngestAction
from itsmd.ruletools.simulate import Simulation
from tests.unit.correlation.test_correlate import alert

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
maintenance:
  - name: night
    match: '{}'
    start: 2026-01-01T00:00:00Z
    end: 2026-01-01T00:05:00Z
"""


def test_alerts_released_by_a_window_open_incidents_in_the_order_they_came() -> None:
    """As the sweep releases stored alerts by id: the same answer on every run,
    whatever the hash seed (they were released from a set once)."""
    rules = parse_rule_sections(RULES, "rules.yml").rule_set("rules.yml")
    simulation = Simulation(rules)
    services = [f"s{n}" for n in (5, 2, 7, 0, 3, 6, 1, 4)]
    for n, service in enumerate(services):
        outcome = simulation.send(alert(starts_at=T0, service=service), T0 + timedelta(seconds=n))
        assert outcome.action is IngestAction.SUPPRESSED
    simulation.advance(T0 + timedelta(minutes=6))
    assert [i.service for i in simulation.incidents()] == services
