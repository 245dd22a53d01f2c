"""The service review's figures from the facts of two periods (pure; docs/reports.md).

Every figure stands beside the previous period's: `{"value", "previous", "change"}`,
`change` being `value - previous` (for shares, in points of the ratio), or None
when either is unknown. Medians are the middle value (the mean of the two middle
ones for an even count); p90 is the nearest-rank percentile: the smallest value
with at least 90 % of the values at or below it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from itsmd.checks.availability import Uptime, error_budget_left
from itsmd.correlation.sla import Verdict
from itsmd.durations import format_duration
from itsmd.models import Priority
from itsmd.reports.periods import Period, week_name, weeks

NO_SERVICE = None  # incidents of no service are reported under `"service": null`
NOISY_SHOWN = 10  # the noisiest alertnames listed
REOPEN_SHARE = 0.25  # a rule whose incidents reopen more often than this: a suggestion
PRIORITIES = [p.value for p in Priority]
RESPOND_VERDICTS = [v.value for v in Verdict]
RESOLVE_VERDICTS = [v.value for v in Verdict if v is not Verdict.NOT_NEEDED]


@dataclass(slots=True)
class IncidentFact:
    """What the review needs of one incident opened in a period. Not frozen: a review
    of a year makes 100,000 of them, and a frozen one takes seven times as long to make
    (treat it as read-only all the same)."""

    id: int
    service: str | None
    rule: str
    priority: str
    opened_at: datetime
    ack_s: float | None  # to the first response of a person while unresolved (MTTA)
    fix_s: float | None  # to its resolution (MTTR); None while unresolved
    respond: Verdict | None  # None: no respond target
    resolve: Verdict | None
    reopened: bool = False  # reopened at least once
    auto_resolved: bool = False  # its last resolution was the auto_resolve hold's
    problem_id: int | None = None
    alert_count: int = 0  # its alerts, whenever they started


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """Alerts that started in a period, counted per rule (None: unrouted) and alertname."""

    rule: str | None
    alertname: str | None
    count: int


@dataclass(frozen=True, slots=True)
class ProblemFact:
    """A problem with incidents opened in the period, per service."""

    id: int
    title: str
    status: str  # open | known_error | resolved
    service: str | None
    incidents: int  # of the service, opened in the period


@dataclass(frozen=True, slots=True)
class PeriodFacts:
    period: Period
    incidents: Sequence[IncidentFact] = ()
    alerts: Sequence[AlertGroup] = ()
    availability: Mapping[str, Uptime] = field(default_factory=dict)  # per service
    problems: Sequence[ProblemFact] = ()


@dataclass(frozen=True, slots=True)
class RuleInfo:
    name: str
    auto_resolve: timedelta | None


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the rules in force say: services and their objectives, incident rules, and
    the capacity forecasts of the checks' last runs (each with its `service`)."""

    slos: Mapping[str, float | None]
    rules: Sequence[RuleInfo]
    capacity: Sequence[Mapping[str, Any]] = ()


class Suggestion(StrEnum):
    RULE_NEVER_MATCHED = "rule_never_matched"
    RULE_REOPENS = "rule_reopens"
    BELOW_SLO = "below_slo"
    PROBLEM_WITHOUT_KNOWN_ERROR = "problem_without_known_error"


# ---- statistics


def median(values: Sequence[float]) -> float | None:
    """The middle value; for an even count the mean of the two middle ones."""
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the value at rank ceil(p/100 * n) of the sorted values."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s) - 1e-9))
    return s[rank - 1]


def share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def figure(value: float | None, previous: float | None) -> dict[str, float | None]:
    change = None if value is None or previous is None else value - previous
    return {"value": value, "previous": previous, "change": change}


# ---- the review


