"""The post-incident review of one incident (pure; docs/reports.md).

A skeleton an incident commander fills in: the facts itsmd holds (impact window,
services and symptoms, the alerts in order with the labels that tell them apart,
every decision and human action of the timeline, the SLA outcome, problem and
known error) and empty sections for what only people know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from itsmd.correlation.sla import sla_state
from itsmd.durations import format_optional_time, format_time
from itsmd.models import SYSTEM_ACTOR, Incident, ProblemRecord, StoredAlert, TimelineEntry
from itsmd.views import incident_json, problem_json

SECTIONS = ("root_cause", "what_went_well", "what_did_not", "follow_ups")


def common_labels(label_sets: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The labels every alert carries with the same value."""
    if not label_sets:
        return {}
    first = dict(label_sets[0])
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in label_sets[1:])}


def impact_window(inc: Incident, alerts: Sequence[StoredAlert]) -> dict[str, Any]:
    """From the first alert's start to the last one's end (None while any fires);
    without alerts, the incident's own opening and resolution."""
    if alerts:
        start = min(a.starts_at for a in alerts)
        firing = any(a.status.value == "firing" or a.ends_at is None for a in alerts)
        end = None if firing else max(a.ends_at or a.starts_at for a in alerts)
    else:
        start, end = inc.opened_at, inc.resolved_at
    return {
        "from": format_time(start),
        "to": format_optional_time(end),
        "duration_s": None if end is None else (end - start).total_seconds(),
        "ongoing": end is None,
    }


def incident_review(
    inc: Incident,
    alerts: Sequence[StoredAlert],
    timeline: Sequence[TimelineEntry],
    problem: ProblemRecord | None,
    parent: Incident | None,
    symptoms: Sequence[Incident],
    now: datetime,
) -> dict[str, Any]:
    ordered = sorted(alerts, key=lambda a: (a.starts_at, a.id or 0))
    common = common_labels([a.labels for a in ordered])
    sla = sla_state(inc, now)
    services = sorted({s for s in [inc.service, *(i.service for i in symptoms)] if s})
    return {
        "incident": incident_json(inc, now),
        "impact": impact_window(inc, ordered),
        "services": services,
        "parent": None if parent is None else _brief(parent),
        "symptoms": [_brief(i) for i in symptoms],
        "common_labels": common,
        "alerts": [
            {
                "startsAt": format_time(a.starts_at),
                "endsAt": format_optional_time(a.ends_at),
                "status": a.status.value,
                "alertname": a.labels.get("alertname"),
                "fingerprint": a.fingerprint,
                "labels": {k: v for k, v in sorted(a.labels.items()) if k not in common},
                "summary": a.annotations.get("summary"),
                "generatorURL": a.generator_url,
                "action": a.decision.action.value,
                "reason": a.decision.reason,
            }
            for a in ordered
        ],
        "timeline": [
            {
                "at": format_time(e.at),
                "kind": e.kind.value,
                "actor": e.actor,
                "by_person": e.actor != SYSTEM_ACTOR,
                "message": e.message,
            }
            for e in timeline
        ],
        "sla": {
            "priority": inc.priority.value,
            "respond": {
                "due": format_optional_time(sla.respond_due),
                "at": format_optional_time(inc.responded_at),
                "verdict": None if sla.respond is None else sla.respond.value,
            },
            "resolve": {
                "due": format_optional_time(sla.resolve_due),
                "at": format_optional_time(inc.resolved_at),
                "verdict": None if sla.resolve is None else sla.resolve.value,
            },
        },
        "problem": None if problem is None else problem_json(problem),
        "known_error": inc.known_error,
        "sections": {name: [] if name == "follow_ups" else "" for name in SECTIONS},
    }


def _brief(i: Incident) -> dict[str, Any]:
    return {
        "id": i.ref,
        "title": i.title,
        "service": i.service,
        "priority": i.priority.value,
        "status": i.status.value,
    }
