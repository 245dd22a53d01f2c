"""Tests for itsmd.correlation.rules: rule files parsed and validated with `file:line: message`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.correlation.matchers import MatcherError, Selector, parse_selectors
from itsmd.correlation.rules import (
    DEFAULT_DESCRIPTION,
    DEFAULT_TITLE,
    INCIDENT_KEYS,
    IncidentRule,
    RuleSet,
    load_rules,
    parse_rule_file,
    rule_files,
)
from itsmd.correlation.templates import Template
from itsmd.models import Level, Policy, Priority
from itsmd.yamlsource import LoadError

F = "rules/x.yml"


def errors(text: str, filename: str = F) -> list[str]:
    with pytest.raises(LoadError) as info:
        parse_rule_file(text, filename)
    return [str(p) for p in info.value.findings]


def one_rule(body: str) -> IncidentRule:
    """Parse one incident rule; `body` holds its fields, one per line, unindented."""
    fields = "".join(f"    {line}\n" for line in body.strip().splitlines())
    rules = parse_rule_file(f"incidents:\n  - name: r\n{fields}", F)
    assert len(rules) == 1
    return rules[0]


def rule_errors(body: str) -> list[str]:
    """Findings of one rule named r whose fields start on line 3."""
    fields = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return errors(f"incidents:\n  - name: r\n{fields}")


def matcher_message(text: Any) -> str:
    with pytest.raises(MatcherError) as info:
        parse_selectors(text)
    return str(info.value)


# --- a valid rule --------------------------------------------------------------------------------


FULL = """\
# comment
incidents:
  - name: service-outage
    match: '{severity="critical", env!="dev"}'
    group_by: [service, env]
    window: 10m
    title: '{{ labels.service }} failing in {{ labels.env }}'
    description: '{{ annotations.summary }}'
    impact: high
    urgency: medium
    priority: P2
    assignee: team-{{ labels.team }}
    auto_resolve: 1m
    reopen: 1h
    attach_to_upstream: false

  - name: second
    match: '{}'