def review(
    now_facts: PeriodFacts,
    before: PeriodFacts,
    catalog: Catalog,
    service: str | None,
    generated_at: datetime,
) -> dict[str, Any]:
    """The review document (docs/reports.md, "The service review")."""
    services = _services(now_facts, before, catalog, service)
    rules = _rules(now_facts, before, catalog, filtered=service is not None)
    doc: dict[str, Any] = {
        "period": now_facts.period.json(),
        "previous_period": before.period.json(),
        "service": service,
        "generated_at": generated_at.isoformat().replace("+00:00", "Z"),
        "percentile": "nearest-rank",
        "totals": _totals(now_facts, before),
        "services": services,
        "rules": rules,
        "unmatched_rules": [r["rule"] for r in rules if r["matched"] is False],
        "noisy_alertnames": _noisy(now_facts.alerts, before.alerts),
        "weeks": _weeks(now_facts),
    }
    doc["suggestions"] = suggestions(doc, catalog)
    return doc


def _times(incidents: Iterable[IncidentFact], attr: str) -> list[float]:
    return [v for i in incidents if (v := getattr(i, attr)) is not None]


def _timing(now: Sequence[IncidentFact], before: Sequence[IncidentFact], attr: str) -> Any:
    a, b = _times(now, attr), _times(before, attr)
    return {
        "median": figure(median(a), median(b)),
        "p90": figure(percentile(a, 90), percentile(b, 90)),
        "count": figure(len(a), len(b)),
    }


def _totals(now: PeriodFacts, before: PeriodFacts) -> dict[str, Any]:
    alerts = sum(g.count for g in now.alerts)
    alerts_before = sum(g.count for g in before.alerts)
    return {
        "incidents": figure(len(now.incidents), len(before.incidents)),
        "alerts": figure(alerts, alerts_before),
        "alerts_per_incident": figure(_compression(now.incidents), _compression(before.incidents)),
        "mtta_s": _timing(now.incidents, before.incidents, "ack_s"),
        "mttr_s": _timing(now.incidents, before.incidents, "fix_s"),
    }


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def _compression(incidents: Sequence[IncidentFact]) -> float | None:
    """Alerts per incident opened: each incident's own alerts, whenever they started.
    The period's alerts over its incidents would mix two sets (an alert that started
    before the period, then opened or reopened an incident in it, reads as 0)."""
    return _ratio(sum(i.alert_count for i in incidents), len(incidents))


def _by_service(facts: PeriodFacts) -> dict[str | None, list[IncidentFact]]:
    out: dict[str | None, list[IncidentFact]] = defaultdict(list)
    for inc in facts.incidents:
        out[inc.service].append(inc)
    return out


def _services(
    now: PeriodFacts, before: PeriodFacts, catalog: Catalog, only: str | None
) -> list[dict[str, Any]]:
    a, b = _by_service(now), _by_service(before)
    names: set[str | None] = {*a, *b, *catalog.slos, *now.availability}
    if only is not None:
        names = {only}
    ordered = sorted(names, key=lambda n: (n is None, n or ""))
    return [_service(n, a.get(n, []), b.get(n, []), now, before, catalog) for n in ordered]


def _service(
    name: str | None,
    now: Sequence[IncidentFact],
    before: Sequence[IncidentFact],
    facts: PeriodFacts,
    facts_before: PeriodFacts,
    catalog: Catalog,
) -> dict[str, Any]:
    slo = catalog.slos.get(name) if name is not None else None
    counts, counts_before = Counter(i.priority for i in now), Counter(i.priority for i in before)
    return {
        "service": name,
        "slo": slo,
        "incidents": figure(len(now), len(before)),
        "by_priority": {p: figure(counts[p], counts_before[p]) for p in PRIORITIES},
        "mtta_s": _timing(now, before, "ack_s"),
        "mttr_s": _timing(now, before, "fix_s"),
        "sla": _sla(now, before),
        "availability": _availability(
            facts.availability.get(name) if name else None,
            facts_before.availability.get(name) if name else None,
            slo,
        ),
        "problems": [
            {
                "id": f"PRB-{p.id}",
                "title": p.title,
                "status": p.status,
                "incidents": p.incidents,
                "known_error": p.status == "known_error",
            }
            for p in sorted(facts.problems, key=lambda p: (-p.incidents, p.id))
            if p.service == name
        ],
        "capacity": [
            {k: v for k, v in c.items() if k != "samples"}
            for c in catalog.capacity
            if c.get("service") == name and c.get("exhausts_at")
        ],
    }


