"""The SLA clock in the store: find targets that passed unmet and mark each once.

A target is missed when its due time passed before a person responded to the
incident (respond; an incident that resolved first needed no response) or before
it resolved (resolve). The primary key of
`sla_breaches` keeps every mark unique, across replicas too; the timeline entry
written with it is what notifies the routes that ask for `sla_breached`.

Only news is announced: a target already met late by the time it is marked (the
incident was acknowledged or resolved in between), or one that passed long ago
(the daemon was stopped, or has just been upgraded to keep SLA clocks), is
recorded on the timeline without a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, insert, or_, select
from sqlalchemy.exc import IntegrityError

from itsmd.correlation.sla import Clocked, SlaTargets, due_times
from itsmd.durations import format_duration, format_time
from itsmd.models import Incident, TimelineEntry, TimelineKind
from itsmd.store import repo
from itsmd.store.tables import incidents, sla_breaches

# Targets further back than this are not looked at again (they were, when due).
LOOK_BACK = timedelta(days=30)
# A target that passed longer ago than this is recorded without a notification.
ANNOUNCE_WITHIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Breach:
    incident: Incident
    kind: str  # respond | resolve
    due_at: datetime

    def is_news(self, now: datetime) -> bool:
        """Whether the target is still unmet and passed recently: worth a notification."""
        inc = self.incident
        met_late = inc.resolved_at is not None or (
            self.kind == "respond" and inc.responded_at is not None
        )
        return not met_late and self.due_at > now - ANNOUNCE_WITHIN


def _missed(kind: str, now: datetime) -> list[ColumnElement[bool]]:
    due = incidents.c.respond_due if kind == "respond" else incidents.c.resolve_due
    unmet_by = [incidents.c.resolved_at]
    if kind == "respond":
        unmet_by.append(incidents.c.responded_at)
    marked = (
        select(sla_breaches.c.incident_id)
        .where(sla_breaches.c.incident_id == incidents.c.id, sla_breaches.c.kind == kind)
        .exists()
    )
    return [
        due <= now,
        due > now - LOOK_BACK,
        *[or_(when.is_(None), when > due) for when in unmet_by],
        ~marked,
    ]


def mark_breaches(
    conn: Connection, now: datetime, targets: SlaTargets | None = None
) -> list[Breach]:
    """Mark every target missed by `now` and not marked yet; returns what it marked.
    `targets` (the configured ones) only word the timeline entries."""
    found: list[Breach] = []
    for kind in ("respond", "resolve"):
        rows = conn.execute(select(incidents).where(and_(*_missed(kind, now))).limit(1000))
        for row in rows:
            inc = repo.incident_from_row(row)
            due = inc.respond_due if kind == "respond" else inc.resolve_due
            assert due is not None
            found.append(Breach(inc, kind, due))
    found = [b for b in found if _mark(conn, b, now)]
    news = [b for b in found if b.is_news(now)]
    old = [b for b in found if not b.is_news(now)]
    repo.add_timeline(conn, [_entry(b, now, targets or {}) for b in news])
    repo.add_timeline(conn, [_entry(b, now, targets or {}) for b in old], notify=False)
    return found


def _mark(conn: Connection, b: Breach, now: datetime) -> bool:
    """Insert the mark; False if another replica marked it first (it notifies then)."""
    values = {"incident_id": b.incident.id, "kind": b.kind, "due_at": b.due_at, "marked_at": now}
    try:
        with conn.begin_nested():
            conn.execute(insert(sla_breaches).values(values))
    except IntegrityError:
        return False
    return True


def _entry(b: Breach, now: datetime, targets: SlaTargets) -> TimelineEntry:
    assert b.incident.id is not None
    configured = targets.get(b.incident.priority)
    dues = due_times(b.incident.priority, b.incident.opened_at, targets)
    span = None if configured is None else getattr(configured, b.kind)
    if configured is None or span is None or b.due_at not in dues:  # targets changed since
        target = format_duration(b.due_at - b.incident.opened_at)
    else:
        hours = " of business hours" if configured.hours is not None else ""
        target = f"{format_duration(span)}{hours}"
    verb = "acknowledged" if b.kind == "respond" else "resolved"
    return TimelineEntry(
        b.incident.id,
        now,
        TimelineKind.SLA_BREACHED,
        f"SLA {b.kind} target missed: {b.incident.priority} incidents are to be {verb} "
        f"within {target}, due {format_time(b.due_at)}",
    )


def clocked_since(conn: Connection, since: datetime) -> list[Clocked]:
    """The SLA facts of the incidents opened since `since` (for GET /api/v1/sla)."""
    c = incidents.c
    query = select(
        c.priority, c.opened_at, c.responded_at, c.resolved_at, c.respond_due, c.resolve_due
    ).where(c.opened_at >= since)
    return [Clocked(*row) for row in conn.execute(query)]
