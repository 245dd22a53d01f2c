"""Rule unit tests: alert series in virtual time through a rule set (`itsmd rules test`).

In the spirit of `promtool test rules`. A test file names rule files and holds
tests; each test gives alert series, one value per step, and the incidents
expected at given times. The series run through the same correlation code as the
daemon, on an in-memory store, with auto-resolve holds ending at their exact time.
The format is documented in docs/rules.md ("Testing rules").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.rules import RuleSet, load_rules
from itsmd.correlation.sla import SlaTargets
from itsmd.durations import format_duration
from itsmd.models import Action, Alert, AlertStatus, Incident, StoredAlert
from itsmd.ruletools.simulate import SimulatedProblem, Simulation
from itsmd.yamlsource import (
    Finding,
    Findings,
    LoadError,
    LocDict,
    check_keys,
    describe,
    each_mapping,
    expect_list,
    expect_mapping,
    get_duration,
    get_str,
    join,
    load_yaml,
)

T = TypeVar("T")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # virtual time 0; tests speak in offsets from it
PROBLEM_FIELDS: dict[str, Any] = {
    "key": lambda p: p.key,
    "rule": lambda p: p.rule,
    "title": lambda p: p.title,
    "status": lambda p: p.status,
    "incidents": lambda p: len(p.incidents),
}
FIRING, RESOLVED, NOTHING = "firing", "resolved", "_"
HELD = ("suppressed", "unrouted")
# What an expected incident may state, and how to read it off an incident.
FIELDS: dict[str, Any] = {
    "key": lambda i: i.key,
    "rule": lambda i: i.rule,
    "title": lambda i: i.title,
    "description": lambda i: i.description,
    "status": lambda i: i.status.value,
    "priority": lambda i: i.priority.value,
    "impact": lambda i: i.impact.value,
    "urgency": lambda i: i.urgency.value,
    "service": lambda i: i.service,
    "assignee": lambda i: i.assignee,
    "alerts": lambda i: i.alert_count,
    "firing": lambda i: i.firing_count,
    "known_error": lambda i: i.known_error,
}


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    values: tuple[str, ...]  # firing | resolved | _ per step


@dataclass(frozen=True)
class Expectation:
    at: timedelta
    incidents: tuple[Mapping[str, Any], ...] | None  # None: not checked
    line: int
    # Alerts stored without an incident, by decision: suppressed, unrouted (None: unchecked)
    held: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[Mapping[str, Any], ...] | None = None  # None: not checked


@dataclass(frozen=True)
class RuleTest:
    name: str
    line: int
    interval: timedelta
    series: tuple[Series, ...]
    expect: tuple[Expectation, ...]


@dataclass(frozen=True)
class TestFile:
    path: str
    rule_files: tuple[Path, ...]
    tests: tuple[RuleTest, ...]


@dataclass
class Result:
    test: RuleTest
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


# ---- reading a test file


def load_test_file(path: Path) -> TestFile:
    """Parse and validate; every problem is reported as `file:line: message`."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError([Finding(name, 0, f"cannot read test file: {exc.strerror}")]) from None
    findings = Findings(name)
    top = expect_mapping(findings, load_yaml(text, name), 1, "")
    if top is None:
        findings.raise_if_any()  # raises: expect_mapping reported it
        return TestFile(name, (), ())
    check_keys(findings, top, ("rule_files", "tests"), "")
    files = []
    listed = expect_list(findings, top.get("rule_files"), top.line_of("rule_files"), "rule_files")
    for index, item in enumerate(listed or []):
        if isinstance(item, str):
            files.append(path.parent / item)
        else:
            findings.error(
                listed.line_of(index) if listed else 0,
                join("rule_files", index),
                f"expected a file name, got {describe(item)}",
            )
    if "tests" not in top:
        findings.error(1, "", "needs tests: a list of tests")
    tests = each_mapping(findings, top, "tests", "", _test)
    findings.raise_if_any()
    return TestFile(name, tuple(files), tuple(tests))