def _sla(now: Sequence[IncidentFact], before: Sequence[IncidentFact]) -> dict[str, Any]:
    """Per priority that had incidents in either period: targets per verdict."""
    a_by, b_by = _by_priority(now), _by_priority(before)
    out: dict[str, Any] = {}
    for p in PRIORITIES:
        a, b = a_by.get(p, []), b_by.get(p, [])
        if not a and not b:
            continue
        respond = _verdicts(a, "respond"), _verdicts(b, "respond")
        resolve = _verdicts(a, "resolve"), _verdicts(b, "resolve")
        out[p] = {
            "respond": {v: figure(respond[0][v], respond[1][v]) for v in RESPOND_VERDICTS},
            "resolve": {v: figure(resolve[0][v], resolve[1][v]) for v in RESOLVE_VERDICTS},
        }
    return out


def _verdicts(items: Iterable[IncidentFact], kind: str) -> Counter[str | None]:
    return Counter(getattr(i, kind) for i in items)


def _by_priority(items: Iterable[IncidentFact]) -> dict[str, list[IncidentFact]]:
    out: dict[str, list[IncidentFact]] = defaultdict(list)
    for inc in items:
        out[inc.priority].append(inc)
    return out


def availability_figures(u: Uptime | None, slo: float | None) -> dict[str, float | None]:
    """Availability over a period: the ratio (up over up and down), the share of the
    period measured, the error budget used (1 - error_budget_left: above 1 is overspent)."""
    if u is None:
        return {"ratio": None, "coverage": None, "error_budget_used": None, "downtime_s": None}
    left = error_budget_left(u, slo)
    return {
        "ratio": u.ratio,
        "coverage": u.coverage,
        "error_budget_used": None if left is None else 1.0 - left,
        "downtime_s": u.down_s,
    }


def _availability(now: Uptime | None, before: Uptime | None, slo: float | None) -> dict[str, Any]:
    a, b = availability_figures(now, slo), availability_figures(before, slo)
    ratio = a["ratio"]
    meets = None if ratio is None or slo is None else ratio * 100 >= slo
    return {
        "slo": slo,
        "meets_slo": meets,
        **{key: figure(a[key], b[key]) for key in a},
    }


def _rules(
    now: PeriodFacts, before: PeriodFacts, catalog: Catalog, filtered: bool
) -> list[dict[str, Any]]:
    def alerts_of(facts: PeriodFacts) -> Counter[str]:
        counts: Counter[str] = Counter()
        for g in facts.alerts:
            if g.rule is not None:
                counts[g.rule] += g.count
        return counts

    def incidents_of(facts: PeriodFacts) -> dict[str, list[IncidentFact]]:
        out: dict[str, list[IncidentFact]] = defaultdict(list)
        for inc in facts.incidents:
            out[inc.rule].append(inc)
        return out

    alerts_a, alerts_b = alerts_of(now), alerts_of(before)
    inc_a, inc_b = incidents_of(now), incidents_of(before)
    configured = [r.name for r in catalog.rules]
    names = configured + sorted({*alerts_a, *inc_a, *alerts_b, *inc_b} - set(configured))
    out = []
    for name in names:
        a, b = inc_a.get(name, []), inc_b.get(name, [])
        if filtered and not a and not b:
            continue
        matched = alerts_a.get(name, 0) > 0 or bool(a)
        out.append(
            {
                "rule": name,
                "in_rules": name in configured,
                "matched": None if filtered else matched,
                "alerts": figure(alerts_a.get(name, 0), alerts_b.get(name, 0)),
                "incidents": figure(len(a), len(b)),
                "alerts_per_incident": figure(_compression(a), _compression(b)),
                "auto_resolved": figure(
                    share(sum(i.auto_resolved for i in a), len(a)),
                    share(sum(i.auto_resolved for i in b), len(b)),
                ),
                "reopened": figure(
                    share(sum(i.reopened for i in a), len(a)),
                    share(sum(i.reopened for i in b), len(b)),
                ),
            }
        )
    return out


