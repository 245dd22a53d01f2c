"""Retention in the store: which old rows may go, deleted a small chunk per call.

Every function here is one step of a retention run and runs in one short
transaction of its own (the caller loops), so that ingestion, which goes through
the same writer queue, waits behind one chunk at most, never behind a whole run.

What is kept whatever its age (docs/operations.md, Retention):
- incidents that are not resolved, and their alerts;
- a resolved incident that a problem not yet resolved links (the problem's record);
- a resolved incident with an alert received within the horizon (it still fires);
- an incident another one names as its parent;
- the newest incident and the newest problem: SQLite would hand a deleted newest
  id to the next row, and `INC-n` must never name two incidents (sinks keep
  their ticket references by it);
- a problem that still links an incident, or that is not resolved.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    delete,
    exists,
    func,
    select,
    text,
    update,
)

from itsmd.models import IncidentStatus, ProblemStatus, format_incident_id
from itsmd.store import repo
from itsmd.store.tables import (
    alerts,
    incident_labels,
    incidents,
    leases,
    notifications,
    problems,
    sink_refs,
    sla_breaches,
    timeline,
)

JOB = "retention"  # its row in the leases table
# Outbox states that are final: the row is history once this old.
FINISHED_STATES = ("sent", "dead", "cancelled")


class Kind(enum.StrEnum):
    """What the retention job deletes (the `kind` label of its metric)."""

    INCIDENTS = "incidents"
    ALERTS = "alerts"
    TIMELINE = "timeline"
    NOTIFICATIONS = "notifications"
    PROBLEMS = "problems"


# ---- the daily claim


def claim_run(conn: Connection, holder: str, now: datetime, every: timedelta) -> bool:
    """Whether `holder` runs retention now: the lease row says when the next run is
    due, and the replica that moves it forward runs (one replica a day, whichever
    asks first once it is due; a run that dies is run again the next day)."""
    due = (leases.c.job == JOB) & (leases.c.until <= now)
    moved = update(leases).where(due).values(holder=holder, until=now + every)
    if conn.execute(moved).rowcount:
        return True
    if conn.execute(select(leases.c.job).where(leases.c.job == JOB)).first() is not None:
        return False
    with conn.begin_nested():  # a race for the first row fails the unit: it runs again
        conn.execute(leases.insert().values(job=JOB, holder=holder, until=now + every))
    return True


def next_run(conn: Connection) -> datetime | None:
    """When the next run is due (None: no run yet)."""
    due: datetime | None = conn.execute(
        select(leases.c.until).where(leases.c.job == JOB)
    ).scalar_one_or_none()
    return due


# ---- incidents


def kept_links(conn: Connection) -> tuple[frozenset[int], frozenset[int], int]:
    """(problems not resolved, incidents named as a parent, the newest incident id):
    what keeps a resolved incident however old. One pass over incidents per run."""
    open_problems = conn.execute(
        select(problems.c.id).where(problems.c.status != ProblemStatus.RESOLVED.value)
    ).scalars()
    parents = conn.execute(
        select(incidents.c.parent_id).where(incidents.c.parent_id.is_not(None)).distinct()
    ).scalars()
    newest = conn.execute(select(func.max(incidents.c.id))).scalar() or 0
    return frozenset(open_problems), frozenset(parents), newest


def old_incidents(
    conn: Connection,
    horizon: datetime,
    after_id: int,
    limit: int,
    kept: tuple[frozenset[int], frozenset[int], int],
) -> list[int]:
    """The next `limit` incidents (by id, after `after_id`) resolved before `horizon`
    that nothing keeps."""
    open_problems, parents, newest = kept
    fresh = exists().where(
        alerts.c.incident_id == incidents.c.id, alerts.c.last_received >= horizon
    )
    query = (
        select(incidents.c.id)
        .where(
            incidents.c.id > after_id,
            incidents.c.id < newest,
            _resolved_before(horizon),
            incidents.c.problem_id.is_(None) | incidents.c.problem_id.not_in(list(open_problems)),
            incidents.c.id.not_in(list(parents)),
            ~fresh,
        )
        .order_by(incidents.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def _resolved_before(horizon: datetime) -> ColumnElement[bool]:
    return and_(
        incidents.c.status == IncidentStatus.RESOLVED.value, incidents.c.resolved_at < horizon
    )


def _still_old(ids: Sequence[int], horizon: datetime) -> Select[int]:
    """Of `ids`, those still resolved before `horizon` (a reopen since is kept)."""
    return select(incidents.c.id).where(incidents.c.id.in_(ids), _resolved_before(horizon))


def delete_alerts_of(conn: Connection, ids: Sequence[int], horizon: datetime, limit: int) -> int:
    """Up to `limit` alerts of the incidents `ids` (those still old), oldest first;
    an alert received since `horizon` stays, and keeps its incident."""
    chunk = (
        select(alerts.c.id)
        .where(
            alerts.c.incident_id.in_(_still_old(ids, horizon)),
            alerts.c.last_received < horizon,
        )
        .limit(limit)
    )
    return conn.execute(delete(alerts).where(alerts.c.id.in_(chunk))).rowcount


def delete_timeline_of(conn: Connection, ids: Sequence[int], horizon: datetime, limit: int) -> int:
    """Up to `limit` timeline entries of the incidents `ids` left without alerts."""
    chunk = (
        select(timeline.c.id).where(timeline.c.incident_id.in_(_bare(ids, horizon))).limit(limit)
    )
    return conn.execute(delete(timeline).where(timeline.c.id.in_(chunk))).rowcount


def _bare(ids: Sequence[int], horizon: datetime) -> Select[int]:
    """Of `ids`, the incidents still old that no alert belongs to any more."""
    left = exists().where(alerts.c.incident_id == incidents.c.id)
    return select(incidents.c.id).where(incidents.c.id.in_(ids), _resolved_before(horizon), ~left)


def delete_incidents(conn: Connection, ids: Sequence[int], horizon: datetime) -> int:
    """The incidents `ids` that are still old and bare, with what hangs on them
    (label values, SLA marks, sink references); returns how many went."""
    gone = list(conn.execute(_bare(ids, horizon)).scalars())
    if not gone:
        return 0
    conn.execute(delete(timeline).where(timeline.c.incident_id.in_(gone)))
    conn.execute(delete(incident_labels).where(incident_labels.c.incident_id.in_(gone)))
    conn.execute(delete(sla_breaches).where(sla_breaches.c.incident_id.in_(gone)))
    repo.touch_incidents(conn, gone)
    refs = [format_incident_id(i) for i in gone]
    conn.execute(delete(sink_refs).where(sink_refs.c.subject.in_(refs)))
    return conn.execute(delete(incidents).where(incidents.c.id.in_(gone))).rowcount


# ---- alerts of no incident, notifications, problems


def delete_loose_alerts(
    conn: Connection, horizon: datetime, after_id: int, limit: int
) -> tuple[int, int]:
    """Up to `limit` alerts of no incident (unrouted, suppressed, resolves of alerts
    never seen) last received before `horizon`, after `after_id`; returns (deleted,
    the last id looked at, 0 when there were none)."""
    chunk = list(
        conn.execute(
            select(alerts.c.id)
            .where(
                alerts.c.incident_id.is_(None),
                alerts.c.id > after_id,
                alerts.c.last_received < horizon,
            )
            .order_by(alerts.c.id)
            .limit(limit)
        ).scalars()
    )
    if not chunk:
        return 0, 0
    deleted = conn.execute(delete(alerts).where(alerts.c.id.in_(chunk))).rowcount
    return deleted, chunk[-1]


def delete_notifications(conn: Connection, state: str, horizon: datetime, limit: int) -> int:
    """Up to `limit` outbox rows in the final `state` created before `horizon`."""
    chunk = (
        select(notifications.c.id)
        .where(notifications.c.state == state, notifications.c.created_at < horizon)
        .order_by(notifications.c.id)
        .limit(limit)
    )
    return conn.execute(delete(notifications).where(notifications.c.id.in_(chunk))).rowcount


def delete_problems(conn: Connection, horizon: datetime) -> int:
    """Problems resolved before `horizon` that link no incident any more (all of
    theirs were deleted), except the newest problem."""
    linked = set(
        conn.execute(
            select(incidents.c.problem_id).where(incidents.c.problem_id.is_not(None)).distinct()
        ).scalars()
    )
    newest = conn.execute(select(func.max(problems.c.id))).scalar() or 0
    candidates = conn.execute(
        select(problems.c.id).where(
            problems.c.status == ProblemStatus.RESOLVED.value,
            problems.c.resolved_at < horizon,
            problems.c.id < newest,
        )
    ).scalars()
    gone = [p for p in candidates if p not in linked]
    if not gone:
        return 0
    conn.execute(delete(sink_refs).where(sink_refs.c.subject.in_([f"PRB-{p}" for p in gone])))
    return conn.execute(delete(problems).where(problems.c.id.in_(gone))).rowcount


# ---- the size of the store


def store_bytes(conn: Connection, sqlite_file: Path | None) -> int:
    """Bytes the store takes on disk: SQLite's file and its WAL, PostgreSQL's
    database (`pg_database_size`)."""
    if conn.dialect.name == "postgresql":
        size: int = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        return size
    if sqlite_file is None:  # in memory: its pages
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    total = 0
    for path in (sqlite_file, Path(f"{sqlite_file}-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(path).st_size
    return total


def give_back(conn: Connection, pages: int) -> int:
    """SQLite: return up to `pages` free pages to the file system (a store made
    with auto_vacuum=incremental; others keep their free pages for new rows);
    returns the free pages left that can be given back."""
    if conn.dialect.name != "sqlite":
        return 0
    if conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() != 2:  # not INCREMENTAL
        return 0
    left = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    # One page per statement: the pragma hands back a page per step, and Python's
    # driver steps a statement that declares no columns only once.
    for _ in range(min(pages, left)):
        conn.exec_driver_sql("PRAGMA incremental_vacuum(1)")
    return int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())


def free_bytes(conn: Connection) -> int:
    """SQLite: bytes of free pages inside the file (0 on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        return 0
    pages = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    return pages * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
