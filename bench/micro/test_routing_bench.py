"""Rule lookup: one alert routed through 10 and through 1,000 incident rules.

The alert matches none of the generated rules, only the catch-all at the end. A full
scan would evaluate every rule; the equality-matcher index (itsmd.correlation.routing) checks just
the rules filed under the alert's own label values plus the unindexed ones, so the
1,000-rule figure should stay close to the 10-rule one. A regression to a scan shows
as a ratio near 100.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from itsmd.correlation.matchers import parse_selectors
from itsmd.correlation.rules import IncidentRule, RuleSet

ALERT = {
    "alertname": "InstanceDown",
    "severity": "critical",
    "env": "prod",
    "service": "api",
    "instance": "api-1",
    "job": "node",
}

# Rules as teams write them: each has an equality matcher on alertname or service
# (so it is indexed), plus `!=` or regex matchers that only run for candidates.
RULE_SHAPES = [
    '{{alertname="App{i}Down", env!="dev"}}',
    '{{service="svc-{i}", severity=~"critical|warning"}}',
    '{{alertname="Job{i}Failed", job=~"batch-.*"}}',
]
# The commonest shape of all: every rule also says severity="critical", as the alert
# does. Filed under severity, each rule would be a candidate for every critical alert.
SHARED_LABEL_SHAPES = ['{{alertname="App{i}Down", severity="critical"}}']


def rule_set(size: int, catch_all: IncidentRule, shapes: list[str] = RULE_SHAPES) -> RuleSet:
    # `replace` on the parsed catch-all reuses its compiled templates: building 1,000
    # rules through YAML would spend over a second compiling Jinja, which routing
    # never touches.
    generated = [
        replace(
            catch_all,
            name=f"team-{i}",
            match=parse_selectors(shapes[i % len(shapes)].format(i=i)),
        )
        for i in range(size - 1)
    ]
    return RuleSet((*generated, catch_all))


@pytest.mark.parametrize("size", [10, 1000], ids=["10-rules", "1000-rules"])
@pytest.mark.parametrize(
    "shapes", [RULE_SHAPES, SHARED_LABEL_SHAPES], ids=["mixed", "shared-severity"]
)
def test_route_to_last_catch_all(
    benchmark: BenchmarkFixture, catch_all_rule: IncidentRule, size: int, shapes: list[str]
) -> None:
    rules = rule_set(size, catch_all_rule, shapes)
    assert len(rules) == size
    benchmark.group = "routing: first match is the last rule"
    # RuleSet.route, not correlate.Router: the Router memoizes per fingerprint, so
    # after the first round it would measure a dict hit, not the lookup.
    route = benchmark(rules.route, ALERT)
    assert route is not None
    assert route.rule is catch_all_rule
    assert route.key == 'catch-all{alertname="InstanceDown"}'