"""


def test_full_rule() -> None:
    first, second = parse_rule_file(FULL, F)
    assert first.name == "service-outage"
    assert first.match == parse_selectors('{severity="critical", env!="dev"}')
    assert first.group_by == ("service", "env")
    assert first.policy == Policy(
        window=timedelta(minutes=10), auto_resolve=timedelta(minutes=1), reopen=timedelta(hours=1)
    )
    assert first.title.source == "{{ labels.service }} failing in {{ labels.env }}"
    assert first.description.source == "{{ annotations.summary }}"
    assert first.impact is Level.HIGH
    assert first.urgency is Level.MEDIUM
    assert first.priority is Priority.P2
    assert isinstance(first.assignee, Template)
    assert first.assignee.render({"labels": {"team": "db"}}) == ("team-db", None)
    assert (first.file, first.line) == (F, 3)  # the line of the rule's first key
    assert (second.name, second.line) == ("second", 17)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("group_by", ()),
        ("policy", Policy(timedelta(minutes=15), timedelta(minutes=5), timedelta(0))),
        ("impact", Level.MEDIUM),
        ("urgency", None),  # auto: from the severity label
        ("priority", None),  # auto: from the ITIL matrix
        ("assignee", None),
    ],
)
def test_defaults_group_by_none_window_15m_auto_resolve_5m_reopen_0s_impact_medium_rest_auto(
    field: str, expected: Any
) -> None:
    assert getattr(one_rule("match: '{}'"), field) == expected


def test_default_title_is_the_alertname_or_rule_with_the_group_values() -> None:
    rule = one_rule("match: '{}'\ngroup_by: [service, env]")
    assert rule.title.source == DEFAULT_TITLE
    context = {"labels": {"alertname": "Down"}, "rule": "r", "group": {"service": "a", "env": "b"}}
    assert rule.title.render(context) == ("Down (a, b)", None)
    assert rule.title.render({"labels": {}, "rule": "r", "group": {}}) == ("r", None)


def test_default_description_is_the_summary_or_description_annotation() -> None:
    rule = one_rule("match: '{}'")
    assert rule.description.source == DEFAULT_DESCRIPTION
    assert rule.description.render({"annotations": {"description": "d"}}) == ("d", None)
    assert rule.description.render({"annotations": {"summary": "s", "description": "d"}}) == (
        "s",
        None,
    )
    assert rule.description.render({"annotations": {}}) == ("", None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("auto_resolve: never", Policy(timedelta(minutes=15), None, timedelta(0))),
        ("auto_resolve: 0s", Policy(timedelta(minutes=15), timedelta(0), timedelta(0))),
        ("window: 0s\nreopen: 0", Policy(timedelta(0), timedelta(minutes=5), timedelta(0))),
        (
            "window: 1h30m\nreopen: 2d",
            Policy(timedelta(minutes=90), timedelta(minutes=5), timedelta(days=2)),
        ),
    ],
)
def test_policy(body: str, expected: Policy) -> None:
    assert one_rule(f"match: '{{}}'\n{body}").policy == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", None), ("P1", Priority.P1), ("P5", Priority.P5), ("p3", Priority.P3)],
)
def test_priority_values(value: str, expected: Priority | None) -> None:
    assert one_rule(f"match: '{{}}'\npriority: {value}").priority is expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("impact", "high", Level.HIGH),
        ("impact", "medium", Level.MEDIUM),
        ("impact", "low", Level.LOW),
        ("urgency", "high", Level.HIGH),
        ("urgency", "low", Level.LOW),
        ("urgency", "auto", None),
    ],
)
def test_level_values(field: str, value: str, expected: Level | None) -> None:
    assert getattr(one_rule(f"match: '{{}}'\n{field}: {value}"), field) is expected


@pytest.mark.parametrize("field", ["impact", "urgency"])
def test_level_may_be_a_template(field: str) -> None:
    value = getattr(one_rule(f"match: '{{}}'\n{field}: '{{{{ labels.impact }}}}'"), field)
    assert isinstance(value, Template)
    assert value.render({"labels": {"impact": "high"}}) == ("high", None)


def test_match_list_means_any_of() -> None:
    rule = one_rule("""match: ['{severity="critical"}', 'Watchdog{}']""")
    assert len(rule.match) == 2
    assert RuleSet((rule,)).route({"alertname": "Watchdog"}) is not None
    assert RuleSet((rule,)).route({"severity": "critical"}) is not None
    assert RuleSet((rule,)).route({"severity": "info"}) is None


@pytest.mark.parametrize(
    "text",
    ["", "# nothing but a comment\n", "incidents: []\n", "---\n"],
    ids=["empty", "comment", "empty-list", "empty-document"],
)
def test_files_without_rules(text: str) -> None:
    assert parse_rule_file(text, F) == []


# --- one problem per mistake, each at its line and key path --------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "match: '{}'\nwindw: 5m",
            ["4: incidents[0] (r).windw: unknown key (did you mean 'window'?)"],
            id="unknown-key-hint",
        ),
        pytest.param(
            "match: '{}'\nseverity: critical",
            [f"4: incidents[0] (r).severity: unknown key (allowed: {', '.join(INCIDENT_KEYS)})"],
            id="unknown-key-no-close-match",
        ),
        pytest.param(
            "match: '{}'\nwindow: 5 minutes",
            [
                "4: incidents[0] (r).window: not a duration: '5 minutes' "
                "(expected e.g. 90s, 15m, 1h30m, 7d)"
            ],
            id="bad-window",
        ),
        pytest.param(
            "match: '{}'\nauto_resolve: forever",
            [
                "4: incidents[0] (r).auto_resolve: not a duration: 'forever' "
                "(expected e.g. 90s, 15m, 1h30m, 7d)"
            ],
            id="bad-auto-resolve",
        ),
        pytest.param(
            "match: '{}'\nreopen: -1h",
            [
                "4: incidents[0] (r).reopen: not a duration: '-1h' "
                "(expected e.g. 90s, 15m, 1h30m, 7d)"
            ],
            id="bad-reopen",
        ),
        pytest.param(
            "match: '{}'\nwindow: 99999999999y",
            ["4: incidents[0] (r).window: duration too long: '99999999999y'"],
            id="huge-window",
        ),
        pytest.param(
            "match: '{}'\nwindow: [5m]",
            ["4: incidents[0] (r).window: expected a value, got a list"],
            id="window-list",
        ),
        pytest.param(
            "match: '{}'\ntitle: '{{ labels.service'",
            [
                "4: incidents[0] (r).title: template syntax error (template line 1): "
                "unexpected end of template, expected 'end of print statement'."
            ],
            id="bad-title-template",
        ),
        pytest.param(
            "match: '{}'\ndescription: '{% if x %}'",
            [
                "4: incidents[0] (r).description: template syntax error (template line 1): "
                "Unexpected end of template. Jinja was looking for the following tags: "
                "'elif' or 'else' or 'endif'. The innermost block that needs to be closed "
                "is 'if'."
            ],
            id="bad-description-template",
        ),
        pytest.param(
            "match: '{}'\nassignee: '{{ x | nope }}'",
            [
                "4: incidents[0] (r).assignee: template syntax error (template line 1): "
                "No filter named 'nope'."
            ],
            id="bad-assignee-template",
        ),
        pytest.param(
            "match: '{}'\nimpact: '{{ labels.x'",
            [
                "4: incidents[0] (r).impact: template syntax error (template line 1): "
                "unexpected end of template, expected 'end of print statement'."
            ],
            id="bad-impact-template",
        ),
        pytest.param(
            "match: '{}'\nimpact: critical",
            [
                "4: incidents[0] (r).impact: expected one of high, medium, low or a template, "
                "got 'critical'"
            ],
            id="bad-impact",
        ),
        pytest.param(
            "match: '{}'\nimpact: auto",
            [
                "4: incidents[0] (r).impact: expected one of high, medium, low or a template, "
                "got 'auto'"
            ],
            id="impact-is-never-auto",
        ),
        pytest.param(
            "match: '{}'\nurgency: urgent",
            [
                "4: incidents[0] (r).urgency: expected one of high, medium, low, auto or a "
                "template, got 'urgent'"
            ],
            id="bad-urgency",
        ),
        pytest.param(
            "match: '{}'\nurgency: High",
            [
                "4: incidents[0] (r).urgency: expected one of high, medium, low, auto or a "
                "template, got 'High'"
            ],
            id="levels-are-lower-case",
        ),
        pytest.param(
            "match: '{}'\npriority: P6",
            ["4: incidents[0] (r).priority: expected auto or one of P1..P5, got 'P6'"],
            id="bad-priority",
        ),
        pytest.param(
            "match: '{}'\npriority: 1",
            ["4: incidents[0] (r).priority: expected auto or one of P1..P5, got '1'"],
            id="priority-number",
        ),
        pytest.param(
            "match: '{}'\npriority:",
            ["4: incidents[0] (r).priority: expected a value, got nothing (null)"],
            id="priority-null",
        ),
        pytest.param(
            "match: '{}'\ntitle:\nimpact:",
            [
                "4: incidents[0] (r).title: expected a string, got nothing (null)",
                "5: incidents[0] (r).impact: expected a string, got nothing (null)",
            ],
            id="empty-values-are-not-defaults",
        ),
        pytest.param(
            "match: '{}'\ntitle: [a]",
            ["4: incidents[0] (r).title: expected a string, got a list"],
            id="title-list",
        ),
        pytest.param(
            "match: '{}'\ngroup_by: service",
            ["4: incidents[0] (r).group_by: expected a list, got str 'service'"],
            id="group-by-not-a-list",
        ),
        pytest.param(
            "match: '{}'\ngroup_by:\n  - service\n  - {env: x}",
            ["6: incidents[0] (r).group_by[1]: expected a string, got a mapping"],
            id="group-by-item",
        ),
        pytest.param(
            "match: '{}'\nattach_to_upstream: maybe",
            ["4: incidents[0] (r).attach_to_upstream: expected true or false, got str 'maybe'"],
            id="attach-to-upstream-not-bool",
        ),
        pytest.param(
            "window: 5m",
            ["2: incidents[0] (r): missing 'match' (use '{}' to match every alert)"],
            id="missing-match",
        ),
        pytest.param(
            "match: 5",
            [
                "3: incidents[0] (r).match: expected a selector like "
                "'{severity=\"critical\"}' or a list of them"
            ],
            id="match-number",
        ),
        pytest.param(
            "match: []",
            [
                "3: incidents[0] (r).match: expected a selector like "
                "'{severity=\"critical\"}' or a list of them"
            ],
            id="match-empty-list",
        ),
    ],
)
def test_rule_problem(body: str, expected: list[str]) -> None:
    assert rule_errors(body) == [f"{F}:{line}" for line in expected]


@pytest.mark.parametrize(
    "match",
    [
        '{severity="critical"',
        "{severity=critical}",
        '{severity=="critical"}',
        '{env=~"("}',
        "",
        "severity",
    ],
)
def test_bad_matcher_reports_the_matcher_parsers_message(match: str) -> None:
    assert rule_errors(f"match: '{match}'") == [
        f"{F}:3: incidents[0] (r).match: invalid matcher: {matcher_message(match)}"
    ]


def test_bad_matcher_in_a_list_names_the_selector() -> None:
    findings = rule_errors("match:\n  - '{}'\n  - '{a=b}'")
    message = matcher_message(["{}", "{a=b}"])
    assert message.startswith("selector 1: ")
    assert findings == [f"{F}:3: incidents[0] (r).match: invalid matcher: {message}"]


def test_missing_name() -> None:
    assert errors("incidents:\n  - match: '{}'\n") == [
        f"{F}:2: incidents[0]: every rule needs a name"
    ]


@pytest.mark.parametrize("name", ["''", "null", "[a]"])
def test_empty_or_odd_name(name: str) -> None:
    findings = errors(f"incidents:\n  - match: '{{}}'\n    name: {name}\n")
    assert findings[0] == f"{F}:2: incidents[0]: every rule needs a name"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "incident:\n  - name: a\n",
            [f"{F}:1: incident: unknown key (did you mean 'incidents'?)"],
            id="unknown-section-hint",
        ),
        pytest.param(
            "routes: []\n",
            [
                f"{F}:1: routes: unknown key (allowed: incidents, problems, known_errors, "
                "services, maintenance, checks)"
            ],
            id="config-key-in-a-rule-file",
        ),
        pytest.param(
            "# rules\n\n- name: a\n  match: '{}'\n",
            [f"{F}:3: expected a mapping, got a list"],
            id="top-level-list",
        ),
        pytest.param("just text\n", [f"{F}:1: expected a mapping, got str 'just text'"], id="text"),
        pytest.param(
            "incidents:\n  name: a\n",
            [f"{F}:1: incidents: expected a list, got a mapping"],
            id="incidents-mapping",
        ),
        pytest.param(
            "incidents:\n",
            [f"{F}:1: incidents: expected a list, got nothing (null)"],
            id="incidents-null",
        ),
        pytest.param(
            "incidents:\n  - a\n  - name: b\n    match: '{}'\n",
            [f"{F}:2: incidents[0]: expected a mapping, got str 'a'"],
            id="rule-not-a-mapping",
        ),
        pytest.param(
            "incidents:\n  - name: a\n    match: '{}'\n    window: 5m\n    window: 6m\n",
            [f"{F}:5: invalid YAML: duplicate key 'window' (first on line 4)"],
            id="duplicate-key",
        ),
        pytest.param(
            "incidents:\n  - name: a\n    match: '{}'\n   title: x\n",
            [
                f"{F}:4: invalid YAML: while parsing a block collection expected <block end>, "
                "but found '<block mapping start>'"
            ],
            id="yaml-indentation",
        ),
    ],
)
def test_file_problem(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_all_problems_of_a_file_are_reported_together() -> None:
    text = """\
