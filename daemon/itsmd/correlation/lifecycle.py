"""Named incident state transitions: each returns the new state, its timeline entry
and the event the metrics count, if any."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from itsmd.durations import format_duration
from itsmd.models import (
    Event,
    EventKind,
    Incident,
    IncidentStatus,
    ResolvedBy,
    TimelineEntry,
    TimelineKind,
)

OPEN, ACKED, RESOLVED = IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED


class Conflict(Exception):
    """The action does not fit the incident's state (HTTP 409)."""


class Transition(NamedTuple):
    incident: Incident
    entry: TimelineEntry
    events: tuple[Event, ...] = ()


def _entry(
    inc: Incident, at: datetime, kind: TimelineKind, message: str, actor: str
) -> TimelineEntry:
    assert inc.id is not None
    return TimelineEntry(inc.id, at, kind, message, actor=actor, rule=inc.rule)


def acknowledge(inc: Incident, actor: str, now: datetime, note: str = "") -> Transition:
    if inc.status is not OPEN:
        raise Conflict(f"{inc.ref} is {inc.status}; only an open incident can be acknowledged")
    new = replace(inc, status=ACKED, acknowledged_at=now)
    message = f"acknowledged by {actor}" + (f": {note}" if note else "")
    return _responded(new, _entry(inc, now, TimelineKind.ACKNOWLEDGED, message, actor), now)


def resolve(inc: Incident, actor: str, now: datetime, note: str = "") -> Transition:
    if inc.status is RESOLVED:
        raise Conflict(f"{inc.ref} is already resolved")
    new = replace(inc, status=RESOLVED, resolved_at=now, auto_resolve_at=None)
    firing = f" while {inc.firing_count} alert(s) still fire" if inc.firing_count else ""
    message = f"resolved by {actor}{firing}" + (f": {note}" if note else "")
    event = Event(EventKind.RESOLVED, inc.id, resolved_by=ResolvedBy.MANUAL, after_s=_age(inc, now))
    responded = _responded(new, _entry(inc, now, TimelineKind.RESOLVED, message, actor), now)
    return responded._replace(events=(*responded.events, event))


def auto_resolve(inc: Incident, now: datetime) -> Transition:
    """Resolve at the end of the hold (or at once for a zero hold)."""
    hold = inc.policy.auto_resolve
    at = inc.auto_resolve_at or now
    new = replace(inc, status=RESOLVED, resolved_at=at, auto_resolve_at=None)
    held = format_duration(hold) if hold is not None else "0s"
    message = f"resolved automatically: all alerts resolved and none fired again for {held}"
    event = Event(EventKind.RESOLVED, inc.id, resolved_by=ResolvedBy.AUTO, after_s=_age(inc, now))
    return Transition(new, _entry(inc, at, TimelineKind.AUTO_RESOLVED, message, "itsmd"), (event,))


def reopen(inc: Incident, actor: str, now: datetime, why: str) -> Transition:
    if inc.status is not RESOLVED:
        raise Conflict(f"{inc.ref} is {inc.status}; only a resolved incident can be reopened")
    new = replace(inc, status=OPEN, resolved_at=None, acknowledged_at=None, auto_resolve_at=None)
    # Counted by the correlator when an alert reopens it (incidents_reopened), not here.
    return Transition(new, _entry(inc, now, TimelineKind.REOPENED, f"reopened: {why}", actor))


def assign(inc: Incident, assignee: str, actor: str, now: datetime, note: str = "") -> Transition:
    if inc.status is RESOLVED:
        raise Conflict(f"{inc.ref} is resolved; reopen it before assigning it")
    before = inc.assignee or "nobody"
    new = replace(inc, assignee=assignee or None)
    message = f"assigned to {assignee or 'nobody'} (was {before}) by {actor}"
    message += f": {note}" if note else ""
    return _responded(new, _entry(inc, now, TimelineKind.ASSIGNED, message, actor), now)


def comment(inc: Incident, text: str, actor: str, now: datetime) -> Transition:
    entry = _entry(inc, now, TimelineKind.COMMENTED, text, actor)
    if inc.status is RESOLVED:  # a note on a finished incident answers no SLA target
        return Transition(inc, entry)
    return _responded(inc, entry, now)


def _responded(new: Incident, entry: TimelineEntry, now: datetime) -> Transition:
    """A person acted on the unresolved incident: the first such act is its response
    (it meets the SLA respond target, and counts in MTTA)."""
    if new.responded_at is not None:
        return Transition(new, entry)
    event = Event(EventKind.RESPONDED, new.id, after_s=_age(new, now))
    return Transition(replace(new, responded_at=now), entry, (event,))


def close_to_alerts(inc: Incident, now: datetime, why: str) -> Transition:
    """The incident stops taking alerts of its key; a new incident will."""
    new = replace(inc, active=False)
    return Transition(new, _entry(inc, now, TimelineKind.CLOSED_TO_ALERTS, why, "itsmd"))


def _age(inc: Incident, now: datetime) -> float:
    return (now - inc.opened_at).total_seconds()