def _noisy(now: Sequence[AlertGroup], before: Sequence[AlertGroup]) -> list[dict[str, Any]]:
    def by_name(groups: Sequence[AlertGroup]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for g in groups:
            counts[g.alertname or ""] += g.count
        return counts

    a, b = by_name(now), by_name(before)
    total = sum(a.values())
    top = sorted(a.items(), key=lambda item: (-item[1], item[0]))[:NOISY_SHOWN]
    return [
        {
            "alertname": name or None,
            "alerts": figure(count, b.get(name, 0)),
            "share": share(count, total),
        }
        for name, count in top
    ]


def _weeks(facts: PeriodFacts) -> list[dict[str, Any]]:
    """Per local week (Monday to Monday, cut at the period's ends): incidents per
    priority and the MTTA and MTTR medians of the incidents opened in it."""
    spans = weeks(facts.period)
    starts = [w.start for w in spans]
    buckets: list[list[IncidentFact]] = [[] for _ in spans]
    for inc in facts.incidents:
        index = bisect_right(starts, inc.opened_at) - 1
        if index >= 0 and spans[index].holds(inc.opened_at):
            buckets[index].append(inc)
    return [
        {
            "week": week_name(w),
            **{k: v for k, v in w.json().items() if k in ("from", "to", "days")},
            "incidents": len(items),
            "by_priority": {p: counts[p] for p in PRIORITIES},
            "mtta_median_s": median(_times(items, "ack_s")),
            "mttr_median_s": median(_times(items, "fix_s")),
        }
        for w, items in zip(spans, buckets, strict=True)
        for counts in [Counter(i.priority for i in items)]
    ]


# ---- suggestions


def suggestions(doc: Mapping[str, Any], catalog: Catalog) -> list[dict[str, Any]]:
    """What the figures support doing: each with its kind, its subject and a sentence."""
    holds = {r.name: r.auto_resolve for r in catalog.rules}
    out: list[dict[str, Any]] = []
    for name in doc["unmatched_rules"]:
        if name in holds:
            out.append(
                {
                    "kind": Suggestion.RULE_NEVER_MATCHED.value,
                    "subject": name,
                    "text": f"Rule {name} matched no alert in the period: remove it, "
                    "or check its matchers.",
                }
            )
    for rule in doc["rules"]:
        reopened = rule["reopened"]["value"]
        if reopened is not None and reopened > REOPEN_SHARE:
            hold = holds.get(rule["rule"])
            said = "never" if hold is None else format_duration(hold)
            out.append(
                {
                    "kind": Suggestion.RULE_REOPENS.value,
                    "subject": rule["rule"],
                    "text": f"Incidents of rule {rule['rule']} reopened {reopened:.0%} of the "
                    f"time: its auto_resolve hold ({said}) is likely too short.",
                }
            )
    for svc in doc["services"]:
        avail = svc["availability"]
        if avail["meets_slo"] is False:
            ratio = avail["ratio"]["value"]
            out.append(
                {
                    "kind": Suggestion.BELOW_SLO.value,
                    "subject": svc["service"],
                    "text": f"Service {svc['service']} was available {ratio:.3%}, below its "
                    f"objective of {svc['slo']:g} %.",
                }
            )
        for p in svc["problems"]:
            if p["status"] == "open":
                out.append(
                    {
                        "kind": Suggestion.PROBLEM_WITHOUT_KNOWN_ERROR.value,
                        "subject": p["id"],
                        "text": f"Problem {p['id']} ({p['title']}) recurred in "
                        f"{p['incidents']} incident{'s' if p['incidents'] != 1 else ''} "
                        "and has no known error: find its root cause or record a workaround.",
                    }
                )
    return out
