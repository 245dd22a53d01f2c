"""The selector index finds exactly what a scan of every rule in order would find."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itsmd.correlation.matchers import Matcher, MatchOp, Selector, matches_any, parse_selector
from itsmd.correlation.routing import SelectorIndex
from itsmd.correlation.rules import ROUTE_LABELS_MAX, RuleSet, parse_rule_sections

NAMES = st.sampled_from(["alertname", "severity", "service", "env"])
VALUES = st.sampled_from(["", "a", "b", "c"])
OPS = st.sampled_from(list(MatchOp))


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    matchers = draw(st.lists(st.tuples(NAMES, OPS, VALUES), max_size=3))
    return Selector(
        tuple(
            Matcher(name, op, value or ".*" if op in (MatchOp.RE, MatchOp.NRE) else value)
            for name, op, value in matchers
        )
    )


RULES = st.lists(st.lists(selectors(), min_size=1, max_size=3), max_size=12)
LABELS = st.dictionaries(NAMES, st.sampled_from(["a", "b", "c", "d"]), max_size=4)


def scan(rules: list[list[Selector]], labels: dict[str, str]) -> int | None:
    return next((i for i, sel in enumerate(rules) if matches_any(sel, labels)), None)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(rules=RULES, labels=LABELS)
def test_index_agrees_with_a_scan_in_rule_order(
    rules: list[list[Selector]], labels: dict[str, str]
) -> None:
    index = SelectorIndex([(i, sel) for i, sel in enumerate(rules)])
    assert index.first(labels) == scan(rules, labels)


def test_indexed_selectors_are_only_checked_for_their_value() -> None:
    checked: list[str] = []

    class Spy(Selector):
        def matches(self, labels: object) -> bool:  # type: ignore[override]
            checked.append(str(self))
            return super().matches(labels)  # type: ignore[arg-type]

    rules = [(f"r{i}", [Spy(parse_selector(f'{{alertname="A{i}"}}').matchers)]) for i in range(100)]
    rules.append(("catch-all", [Spy(())]))
    index = SelectorIndex(rules)
    assert index.first({"alertname": "A42"}) == "r42"
    assert checked == ['{alertname="A42"}']
    checked.clear()
    assert index.first({"alertname": "other"}) == "catch-all"
    assert checked == ["{}"]


def test_a_label_compared_with_the_empty_string_is_not_indexed() -> None:
    index = SelectorIndex(
        [("absent", [parse_selector('{env=""}')]), ("any", [parse_selector("{}")])]
    )
    assert index.first({"service": "x"}) == "absent"
    assert index.first({"env": "prod"}) == "any"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=RULES,
    group_by=st.lists(NAMES, max_size=2, unique=True),
    alerts=st.lists(LABELS, max_size=20),
)
def test_routes_a_rule_set_remembers_agree_with_routing_afresh(
    rules: list[list[Selector]], group_by: list[str], alerts: list[dict[str, str]]
) -> None:
    """RuleSet.route remembers an answer by the values of the labels its rules read;
    a later alert alike in those must get what routing it afresh would give."""
    body = "".join(
        f"  - name: r{i}\n    match: {json.dumps([str(s) for s in selectors])}\n"
        f"    group_by: {json.dumps(group_by)}\n"
        for i, selectors in enumerate(rules)
    )
    warm = parse_rule_sections(f"incidents:\n{body}" if body else "", "r.yml").rule_set("r.yml")
    for labels in alerts + [{**labels, "instance": "other"} for labels in alerts]:
        fresh = RuleSet(incident_rules=warm.incident_rules).route(labels)
        remembered = warm.route(labels)
        if fresh is None:
            assert remembered is None
        else:
            assert remembered is not None
            assert (remembered.rule.name, remembered.key) == (fresh.rule.name, fresh.key)
            assert dict(remembered.group) == dict(fresh.group)


def test_a_storm_of_one_group_routes_once() -> None:
    checked: list[str] = []

    class Spy(Selector):
        def matches(self, labels: object) -> bool:  # type: ignore[override]
            checked.append(str(self))
            return super().matches(labels)  # type: ignore[arg-type]

    yaml = "incidents:\n  - name: by-service\n    match: '{severity=~\"crit.*\"}'\n"
    rule = parse_rule_sections(yaml + "    group_by: [service]\n", "r.yml").incidents[0]
    spied = replace(rule, match=tuple(Spy(s.matchers) for s in rule.match))
    rules = RuleSet(incident_rules=(spied,))
    for n in range(50):
        route = rules.route({"severity": "critical", "service": "db", "instance": f"i{n}"})
        assert route is not None
        assert route.key == 'by-service{service="db"}'
    assert len(checked) == 1
    assert rules.route({"severity": "critical", "service": "web"}) is not None
    assert rules.route({"severity": "warning", "service": "web"}) is None
    assert len(checked) == 3


def test_an_answer_for_long_label_values_is_not_kept() -> None:
    checked: list[str] = []

    class Spy(Selector):
        def matches(self, labels: object) -> bool:  # type: ignore[override]
            checked.append(str(self))
            return super().matches(labels)  # type: ignore[arg-type]

    yaml = "incidents:\n  - name: by-service\n    match: '{severity=~\"crit.*\"}'\n"
    rule = parse_rule_sections(yaml + "    group_by: [service]\n", "r.yml").incidents[0]
    rules = RuleSet(incident_rules=(replace(rule, match=(Spy(rule.match[0].matchers),)),))
    long = {"severity": "critical", "service": "s" * (ROUTE_LABELS_MAX + 1)}
    for _ in range(3):
        route = rules.route(long)
        assert route is not None
        assert route.group == {"service": long["service"]}
    assert len(checked) == 3  # routed afresh each time
