"""`itsmd rules test`: alert series in virtual time, expected incidents, readable failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.ruletools.unittests import load_test_file, parse_values, run_file
from itsmd.yamlsource import LoadError
from tests.unit.test_shipped_files import SHIPPED_TESTS, copy_shipped_rules

ROOT = Path(__file__).resolve().parents[3]
RULES = """\
incidents:
  - name: outage
    match: '{severity="critical"}'
    group_by: [service]
    title: '{{ labels.service }} down'
    impact: high
    auto_resolve: 5m
"""


def _write(tmp_path: Path, tests: str, rules: str = RULES) -> Path:
    (tmp_path / "rules.yml").write_text(rules)
    path = tmp_path / "rules.test.yml"
    path.write_text("rule_files: [rules.yml]\ntests:\n" + tests)
    return path


def _run(path: Path) -> list[list[str]]:
    return [r.failures for r in run_file(load_test_file(path))]


def test_values_are_steps_and_xn_repeats_the_previous_one() -> None:
    assert parse_values("firing x3 _ resolved") == ("firing",) * 3 + ("_", "resolved")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "at least one value"), ("x3", "unknown value 'x3'"), ("up", "unknown value 'up'")],
)
def test_bad_values_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_values(text)


def test_a_passing_test_has_no_failures(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
  - name: outage
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: firing x3 resolved
    expect:
      - at: 1m
        incidents: [{key: 'outage{service="api"}', title: api down, priority: P1, firing: 1}]
      - at: 3m
        incidents: [{status: open, firing: 0}]
      - at: 8m
        incidents: [{status: resolved}]
""",
    )
    assert _run(path) == [[]]


def test_a_hold_ends_at_its_exact_time_between_steps(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
  - name: hold
    interval: 10m
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: resolved
      - labels: {alertname: Down, severity: critical, service: api, instance: b}
        values: firing resolved
    expect:
      - at: 14m59s
        incidents: [{status: open}]
      - at: 15m
        incidents: [{status: resolved}]
""",
    )
    assert _run(path) == [[]]


def test_a_wrong_field_names_the_incident_the_field_and_both_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
  - name: wrong
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: firing
    expect:
      - at: 0m
        incidents: [{priority: P2, title: api down}]
""",
    )
    assert _run(path) == [
        ["at 0s: incident 1 (outage{service=\"api\"}):\n    priority: expected 'P2', got 'P1'"]
    ]


def test_a_wrong_count_lists_what_was_expected_and_what_opened(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
  - name: count
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: firing
      - labels: {alertname: Down, severity: critical, service: db}
        values: firing
    expect:
      - at: 1m
        incidents: [{key: 'outage{service="api"}'}]
""",
    )
    (failure,) = _run(path)[0]
    assert failure.splitlines() == [
        "at 1m: expected 1 incidents, got 2",
        "  - expected: key='outage{service=\"api\"}'",
        "  + got:      outage{service=\"api\"} open P1 'api down'",
        "  + got:      outage{service=\"db\"} open P1 'db down'",
    ]


def test_mistakes_in_a_test_file_are_reported_with_their_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
  - name: typo
    serie: []
    expect:
      - incidents: [{priorty: P1}]
  - series:
      - labels: {severity: critical}
        values: firing maybe
""",
    )
    with pytest.raises(LoadError) as raised:
        load_test_file(path)
    assert [str(p).split(": ", 1)[1] for p in raised.value.findings] == [
        "tests[0].serie: unknown key (did you mean 'series'?)",
        "tests[0].expect[0]: needs at: the time to check, e.g. 5m",
        "tests[0].expect[0].incidents[0].priorty: unknown key (did you mean 'priority'?)",
        "tests[1].series[0].labels: needs an alertname label",
        "tests[1].series[0].values: unknown value 'maybe': expected firing, resolved, "
        "_ (nothing sent) or xN after a value",
    ]
    assert [p.line for p in raised.value.findings] == [4, 6, 6, 8, 9]


def test_the_shipped_rules_pass_their_tests() -> None:
    """make test runs these: a change to the shipped rules that breaks what they promise
    fails. (Tests an SRE adds beside them in rules/tests/ are theirs to run.)"""
    for path in (ROOT / "rules" / name for name in SHIPPED_TESTS):
        assert _run(path) == [[]] * len(load_test_file(path).tests), path


def test_the_shipped_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    copy_shipped_rules(tmp_path)
    services = tmp_path / "10-services.yml"
    services.write_text(services.read_text().replace("reopen: 1h", "reopen: 0s"))
    test_file = tmp_path / "tests" / "shipped.test.yml"

    failures = [f for failures in _run(test_file) for f in failures]

    assert failures
    assert failures[0].startswith("at 12m: ")


def test_the_command_exits_1_and_shows_the_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        """\
  - name: wrong priority
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: firing
    expect:
      - at: 0m
        incidents: [{priority: P2}]
""",
    )
    assert main(["rules", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  wrong priority ({path}:3)" in out
    assert "1 tests, 0 passed, 1 failed" in out
    assert main(["rules", "test", str(ROOT / "rules" / "tests" / "shipped.test.yml")]) == 0


def test_suppressed_and_unrouted_alerts_are_counted(tmp_path: Path) -> None:
    rules = RULES + (
        "maintenance:\n"
        "  - name: night\n"
        "    match: '{service=\"db\"}'\n"
        "    start: 2026-01-01T00:00:00Z\n"  # virtual time starts here
        "    end: 2026-01-01T00:05:00Z\n"
    )
    path = _write(
        tmp_path,
        """\
  - name: held back
    series:
      - labels: {alertname: Down, severity: critical, service: db}
        values: firing x8
      - labels: {alertname: Info, severity: info}
        values: firing
    expect:
      - at: 4m
        incidents: []
        suppressed: 1
        unrouted: 1
      - at: 5m
        incidents: [{key: 'outage{service="db"}'}]
        suppressed: 0
      - at: 6m
        suppressed: 1
""",
        rules,
    )

    assert _run(path) == [["at 6m: expected 1 suppressed alerts, got 0"]]


def test_problems_open_as_the_store_would_open_them(tmp_path: Path) -> None:
    rules = RULES.replace("auto_resolve: 5m", "auto_resolve: 0s") + (
        "problems:\n"
        "  - name: flapping\n"
        "    match: '{severity=\"critical\"}'\n"
        "    group_by: [service]\n"
        "    after: 3\n"
        "    within: 1h\n"
        "    title: '{{ labels.service }} keeps failing'\n"
    )
    path = _write(
        tmp_path,
        """\
  - name: flapping api
    interval: 10m
    series:
      - labels: {alertname: Down, severity: critical, service: api}
        values: firing resolved firing resolved firing resolved firing
    expect:
      - at: 30m
        problems: []
      - at: 40m
        problems: [{key: 'flapping{service="api"}', title: api keeps failing, incidents: 3}]
      - at: 60m
        problems: [{incidents: 4, status: open}]
        incidents: [{status: resolved}, {status: resolved}, {status: resolved}, {status: open}]
""",
        rules,
    )

    assert _run(path) == [[]]
