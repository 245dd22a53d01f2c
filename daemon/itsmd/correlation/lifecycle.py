"""Named incident state transitions, each returning the new state and a timeline entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from itsmd.durations import format_duration
from itsmd.models import Incident, IncidentStatus, TimelineEntry, TimelineKind

OPEN, ACKED, RESOLVED = IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED


class Conflict(Exception):
    """The action does not fit the incident's state (HTTP 409)."""


Transition = tuple[Incident, TimelineEntry]


def _entry(
    inc: Incident, at: datetime, kind: TimelineKind, message: str, actor: str
) -> TimelineEntry:
    assert inc.id is not None
    return TimelineEntry(inc.id, at, kind, message, actor=actor, rule=inc.rule)


def acknowledge(inc: Incident, actor: str, now: datetime) -> Transition:
    if inc.status is not OPEN:
        raise Conflict(f"{inc.ref} is {inc.status}; only an open incident can be acknowledged")
    new = replace(inc, status=ACKED, acknowledged_at=now)
    return new, _entry(inc, now, TimelineKind.ACKNOWLEDGED, f"acknowledged by {actor}", actor)


def resolve(inc: Incident, actor: str, now: datetime, note: str = "") -> Transition:
    if inc.status is RESOLVED:
        raise Conflict(f"{inc.ref} is already resolved")
    new = replace(inc, status=RESOLVED, resolved_at=now, auto_resolve_at=None)
    firing = f" while {inc.firing_count} alert(s) still fire" if inc.firing_count else ""
    message = f"resolved by {actor}{firing}" + (f": {note}" if note else "")
    return new, _entry(inc, now, TimelineKind.RESOLVED, message, actor)


def auto_resolve(inc: Incident, now: datetime) -> Transition:
    """Resolve at the end of the hold (or at once for a zero hold)."""
    hold = inc.policy.auto_resolve
    at = inc.auto_resolve_at or now
    new = replace(inc, status=RESOLVED, resolved_at=at, auto_resolve_at=None)
    held = format_duration(hold) if hold is not None else "0s"
    message = f"resolved automatically: all alerts resolved and none fired again for {held}"
    return new, _entry(inc, at, TimelineKind.AUTO_RESOLVED, message, "itsmd")


def reopen(inc: Incident, actor: str, now: datetime, why: str) -> Transition:
    if inc.status is not RESOLVED:
        raise Conflict(f"{inc.ref} is {inc.status}; only a resolved incident can be reopened")
    new = replace(inc, status=OPEN, resolved_at=None, acknowledged_at=None, auto_resolve_at=None)
    return new, _entry(inc, now, TimelineKind.REOPENED, f"reopened: {why}", actor)


def assign(inc: Incident, assignee: str, actor: str, now: datetime) -> Transition:
    if inc.status is RESOLVED:
        raise Conflict(f"{inc.ref} is resolved; reopen it before assigning it")
    before = inc.assignee or "nobody"
    new = replace(inc, assignee=assignee or None)
    message = f"assigned to {assignee or 'nobody'} (was {before}) by {actor}"
    return new, _entry(inc, now, TimelineKind.ASSIGNED, message, actor)


def comment(inc: Incident, text: str, actor: str, now: datetime) -> TimelineEntry:
    return _entry(inc, now, TimelineKind.COMMENTED, text, actor)


def close_to_alerts(inc: Incident, now: datetime, why: str) -> Transition:
    """The incident stops taking alerts of its key; a new incident will."""
    new = replace(inc, active=False)
    return new, _entry(inc, now, TimelineKind.CLOSED_TO_ALERTS, why, "itsmd")
