"""Known errors: an incident whose alerts match gets the workaround and a timeline entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from itsmd.correlation.rules import load_rules
from itsmd.models import TimelineKind
from itsmd.yamlsource import LoadError
from tests.unit.correlation.test_correlate import MIN, T0, Engine, alert

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
known_errors:
  - name: kafka-isr-shrink
    match: '{alertname="KafkaISRShrink"}'
    workaround: 'Restart the lagging broker {{ labels.broker }} (runbook KB-12).'
  - name: any-kafka
    match: '{service="kafka"}'
    workaround: 'See the Kafka runbook.'
"""


def _engine(tmp_path: Path, rules: str = RULES) -> Engine:
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    engine = Engine()
    engine.ruleset = load_rules([path])
    return engine


def test_the_first_matching_known_error_is_attached_when_the_incident_opens(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)

    inc = engine.incident(
        engine.send(alert(alertname="KafkaISRShrink", service="kafka", broker="b-2"), T0)
    )

    assert inc.known_error == "Restart the lagging broker b-2 (runbook KB-12)."
    (entry,) = [e for e in engine.ws.timeline if e.kind is TimelineKind.KNOWN_ERROR]
    assert entry.message.startswith("known error kafka-isr-shrink matches alert KafkaISRShrink")


def test_a_later_alert_that_matches_attaches_it_to_an_open_incident(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    first = engine.send(alert(alertname="Lag", service="payments"), T0)
    assert engine.incident(first).known_error is None

    engine.send(alert(alertname="KafkaISRShrink", service="payments", broker="b-1"), T0 + MIN)

    assert engine.incident(first).known_error == ("Restart the lagging broker b-1 (runbook KB-12).")


def test_once_attached_the_workaround_stays(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    first = engine.send(alert(alertname="Down", service="kafka"), T0)
    engine.send(alert(alertname="KafkaISRShrink", service="kafka", broker="b-1"), T0 + MIN)

    assert engine.incident(first).known_error == "See the Kafka runbook."
    kinds = [e.kind for e in engine.ws.timeline]
    assert kinds.count(TimelineKind.KNOWN_ERROR) == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - name: x\n    match: '{}'\n", r"known_errors\[0\] \(x\): missing 'workaround'"),
        ("  - match: '{}'\n    workaround: w\n", "every known error needs a name"),
        ("  - name: x\n    match: '{a=~\"(\"}'\n    workaround: w\n", "invalid matcher"),
        ("  - name: x\n    match: '{}'\n    workaround: w\n    fix: y\n", "unknown key"),
    ],
)
def test_mistakes_are_reported_with_the_line(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("known_errors:\n" + entry)
    with pytest.raises(LoadError, match=message) as raised:
        load_rules([path])
    assert raised.value.findings[0].line >= 2


def test_a_name_used_twice_is_an_error(tmp_path: Path) -> None:
    entry = "  - name: x\n    match: '{}'\n    workaround: w\n"
    (tmp_path / "a.yml").write_text("known_errors:\n" + entry)
    (tmp_path / "b.yml").write_text("known_errors:\n" + entry)
    with pytest.raises(LoadError, match=r"known_errors: name 'x' already used at .*a.yml:2"):
        load_rules([tmp_path / "a.yml", tmp_path / "b.yml"])
