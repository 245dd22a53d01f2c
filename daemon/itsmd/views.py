"""Domain objects as the JSON documents of the API (docs/api.md, "Incident JSON")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from itsmd.correlation.sla import Verdict, sla_state
from itsmd.durations import format_optional_time, format_time
from itsmd.models import Incident, ProblemRecord, StoredAlert, TimelineEntry, format_incident_id


def incident_json(inc: Incident, now: datetime) -> dict[str, Any]:
    sla = sla_state(inc, now)
    return {
        "id": inc.ref,
        "status": inc.status.value,
        "title": inc.title,
        "description": inc.description,
        "priority": inc.priority.value,
        "impact": inc.impact.value,
        "urgency": inc.urgency.value,
        "service": inc.service,
        "rule": inc.rule,
        "key": inc.key,
        "assignee": inc.assignee,
        "opened_at": format_time(inc.opened_at),
        "acknowledged_at": format_optional_time(inc.acknowledged_at),
        "responded_at": format_optional_time(inc.responded_at),
        "resolved_at": format_optional_time(inc.resolved_at),
        "alert_count": inc.alert_count,
        "firing_count": inc.firing_count,
        "takes_alerts": inc.active and inc.status.value != "resolved",
        "auto_resolve_at": format_optional_time(inc.auto_resolve_at),
        "problem_id": None if inc.problem_id is None else f"PRB-{inc.problem_id}",
        "parent_id": None if inc.parent_id is None else format_incident_id(inc.parent_id),
        "sla": {
            "respond_due": format_optional_time(sla.respond_due),
            "resolve_due": format_optional_time(sla.resolve_due),
            "breached": sla.breached,
            "respond_breached": sla.respond is Verdict.BREACHED,
            "resolve_breached": sla.resolve is Verdict.BREACHED,
            "respond": None if sla.respond is None else sla.respond.value,
            "resolve": None if sla.resolve is None else sla.resolve.value,
        },
        "labels": dict(inc.labels),
        "known_error": inc.known_error,
    }


def alert_json(alert: StoredAlert) -> dict[str, Any]:
    d = alert.decision
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": format_time(alert.starts_at),
        "endsAt": format_optional_time(alert.ends_at),
        "generatorURL": alert.generator_url,
        "source": alert.source,
        "first_received": format_time(alert.first_received),
        "last_received": format_time(alert.last_received),
        "receive_count": alert.receive_count,
        "decision": {"rule": d.rule, "key": d.key, "action": d.action.value, "reason": d.reason},
    }


def found_alert_json(alert: StoredAlert, state: str) -> dict[str, Any]:
    """An alert as the alert search shows it: with its incident and its state
    (docs/api.md, Searching alerts)."""
    incident = alert.incident_id
    return {
        **alert_json(alert),
        "incident_id": None if incident is None else format_incident_id(incident),
        "state": state,
    }


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "at": format_time(entry.at),
        "kind": entry.kind.value,
        "message": entry.message,
        "actor": entry.actor,
        "rule": entry.rule,
    }


def incident_detail_json(
    inc: Incident,
    alerts: Sequence[StoredAlert],
    timeline: Sequence[TimelineEntry],
    now: datetime,
) -> dict[str, Any]:
    return {
        **incident_json(inc, now),
        "alerts": [alert_json(a) for a in alerts],
        "timeline": [timeline_json(e) for e in timeline],
    }


def problem_json(p: ProblemRecord) -> dict[str, Any]:
    return {
        "id": p.ref,
        "status": p.status.value,
        "title": p.title,
        "rule": p.rule,
        "key": p.key,
        "opened_at": format_time(p.opened_at),
        "resolved_at": format_optional_time(p.resolved_at),
        "root_cause": p.root_cause,
        "root_cause_by": p.root_cause_by,
        "workaround": p.workaround,
        "workaround_by": p.workaround_by,
        "resolved_by": p.resolved_by,
        "incident_count": p.incident_count,
    }