def _test(findings: Findings, m: LocDict, path: str) -> RuleTest:
    check_keys(findings, m, ("name", "interval", "series", "expect"), path)
    name = get_str(findings, m, "name", path) or path
    interval = get_duration(findings, m, "interval", path, timedelta(minutes=1))
    if interval <= timedelta(0):
        findings.error(m.line_of("interval"), join(path, "interval"), "must be positive")
    series = each_mapping(findings, m, "series", path, _series)
    expect = each_mapping(findings, m, "expect", path, _expectation)
    return RuleTest(name, m.line_of("name"), interval, tuple(series), tuple(expect))


def _series(findings: Findings, m: LocDict, path: str) -> Series:
    check_keys(findings, m, ("labels", "annotations", "values"), path)
    labels = _string_map(findings, m, "labels", path)
    if "alertname" not in labels:
        findings.error(m.line_of("labels"), join(path, "labels"), "needs an alertname label")
    values = get_str(findings, m, "values", path) or ""
    try:
        steps = parse_values(values)
    except ValueError as exc:
        findings.error(m.line_of("values"), join(path, "values"), str(exc))
        steps = ()
    return Series(labels, _string_map(findings, m, "annotations", path), steps)


def parse_values(text: str) -> tuple[str, ...]:
    """`firing x3 resolved _ firing`: one value per step; `xN` repeats the previous
    value to N steps in all."""
    steps: list[str] = []
    for token in text.split():
        if token in (FIRING, RESOLVED, NOTHING):
            steps.append(token)
        elif token.startswith("x") and token[1:].isdigit() and steps and int(token[1:]) > 0:
            steps.extend([steps[-1]] * (int(token[1:]) - 1))
        else:
            raise ValueError(
                f"unknown value {token!r}: expected firing, resolved, _ (nothing sent) "
                "or xN after a value"
            )
    if not steps:
        raise ValueError("expected at least one value")
    return tuple(steps)


def _expectation(findings: Findings, m: LocDict, path: str) -> Expectation:
    check_keys(findings, m, ("at", "incidents", "problems", *HELD), path)
    held = {}
    for key in HELD:
        if key in m:
            if isinstance(m[key], int) and not isinstance(m[key], bool) and m[key] >= 0:
                held[key] = m[key]
            else:
                findings.error(
                    m.line_of(key), join(path, key), f"expected a count, got {describe(m[key])}"
                )
    if "at" not in m:
        findings.error(m.line, path, "needs at: the time to check, e.g. 5m")
    at = get_duration(findings, m, "at", path, timedelta(0))

    def checked(fields: Mapping[str, Any]) -> Any:
        def parse(p: Findings, entry: LocDict, where: str) -> dict[str, Any]:
            check_keys(p, entry, fields, where)
            return dict(entry)

        return parse

    expected = each_mapping(findings, m, "incidents", path, checked(FIELDS))
    expected_problems = each_mapping(findings, m, "problems", path, checked(PROBLEM_FIELDS))
    return Expectation(
        at,
        tuple(expected) if "incidents" in m else None,
        m.line,
        held,
        tuple(expected_problems) if "problems" in m else None,
    )


def _string_map(findings: Findings, m: LocDict, key: str, path: str) -> dict[str, str]:
    value = m.get(key, LocDict())
    mapping = expect_mapping(findings, value, m.line_of(key), join(path, key))
    out = {}
    for name, item in (mapping or {}).items():
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            out[str(name)] = str(item)
        else:
            findings.error(
                m.line_of(key),
                join(join(path, key), name),
                f"expected a string, got {describe(item)}",
            )
    return out


# ---- running


def run_test(test: RuleTest, rules: RuleSet, sla: SlaTargets | None = None) -> Result:
    """Play the test's series against `rules` and compare at every expectation."""
    simulation = Simulation(rules, sla)
    events = sorted(_events(test), key=lambda e: e[0])
    result = Result(test)
    for expectation in sorted(test.expect, key=lambda e: e.at):
        until = EPOCH + expectation.at
        while events and events[0][0] <= until:
            at, alert = events.pop(0)
            simulation.send(alert, at)
        simulation.advance(until)
        result.failures += compare(expectation, simulation.incidents())
        result.failures += compare_held(expectation, simulation.ws.alerts.values())
        result.failures += compare_problems(expectation, simulation.problems)
    return result


