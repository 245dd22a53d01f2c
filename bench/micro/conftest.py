"""Shared fixtures for the correlation micro-benchmarks: the shipped-style rule set.

The rules are a copy of rules/10-services.yml and rules/99-catch-all.yml rather than
a read of those files, so that a figure moves only when the code changes, not when
someone edits the shipped examples.
"""

from __future__ import annotations

import pytest

from itsmd.correlation.rules import IncidentRule, RuleSet, parse_rule_file

SHIPPED_STYLE_RULES = """
incidents:
  - name: service-outage
    match: '{severity="critical", env!="dev"}'
    group_by: [service, env]
    window: 15m
    title: '{{ labels.service or labels.job or labels.alertname }} failing{% if labels.env %} in {{ labels.env }}{% endif %}'
    description: '{{ annotations.summary or annotations.description or "" }}'
    impact: high
    urgency: auto
    auto_resolve: 5m
    reopen: 1h
  - name: service-degraded
    match: '{severity="warning"}'
    group_by: [service, alertname]
    window: 30m
    title: '{{ labels.alertname }} on {{ labels.service or labels.instance or "unknown service" }}'
    impact: medium
    auto_resolve: 10m
    reopen: 30m
  - name: catch-all
    match: '{}'
    group_by: [alertname]
    window: 1h
    title: '{{ labels.alertname }}{% if labels.service %} on {{ labels.service }}{% endif %}'
    impact: low
    auto_resolve: 15m
"""  # noqa: E501 - the shipped title template is one long line


@pytest.fixture(scope="session")
def shipped_rules() -> RuleSet:
    return RuleSet(tuple(parse_rule_file(SHIPPED_STYLE_RULES, "rules.yml")))


@pytest.fixture(scope="session")
def catch_all_rule(shipped_rules: RuleSet) -> IncidentRule:
    rule = shipped_rules.rule("catch-all")
    assert rule is not None
    return rule
