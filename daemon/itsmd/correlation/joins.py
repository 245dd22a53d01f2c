"""Joins: the timeline entry of an alert's placement, which the alert row holds.

An alert placed in an incident (opened it, joined it, reopened it, attached to it
as a symptom) carries its decision: the incident, the action, the reason, the rule.
The timeline entry of the placement (`alert_joined`, or `symptom_attached`) says
the same in one line: "alert NAME (FINGERPRINT): REASON". So the common placement,
a new alert placed at its first receipt, is *implicit*: the store writes no
timeline row for it, and the reader derives the entry from the alert row, at the
alert's `first_received`.

Its place in the timeline is kept exactly: the alert row's `placed_after` is the
id of the timeline row written just before it (of any incident; timeline ids grow
in the order rows are written). Rows order by their id, an implicit entry right
after the row it names, and implicit entries after one row by alert id (alerts
get their ids in the order they are placed).

Every other placement keeps a row of its own, written when it is made: an alert
that fires again (`alert_refired`), one released by the end of a maintenance
window, one that moves to another incident, and every placement stored before
implicit ones existed. When an implicit placement is superseded (the alert fires
again, moves, is suppressed), its entry is written out as a row first, keeping its
place (`placed_after` on the row), and the alert row's `placed_after` is cleared:
a placement is never lost and never shown twice.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from itsmd.models import Action, StoredAlert, TimelineEntry, TimelineKind


def kind_of(action: Action) -> TimelineKind:
    """The timeline kind of a placement made at an alert's first receipt."""
    return TimelineKind.SYMPTOM_ATTACHED if action is Action.ATTACHED else TimelineKind.ALERT_JOINED


def entry_of(alert: StoredAlert, kind: TimelineKind, at: datetime) -> TimelineEntry:
    """The entry of the placement `alert` carries (its incident and decision):
    "alert NAME (FINGERPRINT): REASON", the fingerprint standing in for a missing name."""
    assert alert.incident_id is not None
    d = alert.decision
    name = alert.labels.get("alertname", alert.fingerprint)
    message = f"alert {name} ({alert.fingerprint}): {d.reason}"
    return TimelineEntry(alert.incident_id, at, kind, message, alert_id=alert.id, rule=d.rule)


def implicit_entry(alert: StoredAlert) -> TimelineEntry:
    """The entry of a placement made at the alert's first receipt."""
    return entry_of(alert, kind_of(alert.decision.action), alert.first_received)


def in_order(
    stored: Iterable[tuple[int, TimelineEntry]], alerts: Iterable[StoredAlert]
) -> list[TimelineEntry]:
    """One timeline from its rows, as (row id, entry), and the implicit placements of
    `alerts` (those with `placed_after`), each in its place."""
    keyed = [(_row_key(row_id, e), e) for row_id, e in stored]
    keyed += [
        ((a.placed_after, a.id or 0), implicit_entry(a))
        for a in alerts
        if a.placed_after is not None
    ]
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]


def _row_key(row_id: int, entry: TimelineEntry) -> tuple[int, int]:
    if entry.placed_after is not None:  # written out after the fact: where it was
        return (entry.placed_after, entry.alert_id or 0)
    return (row_id, 0)


def places(
    entries: Sequence[TimelineEntry | None],
    implicit: Iterable[int],
    row_ids: Sequence[int],
    before: int,
) -> dict[int, int]:
    """The `placed_after` of each implicit entry of a unit of work: `entries` in the
    order they were made, `implicit` the indexes of those no row holds, `row_ids` the
    ids of the other entries' rows in order, `before` an id below them all (every row
    of the store written before). Index in `entries` -> placed_after."""
    held = set(implicit)
    ids = iter(row_ids)
    last, found = before, {}
    for index in range(len(entries)):
        if index in held:
            found[index] = last
        else:
            last = next(ids)
    return found
