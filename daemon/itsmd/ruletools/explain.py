"""`itsmd explain`: the decision path of one alert through a rule set, storing nothing.

It walks the incident rules in order, says for each rule before the match which
matcher failed, then lets the daemon's own correlation decide: the key, the incident
it would open or join, its title and priority, and why. It decides against an empty
store, or against the state a caller read from a store (`WorkingSet`); either way
nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from itsmd.correlation.correlate import Correlator, Router, WorkingSet
from itsmd.correlation.matchers import Selector
from itsmd.correlation.rules import IncidentRule, RuleSet
from itsmd.correlation.sla import SlaTargets
from itsmd.durations import format_duration
from itsmd.models import Alert, IngestAction, TimelineKind, format_incident_id

SHOW_MISSES = 20  # rules before the match listed one by one; more are only counted
# What an alert does to an incident the store holds.
_IN_STORED = {
    IngestAction.NEW: "would join",
    IngestAction.UPDATED: "would update its alert in",
    IngestAction.DUPLICATE: "a re-send: nothing changes in",
}


def explain(
    alert: Alert,
    rules: RuleSet,
    sla: SlaTargets,
    now: datetime,
    stored: WorkingSet | None = None,
    store: str | None = None,
) -> list[str]:
    """`stored`: what the store named `store` holds that the alert may touch (as the
    daemon's writer loads it); None: an empty store."""
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items()))
    lines = [
        f"alert {alert.labels.get('alertname', '?')} ({alert.status.value}, fingerprint "
        f"{alert.fingerprint})",
        f"  labels: {{{labels}}}",
    ]
    misses = 0
    matched: IncidentRule | None = None
    for rule in rules.incident_rules:
        if any(s.matches(alert.labels) for s in rule.match):
            matched = rule
            break
        misses += 1
        if misses <= SHOW_MISSES:
            lines.append(f"  rule {rule.name} ({_where(rule)}): no match: {_why_not(rule, alert)}")
    if misses > SHOW_MISSES:
        lines.append(f"  ... and {misses - SHOW_MISSES} more rules that do not match")
    if matched is None:
        lines.append("  no incident rule matches: the alert is stored and counted as unrouted")
        return lines
    lines.append(f"  rule {matched.name} ({_where(matched)}): matches {matched.match_text}")
    lines += _decision(alert, rules, sla, now, matched, stored, store)
    return lines


def _decision(
    alert: Alert,
    rules: RuleSet,
    sla: SlaTargets,
    now: datetime,
    rule: IncidentRule,
    stored: WorkingSet | None,
    store: str | None,
) -> list[str]:
    ws = stored if stored is not None else WorkingSet()
    outcome = Correlator(Router(rules), ws, sla).apply(alert, now)
    key, _ = rule.key_for(alert.labels)
    lines = [f"  key: {key}"]
    inc = ws.incidents.get(outcome.incident_id) if outcome.incident_id is not None else None
    if inc is None:
        row = ws.alerts.get(alert.identity)
        if row is None:  # a re-sent resolve of an alert the store has resolved already
            lines.append(f"  decision: {outcome.action}: the store holds it resolved already")
        else:
            lines.append(f"  decision: {row.decision.action}: {row.decision.reason}")
        return lines
    if inc.id is not None and inc.id > 0:  # an incident of the store
        lines.append(
            f"  {_IN_STORED.get(outcome.action, outcome.action)} {format_incident_id(inc.id)} "
            f"{inc.title!r} ({inc.status.value}, priority {inc.priority.value})"
        )
        lines += [f"  timeline: {entry.message}" for entry in ws.timeline]
        lines.append(f"  (read from the store at {store}; nothing was written)")
        return lines
    opened = next((e.message for e in ws.timeline if e.kind is TimelineKind.OPENED), "")
    policy = inc.policy
    hold = (
        "only humans resolve"
        if policy.auto_resolve is None
        else (f"auto-resolves {format_duration(policy.auto_resolve)} after its last alert resolves")
    )
    lines += [
        f"  would open: {inc.title!r}, {opened.split('; ', 1)[-1]}",
        f"  then takes alerts of this key while any fires and for "
        f"{format_duration(policy.window)} after; {hold}; "
        + (f"reopens within {format_duration(policy.reopen)}" if policy.reopen else "no reopen"),
    ]
    if inc.known_error is not None:
        known = rules.known_error(alert.labels)
        lines.append(f"  known error {known.name if known else '?'}: {inc.known_error!r}")
    lines.append(
        f"  (the store at {store} has no incident of this key that takes alerts now; "
        "nothing was written)"
        if stored is not None
        else "  (against an empty store: the daemon joins an open incident of this key if it "
        "has one; --db reads the store)"
    )
    return lines


def _where(rule: IncidentRule) -> str:
    return f"{rule.file}:{rule.line}" if rule.file else "rules"


def _why_not(rule: IncidentRule, alert: Alert) -> str:
    return " or ".join(_failing(s, alert.labels) for s in rule.match)


def _failing(selector: Selector, labels: Mapping[str, str]) -> str:
    for matcher in selector.matchers:
        if not matcher.matches(labels):
            value = labels.get(matcher.name)
            has = f'{matcher.name}="{value}"' if value is not None else f"no {matcher.name}"
            return f"{matcher} does not hold ({has})"
    return f"{selector} does not hold"