incidents:
  - name: a
    match: '{}'
    windw: 5m
  - match: '{}'
  - name: c
    match: '{}'
    priority: P9
"""
    assert errors(text) == [
        f"{F}:4: incidents[0] (a).windw: unknown key (did you mean 'window'?)",
        f"{F}:5: incidents[1]: every rule needs a name",
        f"{F}:8: incidents[2] (c).priority: expected auto or one of P1..P5, got 'P9'",
    ]


def test_several_problems_in_one_rule_are_all_reported_in_line_order() -> None:
    assert rule_errors(
        "match: '{'\nwindow: soon\nimpact: huge\nurgency: now\npriority: P0\nextra: 1"
    ) == [
        f"{F}:3: incidents[0] (r).match: invalid matcher: {matcher_message('{')}",
        f"{F}:4: incidents[0] (r).window: not a duration: 'soon' "
        "(expected e.g. 90s, 15m, 1h30m, 7d)",
        f"{F}:5: incidents[0] (r).impact: expected one of high, medium, low or a template, "
        "got 'huge'",
        f"{F}:6: incidents[0] (r).urgency: expected one of high, medium, low, auto or a "
        "template, got 'now'",
        f"{F}:7: incidents[0] (r).priority: expected auto or one of P1..P5, got 'P0'",
        f"{F}:8: incidents[0] (r).extra: unknown key (allowed: {', '.join(INCIDENT_KEYS)})",
    ]


def test_a_bad_check_and_a_bad_rule_are_reported_together() -> None:
    text = "checks:\n  - name: x\nincidents:\n  - name: a\n"
    assert errors(text) == [
        f"{F}:2: checks[0] (x): missing 'type' (one of http, tcp, dns, heartbeat, prometheus, "
        "disk)",
        f"{F}:4: incidents[0] (a): missing 'match' (use '{{}}' to match every alert)",
    ]


# --- load_rules: several files -------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_rules_keeps_file_then_rule_order(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "10-a.yml",
        "incidents:\n  - {name: a1, match: '{}'}\n  - {name: a2, match: '{}'}\n",
    )
    b = write(tmp_path, "20-b.yml", "incidents:\n  - {name: b1, match: '{}'}\n")
    ruleset = load_rules([a, b])
    assert [r.name for r in ruleset.incident_rules] == ["a1", "a2", "b1"]
    assert [(r.file, r.line) for r in ruleset.incident_rules] == [
        (str(a), 2),
        (str(a), 3),
        (str(b), 2),
    ]
    assert ruleset.files == (str(a), str(b))
    assert len(ruleset) == 3
    assert ruleset.rule("a2") is ruleset.incident_rules[1]
    assert ruleset.rule("nope") is None


def test_load_no_files_gives_an_empty_rule_set() -> None:
    assert load_rules([]) == RuleSet()
    assert RuleSet().route({"alertname": "x"}) is None


def test_duplicate_rule_name_across_files_names_the_first_location(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "incidents:\n  - name: outage\n    match: '{}'\n")
    b = write(
        tmp_path,
        "b.yml",
        "# b\nincidents:\n  - name: other\n    match: '{}'\n  - name: outage\n    match: '{}'\n",
    )
    with pytest.raises(LoadError) as info:
        load_rules([a, b])
    assert [str(p) for p in info.value.findings] == [
        f"{b}:5: incidents: rule name 'outage' already used at {a}:2"
    ]


def test_duplicate_rule_name_in_one_file(tmp_path: Path) -> None:
    a = write(
        tmp_path, "a.yml", "incidents:\n  - {name: x, match: '{}'}\n  - {name: x, match: '{}'}\n"
    )
    with pytest.raises(LoadError) as info:
        load_rules([a])
    assert [str(p) for p in info.value.findings] == [
        f"{a}:3: incidents: rule name 'x' already used at {a}:2"
    ]


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "incidents:\n  - name: a\n    match: '{'\n")
    good = write(tmp_path, "b.yml", "incidents:\n  - {name: b, match: '{}'}\n")
    c = write(tmp_path, "c.yml", "incidents:\n  - name: c\n    match: '{}'\n    windw: 1m\n")
    d = write(tmp_path, "d.yml", "incidents: [\n")
    missing = tmp_path / "missing.yml"
    with pytest.raises(LoadError) as info:
        load_rules([a, good, c, d, missing])
    assert [str(p) for p in info.value.findings] == [
        f"{a}:3: incidents[0] (a).match: invalid matcher: {matcher_message('{')}",
        f"{c}:4: incidents[0] (c).windw: unknown key (did you mean 'window'?)",
        f"{d}:2: invalid YAML: while parsing a flow node expected the node content, "
        "but found '<stream end>'",
        f"{missing}:0: cannot read rule file: No such file or directory",
    ]


# --- rule_files ----------------------------------------------------------------------------------


def test_a_directory_means_its_yml_and_yaml_files_in_name_order(tmp_path: Path) -> None:
    for name in [
        "b.yaml",
        "a.yml",
        "99-last.yml",
        "10-first.yml",
        "notes.txt",
        "c.yml.bak",
        "README.md",
        ".00-hidden.yml",
    ]:
        write(tmp_path, name, "")
    (tmp_path / ".#10-first.yml").symlink_to("nobody@host.1234")  # an Emacs lock file
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "nested.yml", "")
    # Name order is plain string order: "10-" sorts before "99-", and digits before letters.
    assert [p.name for p in rule_files(tmp_path)] == [
        "10-first.yml",
        "99-last.yml",
        "a.yml",
        "b.yaml",
    ]
    assert rule_files(str(tmp_path)) == rule_files(tmp_path)


def test_files_are_kept_in_the_given_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "")
    z = write(tmp_path, "z.yml", "")
    d = tmp_path / "d"
    d.mkdir()
    inner = write(d, "m.yml", "")
    assert rule_files([z, str(a), d]) == [z, a, inner]
    assert rule_files(str(z)) == [z]
    assert rule_files([]) == []


def test_a_missing_path_is_passed_on_for_load_rules_to_report(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert rule_files(missing) == [missing]


# --- routing and correlation keys ----------------------------------------------------------------


ROUTING = """\
incidents:
  - name: critical
    match: '{severity="critical", env!="dev"}'
    group_by: [service, env]
  - name: watchdog
    match: ['Watchdog{}', '{alertname="DeadMansSwitch"}']
  - name: everything
    match: '{}'
    group_by: [alertname]
