"""Joins: the timeline entry of an alert's placement, which the alert row holds.

An alert placed in an incident (opened it, joined it, reopened it, attached to it
as a symptom) carries its decision: the incident, the action, the reason, the rule.
The timeline entry of the placement (`alert_joined`, or `symptom_attached`) says
the same in one line: "alert NAME (FINGERPRINT): REASON". So the common placement,
a new alert placed at its first receipt, is *implicit*: the store writes no
timeline row for it, and the reader derives the entry from the alert row, at the
alert's `first_received`.

Every other placement keeps a row of its own, written when it is made: an alert
that fires again (`alert_refired`), one released by the end of a maintenance
window, one that moves to another incident, and every placement stored before
implicit joins existed. When an implicit placement is superseded (the alert fires
again, moves, is suppressed), its entry is written out as a row first, with its
own moment: a placement is never lost and never shown twice. The invariant that
makes both hold: an alert's current placement is implicit exactly when its
incident's timeline has no placement row (`PLACEMENT_KINDS`) naming the alert.

The order of a timeline: by time; entries of one moment in the order they were
written, except placements (`alert_joined` and `symptom_attached`, derived or
stored), which are placed by `in_order`: after what made room for them (the
incident's opening, reopening, maintenance note, cancelled hold) and the entries
of the alerts stored before theirs, before what they caused (a raised priority, a
known error) and the entries of alerts stored after theirs.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from itsmd.models import Action, StoredAlert, TimelineEntry, TimelineKind

# The decisions that place an alert in an incident.
PLACED = frozenset({Action.OPENED, Action.JOINED, Action.REOPENED, Action.ATTACHED})
# Timeline rows that record a placement of the alert they name.
PLACEMENT_KINDS = frozenset(
    {TimelineKind.ALERT_JOINED, TimelineKind.SYMPTOM_ATTACHED, TimelineKind.ALERT_REFIRED}
)
# The placements `in_order` places (a refire keeps the order it was written in).
_ORDERED = frozenset({TimelineKind.ALERT_JOINED, TimelineKind.SYMPTOM_ATTACHED})
# Entries naming no alert that come before the placements of their moment.
_BEFORE_PLACEMENTS = frozenset(
    {
        TimelineKind.OPENED,
        TimelineKind.REOPENED,
        TimelineKind.MAINTENANCE,
        TimelineKind.HOLD_CANCELLED,
    }
)


def kind_of(action: Action) -> TimelineKind:
    """The timeline kind of a placement made at an alert's first receipt."""
    return TimelineKind.SYMPTOM_ATTACHED if action is Action.ATTACHED else TimelineKind.ALERT_JOINED


def placement(
    incident_id: int,
    alert_id: int | None,
    alertname: str | None,
    fingerprint: str,
    reason: str,
    rule: str | None,
    kind: TimelineKind,
    at: datetime,
) -> TimelineEntry:
    """The timeline entry of a placement; `alertname` None: the alert has none."""
    name = fingerprint if alertname is None else alertname
    message = f"alert {name} ({fingerprint}): {reason}"
    return TimelineEntry(incident_id, at, kind, message, alert_id=alert_id, rule=rule)


def entry_of(alert: StoredAlert, kind: TimelineKind, at: datetime) -> TimelineEntry:
    """The entry of the placement `alert` carries (its incident and decision)."""
    assert alert.incident_id is not None
    d = alert.decision
    name = alert.labels.get("alertname")
    return placement(
        alert.incident_id, alert.id, name, alert.fingerprint, d.reason, d.rule, kind, at
    )


def implicit_entry(alert: StoredAlert) -> TimelineEntry:
    """The entry of a placement made at the alert's first receipt."""
    return entry_of(alert, kind_of(alert.decision.action), alert.first_received)


def in_order(
    stored: Sequence[TimelineEntry], implicit: Iterable[TimelineEntry]
) -> list[TimelineEntry]:
    """One timeline from its stored entries (in time order, written order at one
    moment) and its implicit placements; see the module's docstring."""
    rest = [e for e in stored if e.kind not in _ORDERED or e.alert_id is None]
    placements = [e for e in stored if e.kind in _ORDERED and e.alert_id is not None]
    placements.extend(implicit)
    placements.sort(key=lambda e: (e.at, e.alert_id or 0))  # stable: written order kept
    merged: list[TimelineEntry] = []
    waiting = iter(placements)
    pending = next(waiting, None)
    for entry in rest:
        while pending is not None and _precedes(pending, entry):
            merged.append(pending)
            pending = next(waiting, None)
        merged.append(entry)
    if pending is not None:
        merged.append(pending)
        merged.extend(waiting)
    return merged


def _precedes(join: TimelineEntry, entry: TimelineEntry) -> bool:
    if join.at != entry.at:
        return join.at < entry.at
    if entry.alert_id is not None:
        return entry.alert_id >= (join.alert_id or 0)
    return entry.kind not in _BEFORE_PLACEMENTS
