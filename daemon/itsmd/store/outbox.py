"""The notification outbox in the store (docs/connectors.md, "Delivery: the outbox").

Changes note what happened on the connection (`note_*`) as they write their
timeline; `enqueue` turns the notes into outbox rows inside the same
transaction, so a committed change always has its notifications and a rolled
back one never does. The delivery worker claims rows with a lease (safe across
replicas), one per incident and sink at a time, which keeps them in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, insert, select, update
from sqlalchemy.engine import Row

from itsmd.durations import format_optional_time, format_time
from itsmd.models import TimelineKind
from itsmd.notify.routes import Route, escalation_void, plan
from itsmd.store import repo
from itsmd.store.notes import Note, pop_notes
from itsmd.store.tables import notifications, sink_refs, timeline
from itsmd.views import incident_json, problem_json

STATES = ("pending", "sent", "dead", "cancelled", "muted")


def enqueue(conn: Connection, routes: Sequence[Route], base_url: str) -> int:
    """Write the outbox rows for what this transaction noted; returns how many."""
    notes = pop_notes(conn)
    if not notes or not routes:
        return 0
    incident_ids = {n.incident_id for n in notes if n.incident_id is not None}
    incidents = repo.get_incidents(conn, incident_ids)
    muted = _muted(conn, incident_ids)
    rows: list[dict[str, Any]] = []
    for note in notes:
        doc = _document(conn, note, incidents)
        if doc is None:
            continue
        subject = str(doc["id"])
        kind = "incidents" if note.incident_id is not None else "problems"
        payload = {
            "incident" if kind == "incidents" else "problem": doc,
            "link": f"{base_url}/{kind}/{subject}",
        }
        for d in plan(routes, note.event, doc, note.at):
            rows.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "event": note.event,
                    "subject": subject,
                    "incident_id": note.incident_id,
                    "route": d.route,
                    "sink": d.sink,
                    "state": "muted" if note.incident_id in muted else "pending",
                    "payload": payload,
                    "created_at": note.at,
                    "due_at": d.due_at,
                    "unless": d.unless,
                    "attempts": 0,
                    "last_error": None,
                    "sent_at": None,
                    "claimed_until": None,
                }
            )
    if rows:
        conn.execute(insert(notifications), rows)
    return len(rows)


def _document(conn: Connection, note: Note, incidents: Mapping[int, Any]) -> dict[str, Any] | None:
    if note.incident_id is not None:
        inc = incidents.get(note.incident_id)
        return incident_json(inc, note.at) if inc is not None else None
    assert note.problem_id is not None
    found = repo.get_problem(conn, note.problem_id)
    return problem_json(found[0]) if found is not None else None


def _muted(conn: Connection, incident_ids: set[int]) -> set[int]:
    """Incidents opened during a maintenance window that annotates: they notify nobody."""
    if not incident_ids:
        return set()
    query = select(timeline.c.incident_id).where(
        timeline.c.incident_id.in_(incident_ids),
        timeline.c.kind == TimelineKind.MAINTENANCE.value,
    )
    return set(conn.execute(query).scalars())


# ---- the delivery worker's side


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: str
    event: str
    subject: str
    sink: str
    payload: Mapping[str, Any]
    created_at: datetime
    due_at: datetime
    attempts: int
    ref: str | None
    claimed_until: datetime  # the claim: marks apply only while it is still this one


@dataclass(frozen=True, slots=True)
class Slots:
    """How many rows each configured sink may take now and for how long; rows of
    sinks no longer configured are taken freely (they are dead-lettered at once)."""

    free: Mapping[str, int]
    lease: Mapping[str, timedelta]
    other_lease: timedelta = timedelta(seconds=30)
    sending: Sequence[int] = ()  # in flight here: never taken twice, whatever the clock


def _eligible(now: datetime, full: Sequence[str], sending: Sequence[int], limit: int) -> Any:
    """Due rows not leased, each the first pending of its subject and sink, except
    that an escalation still waiting for its time does not hold back later events
    (one waiting for a retry does: it was due, so it goes first)."""
    earlier = notifications.alias("earlier")
    waiting = earlier.c.unless.is_not(None) & (earlier.c.due_at > now) & (earlier.c.attempts == 0)
    blocked = (
        select(earlier.c.id)
        .where(
            earlier.c.state == "pending",
            earlier.c.subject == notifications.c.subject,
            earlier.c.sink == notifications.c.sink,
            earlier.c.id < notifications.c.id,
            ~waiting,
        )
        .exists()
    )
    free = notifications.c.claimed_until.is_(None) | (notifications.c.claimed_until < now)
    query = select(notifications.c.id, notifications.c.sink).where(
        notifications.c.state == "pending", notifications.c.due_at <= now, free, ~blocked
    )
    if full:
        query = query.where(notifications.c.sink.not_in(full))
    if sending:
        query = query.where(notifications.c.id.not_in(sending))
    return query.order_by(notifications.c.id).limit(limit)


def claim(conn: Connection, now: datetime, slots: Slots, limit: int | None = None) -> list[Claimed]:
    """Take the next deliverable row of each subject and sink, as many per sink as
    it has free slots, each for its sink's lease.

    The conditional UPDATE is the claim: of two replicas racing for a row, the
    second finds it leased and gets nothing back.
    """
    _cancel_void_escalations(conn, now)
    full = [name for name, n in slots.free.items() if n <= 0]
    if limit is None:  # enough candidates to fill the free slots, and some for other sinks
        limit = min(2 * sum(max(n, 0) for n in slots.free.values()) + 10, 100)
    by_sink: dict[str, list[int]] = {}
    for row_id, sink in conn.execute(_eligible(now, full, slots.sending, limit)):
        taken = by_sink.setdefault(sink, [])
        if len(taken) < slots.free.get(sink, limit):
            taken.append(row_id)
    free = notifications.c.claimed_until.is_(None) | (notifications.c.claimed_until < now)
    claimed_ids: list[int] = []
    for sink, ids in by_sink.items():
        until = now + slots.lease.get(sink, slots.other_lease)
        claimed_ids += conn.execute(
            update(notifications)
            .where(notifications.c.id.in_(ids), notifications.c.state == "pending", free)
            .values(claimed_until=until)
            .returning(notifications.c.id)
        ).scalars()
    if not claimed_ids:
        return []
    rows = conn.execute(
        select(notifications)
        .where(notifications.c.id.in_(claimed_ids))
        .order_by(notifications.c.id)
    ).all()
    refs = _refs(conn, rows)
    return [_claimed(r, refs.get((r.subject, r.sink))) for r in rows]


def _claimed(r: Row[Any], ref: str | None) -> Claimed:
    return Claimed(
        r.id,
        r.event_id,
        r.event,
        r.subject,
        r.sink,
        r.payload,
        r.created_at,
        r.due_at,
        r.attempts,
        ref,
        r.claimed_until,
    )


def _refs(conn: Connection, rows: Sequence[Row[Any]]) -> dict[tuple[str, str], str]:
    subjects = {r.subject for r in rows}
    query = select(sink_refs).where(sink_refs.c.subject.in_(subjects))
    return {(r.subject, r.sink): r.ref for r in conn.execute(query)}


def _cancel_void_escalations(conn: Connection, now: datetime) -> None:
    waiting = conn.execute(
        select(notifications.c.id, notifications.c.unless, notifications.c.incident_id).where(
            notifications.c.state == "pending", notifications.c.unless.is_not(None)
        )
    ).all()
    found = repo.get_incidents(conn, {r.incident_id for r in waiting if r.incident_id is not None})
    docs = {i: incident_json(inc, now) for i, inc in found.items()}
    void = [
        r.id
        for r in waiting
        if r.incident_id in docs and escalation_void(r.unless, docs[r.incident_id])
    ]
    if void:
        conn.execute(
            update(notifications)
            .where(notifications.c.id.in_(void))
            .values(state="cancelled", last_error="the incident was acknowledged in time")
        )


def release_leases(conn: Connection) -> int:
    """Forget every lease: for a store only this process writes (SQLite), at start."""
    held = notifications.c.claimed_until.is_not(None)
    return int(conn.execute(update(notifications).where(held).values(claimed_until=None)).rowcount)


def mark_sent(conn: Connection, row: Claimed, now: datetime, ref: str | None) -> bool:
    """Record an acknowledged send; False (and nothing written) if the claim ran out
    and another worker took the row meanwhile: its answer will be recorded instead."""
    if not _finish(conn, row, state="sent", sent_at=now, last_error=None):
        return False
    if ref is not None and ref != row.ref:
        key = and_(sink_refs.c.subject == row.subject, sink_refs.c.sink == row.sink)
        if conn.execute(update(sink_refs).where(key).values(ref=ref)).rowcount == 0:
            conn.execute(insert(sink_refs).values(subject=row.subject, sink=row.sink, ref=ref))
    return True


def mark_retry(conn: Connection, row: Claimed, due: datetime, error: str) -> bool:
    return _finish(conn, row, state="pending", due_at=due, last_error=error)


def mark_dead(conn: Connection, row: Claimed, error: str) -> bool:
    return _finish(conn, row, state="dead", last_error=error)


def release(conn: Connection, rows: Sequence[Claimed]) -> int:
    """Give back claims whose sends were cut off (at shutdown): due again at once."""
    released = 0
    for row in rows:
        mine = update(notifications).where(_claimed_by(row))
        released += conn.execute(mine.values(claimed_until=None)).rowcount
    return released


def _claimed_by(row: Claimed) -> ColumnElement[bool]:
    return (notifications.c.id == row.id) & (notifications.c.claimed_until == row.claimed_until)


def _finish(conn: Connection, row: Claimed, **values: Any) -> bool:
    done = conn.execute(
        update(notifications)
        .where(_claimed_by(row), notifications.c.state == "pending")
        .values(attempts=row.attempts + 1, claimed_until=None, **values)
    )
    return bool(done.rowcount)


def pending_count(conn: Connection) -> int:
    query = (
        select(func.count()).select_from(notifications).where(notifications.c.state == "pending")
    )
    return int(conn.execute(query).scalar_one())


# ---- reads and admin actions for the API


def list_notifications(
    conn: Connection, state: str | None, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    query = select(notifications).order_by(notifications.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(notifications.c.state == state)
    if after_id is not None:
        query = query.where(notifications.c.id < after_id)
    return [notification_json(r) for r in conn.execute(query)]


def notification_json(r: Row[Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "event_id": r.event_id,
        "event": r.event,
        "subject": r.subject,
        "route": r.route,
        "connector": r.sink,
        "state": r.state,
        "attempts": r.attempts,
        "created_at": format_time(r.created_at),
        "due_at": format_time(r.due_at),
        "sent_at": format_optional_time(r.sent_at),
        "last_error": r.last_error,
        "unless": r.unless,
        "retried_by": r.retried_by,
    }


def exists(conn: Connection, notification_id: int) -> bool:
    query = select(notifications.c.id).where(notifications.c.id == notification_id)
    return conn.execute(query).first() is not None


def retry_dead(
    conn: Connection, notification_id: int, now: datetime, actor: str
) -> dict[str, Any] | None:
    """`actor` sends a dead letter again: pending, due now, a fresh attempt count."""
    done = conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.state == "dead")
        .values(state="pending", due_at=now, attempts=0, claimed_until=None, retried_by=actor)
    )
    if done.rowcount == 0:
        return None
    row = conn.execute(select(notifications).where(notifications.c.id == notification_id)).one()
    return notification_json(row)
