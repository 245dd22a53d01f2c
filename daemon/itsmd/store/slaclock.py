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
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError

from itsmd.correlation.sla import Clocked, SlaTargets, Verdict, due_times
from itsmd.durations import format_duration, format_time
from itsmd.models import Incident, IncidentStatus, TimelineEntry, TimelineKind
from itsmd.store import repo
from itsmd.store.tables import UTCDateTime, incidents, sla_breaches, sla_days

# Targets further back than this are not looked at again (they were, when due).
LOOK_BACK = timedelta(days=30)
# A target that passed longer ago than this is recorded without a notification.
ANNOUNCE_WITHIN = timedelta(hours=1)
MET, BREACHED, PENDING, NOT_NEEDED = (
    literal(v.value) for v in (Verdict.MET, Verdict.BREACHED, Verdict.PENDING, Verdict.NOT_NEEDED)
)


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


def sla_summary(conn: Connection, since: datetime, now: datetime) -> list[dict[str, object]]:
    """`correlation.sla.summarize(clocked_since(conn, since), now)`, counted by the
    database: the whole days after `since` from `sla_days` (resolved incidents, one
    row per day and priority), the unresolved incidents and those of the first, partial
    day one by one (GET /api/v1/sla over a store of 100,000 incidents)."""
    totals: dict[str, dict[str, Any]] = {}
    first_day = since.astimezone(UTC).date()
    day_after = datetime.combine(first_day + timedelta(days=1), time(), UTC)
    d = sla_days.c
    query = (
        select(d.priority, *(func.sum(d[k]) for k in _DAY_COLUMNS))
        .where(d.day > first_day.isoformat())
        .group_by(d.priority)
    )
    for priority, *sums in conn.execute(query):
        _add(totals, priority, dict(zip(_DAY_COLUMNS, sums, strict=True)))
    params = {"since": since, "now": now, "day_after": day_after}
    for counted in _summary_queries(conn.dialect.name):
        for group in conn.execute(counted, params):
            _add_counted(totals, *group)
    out = []
    for priority in sorted(totals):
        row = totals[priority]
        acks, ack_s, fixes, fix_s = (row.pop(k) for k in ("acks", "ack_s", "fixes", "fix_s"))
        row["mtta_s"] = round(ack_s / acks, 3) if acks else None
        row["mttr_s"] = round(fix_s / fixes, 3) if fixes else None
        out.append(row)
    return out


@cache
def _summary_queries(dialect: str) -> tuple[Select[Any], Select[Any]]:
    """The unresolved incidents opened since `:since`, and the resolved ones opened on
    its first, partial day (before `:day_after`), counted per priority and verdicts at
    `:now`. Built once: building these statements took longer than running them.

    Each reads one covering index (migration 0019): the unresolved by status, the
    first day's by time. SQLite has no statistics to choose by (the window can hold
    every incident, and nearly all are resolved): a unary `+` keeps it off the other
    index."""
    c = incidents.c
    sqlite = dialect == "sqlite"
    since = bindparam("since", type_=UTCDateTime)
    day_after = bindparam("day_after", type_=UTCDateTime)
    opened = literal_column("+incidents.opened_at", UTCDateTime) if sqlite else c.opened_at
    status = literal_column("+incidents.status", String) if sqlite else c.status
    unresolved = [
        c.status.in_([IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value]),
        opened >= since,
    ]
    first = [status == IncidentStatus.RESOLVED.value, c.opened_at >= since, c.opened_at < day_after]
    return _counted(sqlite, unresolved), _counted(sqlite, first)


_DAY_COLUMNS = [
    "incidents",
    "respond_met",
    "respond_breached",
    "respond_not_needed",
    "resolve_met",
    "resolve_breached",
    "acks",
    "ack_s",
    "fixes",
    "fix_s",
]


def _add(totals: dict[str, dict[str, Any]], priority: str, sums: dict[str, Any]) -> None:
    row = totals.setdefault(
        priority,
        {
            "priority": priority,
            "incidents": 0,
            "respond": {v.value: 0 for v in Verdict},
            "resolve": {v.value: 0 for v in Verdict if v is not Verdict.NOT_NEEDED},
            "acks": 0,
            "ack_s": 0.0,
            "fixes": 0,
            "fix_s": 0.0,
        },
    )
    for key, value in sums.items():
        kind, _, verdict = key.partition("_")
        if kind in ("respond", "resolve"):
            row[kind][verdict] += int(value or 0)
        else:
            row[key] += float(value or 0) if key.endswith("_s") else int(value or 0)


def _add_counted(
    totals: dict[str, dict[str, Any]],
    priority: str,
    respond: str | None,
    resolve: str | None,
    count: int,
    *facts: Any,
) -> None:
    """Add one group of `_counted` (acks, ack_s, fixes, fix_s) to the totals."""
    sums = {
        "incidents": count,
        **dict(zip(("acks", "ack_s", "fixes", "fix_s"), facts, strict=True)),
    }
    if respond is not None:
        sums[f"respond_{respond}"] = count
    if resolve is not None:
        sums[f"resolve_{resolve}"] = count
    _add(totals, priority, sums)


def _counted(sqlite: bool, where: list[Any]) -> Select[Any]:
    """The incidents `where` selects, one group per priority and verdicts at `:now`."""
    c = incidents.c
    now = bindparam("now", type_=UTCDateTime)
    respond = _respond_verdict(now).label("respond")
    resolve = _resolve_verdict(now).label("resolve")
    answered, resolved = _answered(), c.resolved_at.is_not(None)
    return (
        select(
            c.priority,
            respond,
            resolve,
            func.count(),
            func.count(case((answered, 1))),
            func.sum(case((answered, _seconds(sqlite, c.responded_at, c.opened_at)))),
            func.count(case((resolved, 1))),
            func.sum(case((resolved, _seconds(sqlite, c.resolved_at, c.opened_at)))),
        )
        .where(*where)
        .group_by(c.priority, respond, resolve)
    )


def _answered() -> ColumnElement[bool]:
    """A person responded while it was unresolved (sla.respond_verdict)."""
    c = incidents.c
    return and_(
        c.responded_at.is_not(None), or_(c.resolved_at.is_(None), c.responded_at <= c.resolved_at)
    )


def _respond_verdict(now: ColumnElement[Any]) -> ColumnElement[Any]:
    """sla.respond_verdict in SQL; times compare as they do in Python (UTC text of one
    width on SQLite, timestamptz on PostgreSQL)."""
    c = incidents.c
    return case(
        (c.respond_due.is_(None), null()),
        (_answered(), case((c.responded_at <= c.respond_due, MET), else_=BREACHED)),
        (
            c.resolved_at.is_not(None),
            case((c.resolved_at <= c.respond_due, NOT_NEEDED), else_=BREACHED),
        ),
        (c.respond_due < now, BREACHED),
        else_=PENDING,
    )


def _resolve_verdict(now: ColumnElement[Any]) -> ColumnElement[Any]:
    c = incidents.c
    return case(
        (c.resolve_due.is_(None), null()),
        (c.resolved_at.is_not(None), case((c.resolved_at <= c.resolve_due, MET), else_=BREACHED)),
        (c.resolve_due < now, BREACHED),
        else_=PENDING,
    )


def _seconds(sqlite: bool, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> Any:
    if sqlite:
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)