"""


@pytest.mark.parametrize(
    ("labels", "rule", "key", "group"),
    [
        (
            {"alertname": "Down", "severity": "critical", "env": "prod", "service": "api"},
            "critical",
            'critical{service="api", env="prod"}',
            {"service": "api", "env": "prod"},
        ),
        (  # the first matching rule wins, even when a later one matches too
            {"alertname": "Watchdog", "severity": "critical", "service": "api"},
            "critical",
            'critical{service="api", env=""}',
            {"service": "api", "env": ""},
        ),
        (
            {"alertname": "Watchdog", "severity": "critical", "env": "dev"},
            "watchdog",
            "watchdog{}",
            {},
        ),
        ({"alertname": "DeadMansSwitch"}, "watchdog", "watchdog{}", {}),
        (
            {"alertname": "Down", "env": "dev"},
            "everything",
            'everything{alertname="Down"}',
            {"alertname": "Down"},
        ),
        ({}, "everything", 'everything{alertname=""}', {"alertname": ""}),
    ],
)
def test_route(labels: dict[str, str], rule: str, key: str, group: dict[str, str]) -> None:
    route = RuleSet(tuple(parse_rule_file(ROUTING, F))).route(labels)
    assert route is not None
    assert (route.rule.name, route.key, dict(route.group)) == (rule, key, group)


def test_route_without_a_matching_rule() -> None:
    rules = tuple(parse_rule_file(ROUTING, F))[:2]
    assert RuleSet(rules).route({"alertname": "Down", "severity": "warning"}) is None


@pytest.mark.parametrize(
    ("group_by", "labels", "key"),
    [
        ("[]", {"a": "1"}, "k{}"),
        ("[a]", {"a": "1", "b": "2"}, 'k{a="1"}'),
        ("[b, a]", {"a": "1", "b": "2"}, 'k{b="2", a="1"}'),  # group_by order, not label order
        ("[a, missing]", {"a": "1"}, 'k{a="1", missing=""}'),
        ("[a]", {"a": 'say "hi"'}, 'k{a="say \\"hi\\""}'),
        ("[a]", {"a": "back\\slash"}, 'k{a="back\\\\slash"}'),
        ("[a]", {"a": "two\nlines"}, 'k{a="two\\nlines"}'),
        ("[a]", {"a": 'ünï, b="x"'}, 'k{a="ünï, b=\\"x\\""}'),
    ],
)
def test_key_for(group_by: str, labels: dict[str, str], key: str) -> None:
    text = f"incidents:\n  - name: k\n    match: '{{}}'\n    group_by: {group_by}\n"
    (rule,) = parse_rule_file(text, F)
    assert rule.key_for(labels) == (key, {name: labels.get(name, "") for name in rule.group_by})


def test_keys_of_different_label_values_never_collide() -> None:
    (rule,) = parse_rule_file("incidents:\n  - {name: k, match: '{}', group_by: [a, b]}\n", F)
    one = rule.key_for({"a": 'x", b="y', "b": ""})
    two = rule.key_for({"a": "x", "b": "y"})
    assert one[0] != two[0]


def test_rule_match_is_a_tuple_of_selectors() -> None:
    rule = one_rule("match: '{}'")
    assert rule.match == (Selector(()),)
