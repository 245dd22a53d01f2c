"""Warnings of `itsmd rules check`: unreachable rules, impossible selectors, unknown
template variables; the cover check is sound (property-tested)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given

from itsmd.cli.main import main
from itsmd.correlation.matchers import Selector
from itsmd.correlation.rules import RuleSet, load_rules, parse_rule_file
from itsmd.ruletools.check import implies, impossible, lint
from tests.unit.correlation.test_routing import LABELS, selectors
from tests.unit.test_shipped_files import shipped_rule_files

RULES = """\
incidents:
  - name: db
    match: '{service="db"}'
  - name: db-critical
    match: '{service="db", severity="critical"}'
  - name: never
    match: '{env="prod", env!="prod"}'
  - name: regex
    match: '{env="prod", env=~"dev|test"}'
    title: '{{ lables.service }} {{ group.service }}{% set x = 1 %}{{ x }}{{ range(2) }}'
  - name: everything
    match: '{}'
  - name: after-everything
    match: ['{alertname="X"}', '{severity="page"}']
"""


def test_each_kind_of_mistake_is_a_warning_on_the_rule_line() -> None:
    rules = RuleSet(tuple(parse_rule_file(RULES, "r.yml")))

    assert [str(w) for w in lint(rules)] == [
        "r.yml:4: warning: incidents: rule db-critical is never used: rule db (r.yml:2) "
        "comes first and matches every alert it matches",
        'r.yml:6: warning: incidents: rule never: {env="prod", env!="prod"} can never match: '
        'env="prod" and env!="prod" contradict',
        'r.yml:8: warning: incidents: rule regex: {env="prod", env=~"dev|test"} can never '
        'match: env="prod" and env=~"dev|test" contradict',
        "r.yml:8: warning: incidents: rule regex: title uses lables, which templates do not "
        "have (they have labels, annotations, group, key, rule)",
        "r.yml:13: warning: incidents: rule after-everything is never used: rule everything "
        "(r.yml:11) comes first and matches every alert it matches",
    ]


def test_the_shipped_rules_have_no_warnings() -> None:
    assert lint(load_rules(shipped_rule_files())) == []


@given(narrow=selectors(), wide=selectors(), labels=LABELS)
def test_implies_is_sound(narrow: Selector, wide: Selector, labels: dict[str, str]) -> None:
    if implies(narrow, wide) and narrow.matches(labels):
        assert wide.matches(labels)


@given(selector=selectors(), labels=LABELS)
def test_an_impossible_selector_matches_nothing(selector: Selector, labels: dict[str, str]) -> None:
    if impossible(selector) is not None:
        assert not selector.matches(labels)


def test_check_prints_warnings_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULES)

    assert main(["rules", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "ok: 6 incident rules in 1 files, 5 warnings" in captured.out
    assert captured.err.count(": warning: ") == 5


def test_an_unreachable_rule_behind_a_list_of_selectors() -> None:
    base = RuleSet(tuple(parse_rule_file(RULES, "r.yml")))
    first, second = base.incident_rules[0], base.incident_rules[1]
    either = replace(first, match=(*first.match, *second.match))
    rules = RuleSet((either, replace(second, name="db-critical-again")))
    assert [w.message.split(" is never used")[0] for w in lint(rules)] == [
        "incidents: rule db-critical-again"
    ]
