"""Rule files: parse and validate (with line numbers) into an immutable RuleSet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from itsmd.checks.spec import CheckSpec, parse_check
from itsmd.correlation.matchers import MatcherError, Selector, parse_selectors
from itsmd.correlation.routing import SelectorIndex
from itsmd.correlation.templates import Template, compile_template, template_context
from itsmd.durations import parse_duration, parse_time
from itsmd.models import Level, Policy, Priority
from itsmd.yamlsource import (
    Finding,
    Findings,
    LoadError,
    LocDict,
    LocList,
    check_keys,
    convert,
    each_mapping,
    expect_mapping,
    get_bool,
    get_str,
    get_str_list,
    join,
    load_yaml,
)

SECTIONS = ("incidents", "problems", "known_errors", "services", "maintenance", "checks")
PROBLEM_KEYS = ("name", "match", "group_by", "after", "within", "title")
SERVICE_KEYS = ("name", "depends_on", "tier", "slo")
TIER_IMPACT = {1: "high", 2: "medium", 3: "low"}
KNOWN_ERROR_KEYS = ("name", "match", "workaround")
MAINTENANCE_KEYS = (
    "name",
    "match",
    "start",
    "end",
    "every",
    "duration",
    "timezone",
    "action",
    "change",
)

INCIDENT_KEYS = (
    "name",
    "match",
    "group_by",
    "window",
    "title",
    "description",
    "impact",
    "urgency",
    "priority",
    "assignee",
    "auto_resolve",
    "reopen",
    "attach_to_upstream",
)

DEFAULT_WINDOW = timedelta(minutes=15)
DEFAULT_AUTO_RESOLVE = timedelta(minutes=5)
DEFAULT_REOPEN = timedelta(0)
DEFAULT_TITLE = (
    "{{ labels.alertname or rule }}{% if group %} ({{ group.values() | join(', ') }}){% endif %}"
)
DEFAULT_DESCRIPTION = "{{ annotations.summary or annotations.description or '' }}"
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class IncidentRule:
    name: str
    match: tuple[Selector, ...]
    group_by: tuple[str, ...]
    policy: Policy
    title: Template
    description: Template
    impact: Level | Template  # a template must render to high|medium|low
    urgency: Level | Template | None  # None: auto, from the severity label
    priority: Priority | None  # None: auto, from the ITIL matrix
    assignee: Template | None
    file: str = ""
    line: int = 0
    attach_to_upstream: bool = False
    impact_set: bool = True  # False: `impact` was not given (a service tier may set it)
    # The selectors as written back, for the reason of every alert it takes.
    match_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "match_text", " or ".join(str(s) for s in self.match))

    @property
    def urgency_follows_severity(self) -> bool:
        """Whether a more severe alert joining raises its incidents' priority."""
        return self.urgency is None and self.priority is None

    def key_for(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The correlation key: rule name plus the group_by label values."""
        group = {name: labels.get(name, "") for name in self.group_by}
        inner = ", ".join(f"{name}={_quote(value)}" for name, value in group.items())
        return f"{self.name}{{{inner}}}", group


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Which rule an alert matched and the key it correlates on."""

    rule: IncidentRule
    key: str
    group: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class KnownError:
    """A known error: incidents whose alerts match get its workaround attached."""

    name: str
    match: tuple[Selector, ...]
    workaround: Template
    file: str = ""
    line: int = 0


class WindowAction(StrEnum):
    SUPPRESS = "suppress"  # store the alert, open nothing
    ANNOTATE = "annotate"  # correlate as usual, mark the incident


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A change window: one-off (`start`..`end`) or recurring (cron `every` + `duration`
    in `timezone`). Alerts matching it while it is on are suppressed or annotated."""

    name: str
    match: tuple[Selector, ...]
    action: WindowAction = WindowAction.SUPPRESS
    start: datetime | None = None
    end: datetime | None = None
    every: str | None = None
    duration: timedelta = timedelta(0)
    timezone: str = "UTC"
    change: str | None = None
    file: str = ""
    line: int = 0
    comment: str | None = None  # why, as its creator said (windows of the API)
    created_by: str | None = None  # who created it through the API
    _cron: CronTrigger | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cron = None
        if self.every is not None:
            cron = CronTrigger.from_crontab(self.every, timezone=ZoneInfo(self.timezone))
        object.__setattr__(self, "_cron", cron)

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The start and end of the occurrence `now` falls in, if any (end excluded).
        A recurring window with an `end` (one ended early) has no occurrence after it."""
        if self._cron is None:
            assert self.start is not None
            assert self.end is not None
            return (self.start, self.end) if self.start <= now < self.end else None
        if self.end is not None and now >= self.end:
            return None
        # The first start at or after now - duration is the only one whose span can hold now.
        start = self._cron.get_next_fire_time(None, now - self.duration)
        if start is None or not start <= now < start + self.duration:
            return None
        until = start + self.duration
        if self.end is not None:
            until = min(until, self.end)
        return start.astimezone(UTC), until.astimezone(UTC)

    def ended(self, now: datetime) -> bool:
        """Over for good: a one-off window past its end, or one ended early."""
        return self.end is not None and self.end <= now

    def describe(self) -> str:
        return describe_window(self.name, self.action, self.change)


def describe_window(name: str, action: WindowAction, change: str | None) -> str:
    change_text = f", change {change}" if change else ""
    return f"maintenance window {name} ({action}{change_text})"


@dataclass(frozen=True, slots=True)
class ProblemRule:
    """Recurrence: `after` incidents of one key within `within` open one problem."""

    name: str
    match: tuple[Selector, ...]
    group_by: tuple[str, ...]
    after: int
    within: timedelta
    title: Template
    file: str = ""
    line: int = 0

    def key_for(self, labels: Mapping[str, str]) -> str:
        inner = ", ".join(f"{n}={_quote(labels.get(n, ''))}" for n in self.group_by)
        return f"{self.name}{{{inner}}}"

    def title_for(self, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
        """The problem's title from the alert that opened the incident that opened it."""
        group = {name: labels.get(name, "") for name in self.group_by}
        context = template_context(labels, annotations, self.name, self.key_for(labels), group)
        title, error = self.title.render(context)
        return self.name if error is not None else title

    def recurs(self, opened: int) -> bool:
        """Whether this many unlinked incidents of one key within the span open a problem."""
        return opened >= self.after


@dataclass(frozen=True, slots=True)
class Service:
    """A service of the catalog: what it depends on, and how much it matters."""

    name: str
    depends_on: tuple[str, ...] = ()
    tier: int | None = None  # 1 high, 2 medium, 3 low default impact
    slo: float | None = None  # availability objective, percent
    file: str = ""
    line: int = 0


ROUTES_REMEMBERED = 10_000
ROUTE_LABELS_MAX = 1_000  # characters of the values read, for an answer to be kept


@dataclass(frozen=True, slots=True)
class RuleSet:
    incident_rules: tuple[IncidentRule, ...] = ()
    files: tuple[str, ...] = ()
    known_errors: tuple[KnownError, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    services: tuple[Service, ...] = ()
    problem_rules: tuple[ProblemRule, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    _index: SelectorIndex[IncidentRule] = field(init=False, repr=False, compare=False)
    _problems: SelectorIndex[ProblemRule] = field(init=False, repr=False, compare=False)
    _known: SelectorIndex[KnownError] = field(init=False, repr=False, compare=False)
    _services: dict[str, Service] = field(init=False, repr=False, compare=False)
    _upstream: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # Every label an incident rule's selectors or group_by read: alerts alike in these
    # route alike, so a storm of one group routes once (`route`).
    _routed_by: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _routes: dict[tuple[str | None, ...], RuleMatch | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = SelectorIndex([(rule, rule.match) for rule in self.incident_rules])
        object.__setattr__(self, "_index", index)
        read = {m.name for rule in self.incident_rules for sel in rule.match for m in sel.matchers}
        read.update(name for rule in self.incident_rules for name in rule.group_by)
        object.__setattr__(self, "_routed_by", tuple(sorted(read)))
        object.__setattr__(self, "_routes", {})
        known = SelectorIndex([(k, k.match) for k in self.known_errors])
        object.__setattr__(self, "_known", known)
        object.__setattr__(self, "_services", {svc.name: svc for svc in self.services})
        # Walked once here, not for every alert of an attach_to_upstream rule.
        upstream = {svc.name: _upstream_of(svc.name, self._services) for svc in self.services}
        object.__setattr__(self, "_upstream", upstream)
        problems = SelectorIndex([(p, p.match) for p in self.problem_rules])
        object.__setattr__(self, "_problems", problems)

    def problem_rule_of(self, key: str | None) -> ProblemRule | None:
        """The rule a recurrence key (`name{labels}`) was made by, if it is still there."""
        if key is None:
            return None
        name = key.split("{", 1)[0]
        return next((p for p in self.problem_rules if p.name == name), None)

    def problem_rule(self, labels: Mapping[str, str]) -> ProblemRule | None:
        """The first problem rule (in file order) that matches."""
        return self._problems.first(labels)

    def service(self, name: str) -> Service | None:
        return self._services.get(name)

    def upstream(self, name: str) -> list[str]:
        """Every service `name` depends on, directly or not, nearest first."""
        return list(self._upstream.get(name, ()))

    def known_error(self, labels: Mapping[str, str]) -> KnownError | None:
        """The first known error (in file order) that matches."""
        return self._known.first(labels)

    def window(
        self, labels: Mapping[str, str], now: datetime, action: WindowAction
    ) -> tuple[MaintenanceWindow, datetime, datetime] | None:
        """The first window (in file order) of `action` that is on now and matches."""
        for window in self.maintenance:
            if window.action is action and any(s.matches(labels) for s in window.match):
                span = window.occurrence(now)
                if span is not None:
                    return window, *span
        return None

    def route(self, labels: Mapping[str, str]) -> RuleMatch | None:
        """First matching incident rule wins (found through the index, not a scan).
        The answer depends only on the labels the rules read, and is remembered by
        their values (a missing label and an empty one may be remembered apart)."""
        read = tuple(map(labels.get, self._routed_by))
        try:
            return self._routes[read]
        except KeyError:
            pass
        rule = self._index.first(labels)
        found = None if rule is None else RuleMatch(rule, *rule.key_for(labels))
        if sum(len(value) for value in read if value) > ROUTE_LABELS_MAX:
            return found  # not kept: long values would make the memory they hold large
        if len(self._routes) >= ROUTES_REMEMBERED:
            self._routes.clear()  # a bound, rarely reached: one entry per group of alerts
        self._routes[read] = found
        return found

    def rule(self, name: str) -> IncidentRule | None:
        return next((r for r in self.incident_rules if r.name == name), None)

    def __len__(self) -> int:
        return len(self.incident_rules)


def _upstream_of(name: str, by_name: Mapping[str, Service]) -> tuple[str, ...]:
    """Breadth first through depends_on, so the nearest services come first."""
    seen: list[str] = []
    queue = list(by_name[name].depends_on) if name in by_name else []
    while queue:
        current = queue.pop(0)
        if current not in seen and current != name:
            seen.append(current)
            queue.extend(by_name[current].depends_on if current in by_name else ())
    return tuple(seen)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def rule_files(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """A directory means all its *.yml and *.yaml files in name order, hidden ones
    (`.name`: an editor's lock or swap file, `.#10-a.yaml`) left out."""
    paths: list[Path] = []
    for item in [spec] if isinstance(spec, str | Path) else spec:
        path = Path(item)
        if path.is_dir():
            paths.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in (".yml", ".yaml") and not p.name.startswith(".")
                )
            )
        else:
            paths.append(path)
    return paths


def load_rules(paths: Sequence[Path]) -> RuleSet:
    """Load and validate every file; raise one LoadError with all findings."""
    rules: list[IncidentRule] = []
    known: list[KnownError] = []
    windows: list[MaintenanceWindow] = []
    services: list[Service] = []
    problem_rules: list[ProblemRule] = []
    checks: list[CheckSpec] = []
    findings: list[Finding] = []
    first_seen: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            findings.append(Finding(str(path), 0, f"cannot read rule file: {exc.strerror}"))
            continue
        try:
            parsed = parse_rule_sections(text, str(path))
        except LoadError as exc:
            findings.extend(exc.findings)
            continue
        named: list[tuple[str, Named]] = [
            *(("incidents", r) for r in parsed.incidents),
            *(("known_errors", k) for k in parsed.known_errors),
            *(("maintenance", w) for w in parsed.maintenance),
            *(("services", svc) for svc in parsed.services),
            *(("problems", p) for p in parsed.problems),
            *(("checks", c) for c in parsed.checks),
        ]
        for section, item in named:
            here = f"{item.file}:{item.line}"
            seen = first_seen.setdefault((section, item.name), here)
            if seen != here:
                what = "rule name" if section == "incidents" else "name"
                message = f"{section}: {what} {item.name!r} already used at {seen}"
                findings.append(Finding(item.file, item.line, message))
        rules.extend(parsed.incidents)
        known.extend(parsed.known_errors)
        windows.extend(parsed.maintenance)
        services.extend(parsed.services)
        problem_rules.extend(parsed.problems)
        checks.extend(parsed.checks)
    findings += _check_catalog(services, rules)
    if findings:
        raise LoadError(findings)
    return RuleSet(
        tuple(rules),
        tuple(str(p) for p in paths),
        tuple(known),
        tuple(windows),
        tuple(services),
        tuple(problem_rules),
        tuple(checks),
    )


def _check_catalog(services: list[Service], rules: list[IncidentRule]) -> list[Finding]:
    """Dependencies name known services and never go round in a circle."""
    findings = []
    by_name = {svc.name: svc for svc in services}
    for svc in services:
        for dep in svc.depends_on:
            if dep not in by_name:
                message = f"services: {svc.name}: depends on unknown service {dep!r}"
                findings.append(Finding(svc.file, svc.line, message))
    reported: set[frozenset[str]] = set()
    for svc in services:
        cycle = _cycle_from(svc.name, by_name)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            message = f"services: dependency cycle: {' -> '.join(cycle)}"
            findings.append(Finding(svc.file, svc.line, message))
    if not services:
        for rule in rules:
            if rule.attach_to_upstream:
                findings.append(
                    Finding(
                        rule.file,
                        rule.line,
                        (
                            f"incidents: rule {rule.name}: attach_to_upstream needs a "
                            "services: catalog with depends_on"
                        ),
                    )
                )
    return findings


def _cycle_from(start: str, by_name: Mapping[str, Service]) -> list[str] | None:
    """A path start -> ... -> start through depends_on, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        current, path = stack.pop()
        for dep in by_name[current].depends_on if current in by_name else ():
            if dep == start:
                return [*path, start]
            if dep not in visited:
                visited.add(dep)
                stack.append((dep, [*path, dep]))
    return None


Named = IncidentRule | KnownError | MaintenanceWindow | Service | ProblemRule | CheckSpec


@dataclass(frozen=True, slots=True)
class RuleFile:
    """What one rule file defines, section by section."""

    incidents: tuple[IncidentRule, ...] = ()
    known_errors: tuple[KnownError, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    services: tuple[Service, ...] = ()
    problems: tuple[ProblemRule, ...] = ()
    checks: tuple[CheckSpec, ...] = ()

    def rule_set(self, filename: str) -> RuleSet:
        return RuleSet(
            self.incidents,
            (filename,),
            self.known_errors,
            self.maintenance,
            self.services,
            self.problems,
            self.checks,
        )


def parse_rule_file(text: str, filename: str) -> list[IncidentRule]:
    return list(parse_rule_sections(text, filename).incidents)


def parse_rule_sections(text: str, filename: str) -> RuleFile:
    findings = Findings(filename)
    document = load_yaml(text, filename)
    if document is None:
        return RuleFile()
    top = expect_mapping(findings, document, getattr(document, "line", 1), "")
    if top is None:
        findings.raise_if_any()
        return RuleFile()
    check_keys(findings, top, SECTIONS, "")
    rules = each_mapping(
        findings,
        top,
        "incidents",
        "",
        lambda p, m, path: _parse_incident_rule(p, m, path, filename),
    )
    known = each_mapping(
        findings,
        top,
        "known_errors",
        "",
        lambda p, m, path: _parse_known_error(p, m, path, filename),
    )
    windows = each_mapping(
        findings, top, "maintenance", "", lambda p, m, path: _parse_window(p, m, path, filename)
    )
    services = each_mapping(
        findings, top, "services", "", lambda p, m, path: _parse_service(p, m, path, filename)
    )
    problem_rules = each_mapping(
        findings, top, "problems", "", lambda p, m, path: _parse_problem(p, m, path, filename)
    )
    checks = each_mapping(
        findings, top, "checks", "", lambda p, m, path: parse_check(p, m, path, filename)
    )
    findings.raise_if_any()
    return RuleFile(
        tuple(rules),
        tuple(known),
        tuple(windows),
        tuple(services),
        tuple(problem_rules),
        tuple(checks),
    )


def _parse_problem(findings: Findings, m: LocDict, path: str, filename: str) -> ProblemRule | None:
    before = len(findings.errors)
    name, path, match = _head(findings, m, path, "problem rule", PROBLEM_KEYS)
    after = m.get("after", 3)
    if isinstance(after, bool) or not isinstance(after, int) or after < 1:
        findings.error(
            m.line_of("after"),
            join(path, "after"),
            f"expected a count of incidents (1 or more), got {after!r}",
        )
        after = 3
    within = _duration(findings, m, "within", path, timedelta(days=7))
    if within <= timedelta(0):
        findings.error(m.line_of("within"), join(path, "within"), "must be positive, e.g. 7d")
    title = _template(findings, m, "title", path, "{{ rule }} keeps recurring")
    if len(findings.errors) != before:
        return None
    return ProblemRule(
        name or "",
        match,
        tuple(get_str_list(findings, m, "group_by", path)),
        after,
        within,
        title,
        filename,
        m.line,
    )


def _parse_service(findings: Findings, m: LocDict, path: str, filename: str) -> Service | None:
    before = len(findings.errors)
    name, path = _named(findings, m, path, "service", SERVICE_KEYS)
    tier = m.get("tier")
    if tier is not None and tier not in TIER_IMPACT:
        findings.error(m.line_of("tier"), join(path, "tier"), f"expected 1, 2 or 3, got {tier!r}")
    slo = m.get("slo")
    if slo is not None and (
        isinstance(slo, bool) or not isinstance(slo, int | float) or not 0 < slo <= 100
    ):
        findings.error(
            m.line_of("slo"), join(path, "slo"), f"expected a percentage like 99.9, got {slo!r}"
        )
    depends_on = tuple(get_str_list(findings, m, "depends_on", path))
    if len(findings.errors) != before:
        return None
    return Service(
        name or "", depends_on, tier, None if slo is None else float(slo), filename, m.line
    )


def _parse_window(
    findings: Findings, m: LocDict, path: str, filename: str
) -> MaintenanceWindow | None:
    before = len(findings.errors)
    name, path, match = _head(findings, m, path, "maintenance window", MAINTENANCE_KEYS)
    action = convert(findings, m, "action", path, WindowAction.SUPPRESS, _window_action)
    timezone = get_str(findings, m, "timezone", path) or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        findings.error(
            m.line_of("timezone"),
            join(path, "timezone"),
            f"unknown time zone {timezone!r} (e.g. Europe/Berlin)",
        )
        timezone = "UTC"
    told = len(findings.errors)
    start = convert(findings, m, "start", path, None, parse_time)
    end = convert(findings, m, "end", path, None, parse_time)
    told_times = len(findings.errors) != told  # a start or end given but wrong
    every = get_str(findings, m, "every", path)
    duration = _duration(findings, m, "duration", path, timedelta(0))
    if every is not None:
        if "start" in m or "end" in m:
            findings.error(m.line, path, "give either start and end, or every and duration")
        if duration <= timedelta(0):
            findings.error(
                m.line_of("duration"),
                join(path, "duration"),
                "a recurring window needs a positive duration, e.g. 2h",
            )
        try:
            CronTrigger.from_crontab(every)
        except ValueError as exc:
            cron = "minute hour day month weekday"
            findings.error(
                m.line_of("every"), join(path, "every"), f"invalid cron expression ({cron}): {exc}"
            )
            every = None
    elif start is None or end is None:
        if not told_times or "start" not in m or "end" not in m:
            findings.error(
                m.line, path, "needs start and end (RFC 3339), or every (cron) and duration"
            )
    elif end <= start:
        findings.error(m.line_of("end"), join(path, "end"), "must be after start")
    if len(findings.errors) != before:
        return None
    return MaintenanceWindow(
        name=name or "",
        match=match,
        action=action,
        start=start,
        end=end,
        every=every,
        duration=duration,
        timezone=timezone,
        change=get_str(findings, m, "change", path),
        file=filename,
        line=m.line,
    )


API_WINDOWS = "api"  # the `file` of windows created through the API
MAX_COMMENT = 4000  # characters of a window's comment


def parse_window(text: str) -> MaintenanceWindow:
    """One window given as JSON (or YAML) by the API, checked as in a rule file."""
    findings = Findings("request body")
    m = expect_mapping(findings, load_yaml(text, "request body"), 1, "")
    comment = None
    if m is not None and "comment" in m:  # the API's own key; rule files use YAML comments
        comment = get_str(findings, m, "comment", "window")
        if comment is not None and len(comment) > MAX_COMMENT:
            findings.error(
                m.line_of("comment"),
                "window.comment",
                f"at most {MAX_COMMENT} characters, got {len(comment)}",
            )
        del m["comment"]
    window = _parse_window(findings, m, "window", API_WINDOWS) if m is not None else None
    findings.raise_if_any()
    assert window is not None
    return replace(window, comment=(comment or "").strip() or None)


def _window_action(text: str) -> WindowAction:
    try:
        return WindowAction(text)
    except ValueError:
        raise ValueError(f"expected suppress or annotate, got {text!r}") from None


def _named(
    findings: Findings, m: LocDict, path: str, what: str, keys: Sequence[str]
) -> tuple[str | None, str]:
    """The item's name, also put in its path for the messages that follow, and only
    known keys."""
    name = get_str(findings, m, "name", path)
    if not name:
        findings.error(m.line, path, f"every {what} needs a name")
    else:
        path = f"{path} ({name})"
    check_keys(findings, m, keys, path)
    return name, path


def _head(
    findings: Findings, m: LocDict, path: str, what: str, keys: Sequence[str]
) -> tuple[str | None, str, tuple[Selector, ...]]:
    """What every named, matching item has: a name, only known keys, and a match."""
    name, path = _named(findings, m, path, what, keys)
    if "match" not in m:
        findings.error(m.line, path, "missing 'match' (use '{}' to match every alert)")
        return name, path, ()
    return name, path, _match(findings, m, path)


def _parse_known_error(
    findings: Findings, m: LocDict, path: str, filename: str
) -> KnownError | None:
    before = len(findings.errors)
    name, path, match = _head(findings, m, path, "known error", KNOWN_ERROR_KEYS)
    if "workaround" not in m:
        findings.error(m.line, path, "missing 'workaround'")
    workaround = _template(findings, m, "workaround", path, None) if "workaround" in m else None
    if workaround is None or len(findings.errors) != before:
        return None
    return KnownError(name or "", match, workaround, filename, m.line)


def _parse_incident_rule(
    findings: Findings, m: LocDict, path: str, filename: str
) -> IncidentRule | None:
    before = len(findings.errors)
    name, path, match = _head(findings, m, path, "rule", INCIDENT_KEYS)
    for key in ("title", "description", "impact", "urgency", "assignee"):
        if key in m and m[key] is None:  # an empty value is a mistake, not the default
            findings.error(m.line_of(key), join(path, key), "expected a string, got nothing (null)")
    auto_resolve = m.get("auto_resolve", DEFAULT_AUTO_RESOLVE)
    policy = Policy(
        window=_duration(findings, m, "window", path, DEFAULT_WINDOW),
        auto_resolve=None
        if auto_resolve == "never"
        else _duration(findings, m, "auto_resolve", path, DEFAULT_AUTO_RESOLVE),
        reopen=_duration(findings, m, "reopen", path, DEFAULT_REOPEN),
    )
    rule = IncidentRule(
        name=name or "",
        match=match,
        group_by=tuple(get_str_list(findings, m, "group_by", path)),
        policy=policy,
        title=_template(findings, m, "title", path, DEFAULT_TITLE),
        description=_template(findings, m, "description", path, DEFAULT_DESCRIPTION),
        impact=_level(findings, m, "impact", path, allow_auto=False) or Level.MEDIUM,
        urgency=_level(findings, m, "urgency", path, allow_auto=True),
        priority=convert(findings, m, "priority", path, None, _priority),
        assignee=_template(findings, m, "assignee", path, None) if "assignee" in m else None,
        file=filename,
        line=m.line,
        attach_to_upstream=get_bool(findings, m, "attach_to_upstream", path, False),
        impact_set="impact" in m,
    )
    return rule if len(findings.errors) == before else None


def _match(findings: Findings, m: LocDict, path: str) -> tuple[Selector, ...]:
    """A selector string, or a list of them meaning any of them."""
    value = m["match"]
    items = value if isinstance(value, LocList) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        findings.error(
            m.line_of("match"),
            join(path, "match"),
            "expected a selector like '{severity=\"critical\"}' or a list of them",
        )
        return ()
    try:
        return parse_selectors(list(items) if isinstance(value, LocList) else value)
    except MatcherError as exc:
        findings.error(m.line_of("match"), join(path, "match"), f"invalid matcher: {exc}")
        return ()


def _duration(findings: Findings, m: LocDict, key: str, path: str, default: timedelta) -> timedelta:
    return convert(findings, m, key, path, default, parse_duration)


def _priority(text: str) -> Priority | None:
    if text == AUTO:
        return None
    try:
        return Priority(text.upper())
    except ValueError:
        raise ValueError(f"expected auto or one of P1..P5, got {text!r}") from None


def _template(findings: Findings, m: LocDict, key: str, path: str, default: str | None) -> Any:
    source = get_str(findings, m, key, path) if key in m else default
    if source is None:
        return None
    try:
        return compile_template(source)
    except ValueError as exc:
        findings.error(m.line_of(key), join(path, key), str(exc))
        return compile_template("")


def _level(
    findings: Findings, m: LocDict, key: str, path: str, *, allow_auto: bool
) -> Level | Template | None:
    text = get_str(findings, m, key, path)
    if text is None or (allow_auto and text == AUTO):
        return None
    if "{" in text:
        return _template(findings, m, key, path, None)  # type: ignore[no-any-return]
    try:
        return Level(text)
    except ValueError:
        choices = "high, medium, low" + (", auto" if allow_auto else "")
        findings.error(
            m.line_of(key),
            join(path, key),
            f"expected one of {choices} or a template, got {text!r}",
        )
        return None