def _events(test: RuleTest) -> list[tuple[datetime, Alert]]:
    """What an Alertmanager would send for each series: every firing step re-sends
    the alert with the start of its episode; a resolved step resolves it."""
    out = []
    for series in test.series:
        fp = fingerprint(series.labels)
        started: datetime | None = None
        for step, value in enumerate(series.values):
            now = EPOCH + test.interval * step
            if value == NOTHING:
                continue
            if value == FIRING:
                started = started or now
                out.append((now, _alert(series, fp, AlertStatus.FIRING, started, None)))
            else:
                out.append((now, _alert(series, fp, AlertStatus.RESOLVED, started or now, now)))
                started = None
    return out


def _alert(
    series: Series, fp: str, status: AlertStatus, starts_at: datetime, ends_at: datetime | None
) -> Alert:
    return Alert(
        fingerprint=fp,
        status=status,
        labels=dict(series.labels),
        annotations=dict(series.annotations),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url="",
        source="test",
        raw={"startsAt": starts_at.isoformat()},
    )


def compare(expectation: Expectation, incidents: Sequence[Incident]) -> list[str]:
    """Readable differences between the expected and the actual incidents."""
    return _compare(expectation, "incident", expectation.incidents, incidents, FIELDS, _brief)


def compare_problems(expectation: Expectation, got: Sequence[SimulatedProblem]) -> list[str]:
    def brief(p: SimulatedProblem) -> str:
        return f"{p.key} {p.status} {len(p.incidents)} incidents {p.title!r}"

    return _compare(expectation, "problem", expectation.problems, got, PROBLEM_FIELDS, brief)


def _compare(
    expectation: Expectation,
    what: str,
    want: Sequence[Mapping[str, Any]] | None,
    got: Sequence[Any],
    fields: Mapping[str, Any],
    brief: Any,
) -> list[str]:
    """The counts must match; then each expected entry's fields, in order."""
    if want is None:
        return []
    at = f"at {format_duration(expectation.at)}"
    if len(want) != len(got):
        lines = [f"{at}: expected {len(want)} {what}s, got {len(got)}"]
        lines += [f"  - expected: {_brief_expected(w)}" for w in want]
        lines += [f"  + got:      {brief(item)}" for item in got]
        return ["\n".join(lines)]
    failures = []
    for number, (w, item) in enumerate(zip(want, got, strict=True), start=1):
        diffs = [
            f"    {name}: expected {w[name]!r}, got {fields[name](item)!r}"
            for name in w
            if str(fields[name](item)) != str(w[name])
        ]
        if diffs:
            failures.append(f"{at}: {what} {number} ({item.key}):\n" + "\n".join(diffs))
    return failures


def compare_held(expectation: Expectation, alerts: Iterable[StoredAlert]) -> list[str]:
    """Alerts stored without an incident: firing ones a window suppresses, and
    those no rule matched."""
    alerts = list(alerts)
    counts = {
        "suppressed": sum(
            1
            for a in alerts
            if a.decision.action is Action.SUPPRESSED and a.status is AlertStatus.FIRING
        ),
        "unrouted": sum(1 for a in alerts if a.decision.action is Action.UNROUTED),
    }
    at = f"at {format_duration(expectation.at)}"
    return [
        f"{at}: expected {want} {name} alerts, got {counts[name]}"
        for name, want in expectation.held.items()
        if counts[name] != want
    ]


def _brief(inc: Incident) -> str:
    return f"{inc.key} {inc.status.value} {inc.priority.value} {inc.title!r}"


def _brief_expected(want: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in want.items()) or "(any incident)"


def run_file(test_file: TestFile, sla: SlaTargets | None = None) -> list[Result]:
    rules = load_rules(list(test_file.rule_files))
    return [run_test(test, rules, sla) for test in test_file.tests]
