"""Checks in the store: latest status, availability history and leader leases.

History is kept as state changes per subject ("check:<name>", "service:<name>")
for RAW_DAYS, which covers the 1d/7d/30d windows exactly, plus one aggregate row
per subject and UTC day, kept AGGREGATE_DAYS, for longer windows. A roll-up job
writes the aggregates of finished days and prunes changes older than RAW_DAYS,
keeping the last one before the cutoff so the state at the cutoff stays known.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from itsmd.checks.availability import Change, State, Uptime, aggregate
from itsmd.checks.report import Subject, report
from itsmd.checks.state import SOURCE
from itsmd.correlation.rules import RuleSet
from itsmd.models import Alert, AlertStatus
from itsmd.store.tables import (
    alerts,
    check_changes,
    check_daily,
    check_status,
    heartbeats,
    leases,
)

RAW_DAYS = 35
_NO_ONE = datetime(1970, 1, 1, tzinfo=UTC)  # a released lease ran out long ago, on any clock
AGGREGATE_DAYS = 400


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    type: str
    service: str | None
    up: bool | None
    last_run: datetime | None
    last_error: str | None
    consecutive_failures: int
    duration_s: float | None
    capacity: Sequence[Mapping[str, Any]]


def save_status(conn: Connection, s: Status) -> None:
    values = {
        "type": s.type,
        "service": s.service,
        "up": None if s.up is None else int(s.up),
        "last_run": s.last_run,
        "last_error": s.last_error,
        "consecutive_failures": s.consecutive_failures,
        "duration_s": s.duration_s,
        "capacity": list(s.capacity),
    }
    done = conn.execute(update(check_status).where(check_status.c.name == s.name).values(values))
    if done.rowcount == 0:
        conn.execute(insert(check_status).values(name=s.name, **values))


def statuses(conn: Connection) -> list[Status]:
    rows = conn.execute(select(check_status).order_by(check_status.c.name))
    return [_status(r) for r in rows]


def _status(r: Any) -> Status:
    up = None if r.up is None else bool(r.up)
    return Status(
        r.name,
        r.type,
        r.service,
        up,
        r.last_run,
        r.last_error,
        r.consecutive_failures,
        r.duration_s,
        r.capacity,
    )


def forget_statuses(conn: Connection, keep: Iterable[str]) -> None:
    """Checks removed from the rules leave the status list (their history stays)."""
    conn.execute(delete(check_status).where(check_status.c.name.not_in(list(keep))))


# ---- history


def record_change(conn: Connection, subject: str, at: datetime, state: State) -> bool:
    """Append a change unless the subject is already in that state; True if written."""
    last = conn.execute(
        select(check_changes.c.state)
        .where(check_changes.c.subject == subject)
        .order_by(check_changes.c.at.desc(), check_changes.c.id.desc())
        .limit(1)
    ).scalar()
    if last == state.value:
        return False
    conn.execute(insert(check_changes).values(subject=subject, at=at, state=state.value))
    return True


def changes(conn: Connection, subjects: Sequence[str], since: datetime) -> dict[str, list[Change]]:
    """Each subject's changes after `since`, led by the last one at or before it."""
    out: dict[str, list[Change]] = {s: [] for s in subjects}
    if not subjects:
        return out
    latest_before = (
        select(check_changes.c.subject, func.max(check_changes.c.at).label("at"))
        .where(check_changes.c.subject.in_(subjects), check_changes.c.at <= since)
        .group_by(check_changes.c.subject)
        .subquery()
    )
    lead = select(check_changes).join(
        latest_before,
        and_(
            check_changes.c.subject == latest_before.c.subject,
            check_changes.c.at == latest_before.c.at,
        ),
    )
    after = select(check_changes).where(
        check_changes.c.subject.in_(subjects), check_changes.c.at > since
    )
    for query in (lead, after):
        for r in conn.execute(query.order_by(check_changes.c.at, check_changes.c.id)):
            out[r.subject].append(Change(r.at, State(r.state)))
    return out


