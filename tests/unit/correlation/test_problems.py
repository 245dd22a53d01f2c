"""Problem rules: parsing, and the recurrence key an incident gets when it opens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from itsmd.correlation.problems import JoinProblem, OpenNewProblem, OpenProblem, recurrence
from itsmd.correlation.rules import load_rules, parse_rule_sections
from itsmd.models import Incident, evolve
from itsmd.yamlsource import LoadError
from tests.unit.correlation.test_correlate import T0, Engine, alert

RULES = """\
incidents:
  - name: any
    match: '{}'
    group_by: [service]
problems:
  - name: flapping
    match: '{severity="critical"}'
    group_by: [service, instance]
    after: 2
    within: 1d
"""


def test_a_problem_rule_reads_its_fields() -> None:
    (rule,) = parse_rule_sections(RULES, "r.yml").problems
    assert (rule.after, rule.within, rule.group_by) == (
        2,
        timedelta(days=1),
        ("service", "instance"),
    )
    assert rule.key_for({"service": "api"}) == 'flapping{service="api", instance=""}'


def test_an_incident_gets_the_recurrence_key_of_its_opening_alert() -> None:
    engine = Engine()
    engine.ruleset = parse_rule_sections(RULES, "r.yml").rule_set("r.yml")

    critical = engine.incident(engine.send(alert(service="api", instance="a"), T0))
    warning = engine.incident(engine.send(alert(service="db", severity="warning"), T0))

    assert critical.problem_key == 'flapping{service="api", instance="a"}'
    assert warning.problem_key is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    after: 0\n", "after: expected a count of incidents (1 or more), got 0"),
        ("    after: two\n", "after: expected a count of incidents"),
        ("    within: 0s\n", "within: must be positive"),
        ("    title: '{{ broken'\n", "title: template syntax error"),
        ("    ofter: 3\n", "unknown key (did you mean 'after'?)"),
    ],
)
def test_mistakes_are_errors_with_the_line(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("problems:\n  - name: p\n    match: '{}'\n" + entry)
    with pytest.raises(LoadError) as raised:
        load_rules([path])
    (problem,) = raised.value.findings
    assert message in str(problem)
    assert problem.line == 4


def _incident(known_error: str | None = None) -> Incident:
    engine = Engine()
    engine.ruleset = parse_rule_sections(RULES, "r.yml").rule_set("r.yml")
    inc = engine.incident(engine.send(alert(service="api", instance="a"), T0))
    return evolve(inc, known_error=known_error)


FLAPPING = parse_rule_sections(RULES, "r.yml").problems[0]
KEY = 'flapping{service="api", instance="a"}'


@pytest.mark.parametrize(
    ("found", "recent", "own_workaround", "expected"),
    [
        (None, [7], None, None),  # one incident of the key: no recurrence yet
        (
            None,
            [7, 5],
            None,
            OpenNewProblem(
                (7, 5),
                "flapping keeps recurring",
                f"2 incidents of key {KEY} within 1d (rule flapping)",
            ),
        ),
        (OpenProblem(3), [], None, JoinProblem(3, f"another incident of key {KEY}", None)),
        (
            OpenProblem(3, "restart it"),
            [],
            None,
            JoinProblem(3, f"another incident of key {KEY}", "restart it"),
        ),
        # An incident with a workaround of its own keeps it.
        (
            OpenProblem(3, "restart it"),
            [],
            "mine",
            JoinProblem(3, f"another incident of key {KEY}", None),
        ),
    ],
)
def test_recurrence_joins_the_open_problem_or_opens_one_after_enough_incidents(
    found: OpenProblem | None,
    recent: list[int],
    own_workaround: str | None,
    expected: object,
) -> None:
    inc = _incident(own_workaround)
    assert recurrence(FLAPPING, inc, found, recent, None) == expected
