"""Every label matcher and `body_regex` is RE2: refused patterns are load errors with
`file:line` (or the field, for windows created through the API), and hostile patterns
match in linear time wherever they are written."""

from __future__ import annotations

import pytest

from itsmd.checks.spec import HeartbeatProbe, HttpProbe
from itsmd.config import parse_config
from itsmd.correlation.matchers import MatcherError, parse_selectors
from itsmd.correlation.rules import parse_rule_sections, parse_window
from itsmd.yamlsource import LoadError

F = "rules/x.yml"
BACKREFERENCE = r'{service=~"(a)\\1"}'  # the regex (a)\1 once the Go escape is read
HOSTILE = '{service=~"(a|a)+b"}'
LONG = {"service": "a" * 10_000}


def reason(selector: str) -> str:
    with pytest.raises(MatcherError) as info:
        parse_selectors(selector)
    return str(info.value)


def findings(text: str) -> list[str]:
    with pytest.raises(LoadError) as info:
        parse_rule_sections(text, F)
    return [str(p) for p in info.value.findings]


def test_the_backreference_is_refused_by_the_matcher_parser() -> None:
    assert reason(BACKREFERENCE) == (
        r"position 10: invalid regex '(a)\\1' for label 'service': "
        r"invalid escape sequence: \1 (regexes are RE2 syntax)"
    )


@pytest.mark.parametrize(
    ("section", "fields"),
    [
        ("incidents", ()),
        ("problems", ("after: 2", "within: 1d")),
        ("known_errors", ("workaround: restart",)),
        ("maintenance", ("start: 2026-11-28T00:00:00Z", "end: 2026-11-28T02:00:00Z")),
    ],
)
def test_rule_files_refuse_what_re2_refuses_with_file_and_line(
    section: str, fields: tuple[str, ...]
) -> None:
    lines = [f"{section}:", "  - name: w", *(f"    {f}" for f in fields)]
    lines.append(f"    match: '{BACKREFERENCE}'")
    assert findings("\n".join(lines) + "\n") == [
        f"{F}:{len(lines)}: {section}[0] (w).match: invalid matcher: {reason(BACKREFERENCE)}"
    ]


def test_rule_file_matchers_match_hostile_patterns_in_linear_time() -> None:
    text = f"""\
incidents:
  - {{name: r, match: '{HOSTILE}'}}
known_errors:
  - {{name: k, match: '{HOSTILE}', workaround: w}}
maintenance:
  - {{name: m, match: '{HOSTILE}', start: 2026-11-28T00:00:00Z, end: 2026-11-28T02:00:00Z}}
checks:
  - {{name: h, type: heartbeat, interval: 5m, match: '{HOSTILE}'}}
"""
    rules = parse_rule_sections(text, F)
    (rule,), (known,), (window,), (check,) = (
        rules.incidents,
        rules.known_errors,
        rules.maintenance,
        rules.checks,
    )
    for selectors in (rule.match, known.match, window.match):
        assert not any(s.matches(LONG) for s in selectors)
        assert any(s.matches({"service": "aab"}) for s in selectors)
    assert isinstance(check.probe, HeartbeatProbe)
    assert not any(s.matches(LONG) for s in check.probe.match)


def test_a_window_created_through_the_api_names_the_field() -> None:
    body = (
        '{"name": "w", "match": "{service=~\\"(?=x)\\"}", '
        '"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T02:00:00Z"}'
    )
    with pytest.raises(LoadError) as info:
        parse_window(body)
    (finding,) = info.value.findings
    assert finding.message == (
        "window (w).match: invalid matcher: position 10: invalid regex '(?=x)' for label "
        "'service': invalid perl operator: (?= (regexes are RE2 syntax)"
    )


def test_a_window_created_through_the_api_matches_in_linear_time() -> None:
    body = (
        '{"name": "w", "match": "{service=~\\"(a|a)+b\\"}", '
        '"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T02:00:00Z"}'
    )
    window = parse_window(body)
    assert not any(s.matches(LONG) for s in window.match)


def test_notification_routes_refuse_what_re2_refuses() -> None:
    text = f"""\
connectors:
  sinks:
    hook: {{type: webhook, url: "http://x"}}
routes:
  - {{name: a, to: hook, match: '{BACKREFERENCE}'}}
"""
    with pytest.raises(LoadError) as info:
        parse_config(text, "itsmd.yml", {})
    assert [str(p) for p in info.value.findings] == [
        f"itsmd.yml:5: routes[0].match: invalid matcher: {reason(BACKREFERENCE)}"
    ]


def test_heartbeat_checks_refuse_what_re2_refuses() -> None:
    text = (
        "checks:\n  - name: h\n    type: heartbeat\n    interval: 5m\n"
        '    match: \'{service="a", env=~"a*+"}\'\n'
    )
    (message,) = findings(text)
    assert message.startswith(f"{F}:5: checks[0] (h).match: invalid matcher: position ")
    assert message.endswith(
        "invalid regex 'a*+' for label 'env': bad repetition operator: *+ (regexes are RE2 syntax)"
    )


def test_http_check_body_regex_is_re2() -> None:
    text = "checks:\n  - name: c\n    type: http\n    url: http://a\n    body_regex: '(a|a)+b'\n"
    (check,) = parse_rule_sections(text, F).checks
    assert isinstance(check.probe, HttpProbe)
    regex = check.probe.body_regex
    assert regex is not None
    assert type(regex.engine).__module__ == "re2"
    assert regex.search("a" * 10_000) is False
    assert regex.search("x" + "a" * 10_000 + "b") is True
    # a reload of the same check sees no change
    assert parse_rule_sections(text, F).checks == (check,)


def test_http_check_body_regex_refuses_what_re2_refuses_with_file_and_line() -> None:
    text = "checks:\n  - name: c\n    type: http\n    url: http://a\n    body_regex: 'a(?=b)'\n"
    assert findings(text) == [
        f"{F}:5: checks[0] (c).body_regex: invalid regular expression: "
        "invalid perl operator: (?= (RE2 syntax)"
    ]