def daily(conn: Connection, subjects: Sequence[str], first: date, last: date) -> dict[str, Uptime]:
    """The sum of each subject's aggregates over the days [first, last]."""
    out = {s: Uptime() for s in subjects}
    rows = conn.execute(
        select(check_daily).where(
            check_daily.c.subject.in_(subjects),
            check_daily.c.day >= first.isoformat(),
            check_daily.c.day <= last.isoformat(),
        )
    )
    for r in rows:
        out[r.subject] += Uptime(r.up_s, r.down_s, r.maintenance_s, r.unknown_s)
    return out


def first_known_days(conn: Connection, subjects: Sequence[str]) -> dict[str, date]:
    """Per subject, the first day whose aggregate knows its state (for a history
    older than the raw changes); subjects without one are left out."""
    if not subjects:
        return {}
    known = check_daily.c.up_s + check_daily.c.down_s + check_daily.c.maintenance_s
    rows = conn.execute(
        select(check_daily.c.subject, func.min(check_daily.c.day))
        .where(check_daily.c.subject.in_(subjects), known > 0)
        .group_by(check_daily.c.subject)
    )
    return {subject: date.fromisoformat(day) for subject, day in rows}


def roll_up(conn: Connection, now: datetime) -> int:
    """Aggregate every finished day not aggregated yet; prune old rows. Returns the
    number of day rows written."""
    today = now.astimezone(UTC).date()
    subjects = list(conn.execute(select(check_changes.c.subject).distinct()).scalars())
    written = 0
    for subject in subjects:
        done = conn.execute(
            select(func.max(check_daily.c.day)).where(check_daily.c.subject == subject)
        ).scalar()
        first_change = conn.execute(
            select(func.min(check_changes.c.at)).where(check_changes.c.subject == subject)
        ).scalar_one()
        start = date.fromisoformat(done) + timedelta(days=1) if done else first_change.date()
        start = max(start, today - timedelta(days=RAW_DAYS - 1))
        history = changes(conn, [subject], _midnight(start))[subject]
        rows = []
        day = start
        while day < today:
            u = aggregate(history, _midnight(day), _midnight(day + timedelta(days=1)))
            rows.append(
                {
                    "subject": subject,
                    "day": day.isoformat(),
                    "up_s": u.up_s,
                    "down_s": u.down_s,
                    "maintenance_s": u.maintenance_s,
                    "unknown_s": u.unknown_s,
                }
            )
            day += timedelta(days=1)
        if rows:
            conn.execute(insert(check_daily), rows)
            written += len(rows)
    _prune(conn, now, subjects)
    return written


def _prune(conn: Connection, now: datetime, subjects: Sequence[str]) -> None:
    cutoff = now - timedelta(days=RAW_DAYS)
    for subject in subjects:
        keep = conn.execute(
            select(func.max(check_changes.c.at)).where(
                check_changes.c.subject == subject, check_changes.c.at <= cutoff
            )
        ).scalar()
        if keep is not None:
            conn.execute(
                delete(check_changes).where(
                    check_changes.c.subject == subject, check_changes.c.at < keep
                )
            )
    oldest = (now.date() - timedelta(days=AGGREGATE_DAYS)).isoformat()
    conn.execute(delete(check_daily).where(check_daily.c.day < oldest))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# ---- leader leases


class Lease(enum.Enum):
    RENEWED = "renewed"  # held without a gap: whatever this holder knew still stands
    TAKEN = "taken"  # new, or after a lapse in which another holder may have led
    LOST = "lost"  # another holder's lease runs


