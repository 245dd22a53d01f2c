"""What a transaction did that may notify someone, noted on its connection.

The store's writers note events as they write the timeline; the outbox turns
the notes into rows before the same transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from itsmd.models import TimelineKind

# Timeline entries that are notification events.
EVENT_OF_KIND = {
    TimelineKind.OPENED.value: "opened",
    TimelineKind.REOPENED.value: "reopened",
    TimelineKind.ACKNOWLEDGED.value: "acknowledged",
    TimelineKind.RESOLVED.value: "resolved",
    TimelineKind.AUTO_RESOLVED.value: "resolved",
    TimelineKind.ASSIGNED.value: "assigned",
    TimelineKind.COMMENTED.value: "commented",
    TimelineKind.SLA_BREACHED.value: "sla_breached",
}
_NOTES = "itsmd.outbox_notes"


@dataclass(frozen=True, slots=True)
class Note:
    event: str
    at: datetime
    incident_id: int | None = None
    problem_id: int | None = None


def note_timeline(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Remember the notification events among timeline rows about to be inserted."""
    notes = [
        Note(EVENT_OF_KIND[r["kind"]], r["at"], incident_id=r["incident_id"])
        for r in rows
        if r["kind"] in EVENT_OF_KIND
    ]
    if notes:
        conn.info.setdefault(_NOTES, []).extend(notes)


def note_problem(conn: Connection, event: str, problem_id: int, at: datetime) -> None:
    conn.info.setdefault(_NOTES, []).append(Note(event, at, problem_id=problem_id))


def pop_notes(conn: Connection) -> list[Note]:
    notes: list[Note] = conn.info.pop(_NOTES, [])
    return notes