def hold_lease(conn: Connection, job: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
    """Take or renew the lease of `job`."""
    until = now + ttl
    mine = (leases.c.job == job) & (leases.c.holder == holder) & (leases.c.until >= now)
    if conn.execute(update(leases).where(mine).values(until=until)).rowcount:
        return Lease.RENEWED
    lapsed = (leases.c.job == job) & (leases.c.until < now)
    if conn.execute(update(leases).where(lapsed).values(holder=holder, until=until)).rowcount:
        return Lease.TAKEN
    exists = conn.execute(select(leases.c.job).where(leases.c.job == job)).first()
    if exists is not None:
        return Lease.LOST
    try:
        with conn.begin_nested():
            conn.execute(insert(leases).values(job=job, holder=holder, until=until))
    except IntegrityError:  # another replica inserted it first
        return Lease.LOST
    return Lease.TAKEN


def release_lease(conn: Connection, job: str, holder: str, now: datetime) -> bool:
    """Give up the lease of `job` if `holder` has it, so that another replica (or this
    one restarted) takes it at once instead of when it runs out."""
    mine = (leases.c.job == job) & (leases.c.holder == holder) & (leases.c.until >= now)
    return bool(conn.execute(update(leases).where(mine).values(until=_NO_ONE)).rowcount)


def saw_heartbeats(conn: Connection, names: Iterable[str], at: datetime) -> None:
    """Alerts keeping these heartbeats alive arrived at `at` (on any replica)."""
    for name in names:
        later = (heartbeats.c.name == name) & (heartbeats.c.last_seen < at)
        if conn.execute(update(heartbeats).where(later).values(last_seen=at)).rowcount:
            continue
        if conn.execute(select(heartbeats.c.name).where(heartbeats.c.name == name)).first():
            continue  # already as recent
        try:
            with conn.begin_nested():
                conn.execute(insert(heartbeats).values(name=name, last_seen=at))
        except IntegrityError:  # another replica inserted it first, as recent
            pass


def heartbeat_seen(conn: Connection, name: str) -> datetime | None:
    """When an alert last kept heartbeat `name` alive, on whichever replica."""
    found: datetime | None = conn.execute(
        select(heartbeats.c.last_seen).where(heartbeats.c.name == name)
    ).scalar()
    return found


def firing_check_alerts(conn: Connection) -> list[Alert]:
    """The alerts checks made that are still firing: what a restarted runner restores."""
    query = select(alerts).where(alerts.c.source == SOURCE, alerts.c.status == "firing")
    return [
        Alert(
            r.fingerprint,
            AlertStatus(r.status),
            r.labels,
            r.annotations,
            r.starts_at,
            r.ends_at,
            r.generator_url,
            r.source,
        )
        for r in conn.execute(query)
    ]


def availability_report(
    conn: Connection, rules: RuleSet, now: datetime, windows: list[timedelta], budget: timedelta
) -> dict[str, Any]:
    # Raw history from a UTC midnight, where the daily aggregates of longer windows end.
    raw_day = (now - timedelta(days=RAW_DAYS - 1)).astimezone(UTC).date()
    raw_from = datetime.combine(raw_day, time(), UTC)
    raw = now - raw_from
    checks = {f"check:{c.name}": c for c in rules.checks}
    services = sorted({c.service for c in rules.checks if c.service})
    subjects = [*checks, *(f"service:{s}" for s in services)]
    history = changes(conn, subjects, raw_from)
    older = {w: _older(conn, subjects, now, w, raw) for w in windows if w > raw}
    first_days = first_known_days(conn, subjects)

    def subject(key: str, service: str | None, slo: float | None) -> Subject:
        day = first_days.get(key)
        since = None if day is None else _midnight(day)
        by_window = {w: o[key] for w, o in older.items()}
        return Subject(key, history[key], by_window, service, slo, since)

    check_docs = [
        {
            "check": c.name,
            "service": c.service,
            **report(subject(key, c.service, None), now, windows, budget, raw),
        }
        for key, c in checks.items()
    ]
    service_docs = []
    for name in services:
        slo = s.slo if (s := rules.service(name)) is not None else None
        doc = report(subject(f"service:{name}", name, slo), now, windows, budget, raw)
        service_docs.append({"service": name, **doc})
    return {"services": service_docs, "checks": check_docs}


def _older(
    conn: Connection, subjects: list[str], now: datetime, window: timedelta, raw: timedelta
) -> dict[str, Any]:
    """The daily aggregates of a long window's days before the raw part (whole UTC
    days: the first day counts from its midnight)."""
    first = (now - window).astimezone(UTC).date()
    last = (now - raw).astimezone(UTC).date() - timedelta(days=1)
    return daily(conn, subjects, first, last)
