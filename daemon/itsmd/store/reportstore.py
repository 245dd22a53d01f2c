"""The facts of the reports, read from the store (docs/reports.md).

`review_facts` and `alert_groups` read what the service review needs of one period: the incidents
opened in it with their SLA verdicts and times, the alerts that started in it per
rule and alertname, the problems its incidents link, and each service's
availability over it. `incident_review` reads one incident with everything the
post-incident review shows. The figures are made from these in `reports.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, case, func, select, type_coerce

from itsmd.checks.availability import State, Uptime, aggregate
from itsmd.correlation.sla import resolve_verdict, respond_verdict
from itsmd.models import Incident, ProblemRecord, StoredAlert, TimelineEntry, TimelineKind
from itsmd.reports.figures import AlertGroup, IncidentFact, PeriodFacts, ProblemFact
from itsmd.reports.periods import Period
from itsmd.store import checkstore, repo
from itsmd.store.tables import alerts, incidents, problems, timeline

# Timeline entries that say how an incident ended, or that it came back.
_ENDINGS = (TimelineKind.RESOLVED.value, TimelineKind.AUTO_RESOLVED.value)
_FLAGS = (*_ENDINGS, TimelineKind.REOPENED.value)


def review_facts(
    conn: Connection,
    periods: Sequence[Period],
    service: str | None,
    services: Sequence[str],
    now: datetime,
) -> list[PeriodFacts]:
    """The facts of each of `periods` but their alerts (see `alert_groups`);
    `services` are those whose availability is wanted."""
    return [
        PeriodFacts(
            period=p,
            incidents=incident_facts(conn, p, service, now),
            availability=availability(conn, services, p, now),
            problems=problem_facts(conn, p, service),
        )
        for p in periods
    ]


def _opened_in(p: Period, service: str | None) -> list[ColumnElement[bool]]:
    c = incidents.c
    where = [c.opened_at >= p.start, c.opened_at < p.end]
    if service is not None:
        where.append(c.service == service)
    return where


def _raw(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A time column as the database gives it: on SQLite its UTC text, read by `_naive`
    (500,000 values through the column type take a second)."""
    return type_coerce(column, String) if conn.dialect.name == "sqlite" else column


def _naive(value: Any) -> datetime | None:
    """A stored time as a naive UTC datetime (compared with others of its kind only)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return datetime.fromisoformat(value)


def incident_facts(
    conn: Connection, p: Period, service: str | None, now: datetime
) -> list[IncidentFact]:
    """The incidents opened in `p`, with the verdicts of `correlation.sla` as of `now`
    (worked out on naive UTC times: the same comparisons, a third of the cost)."""
    c = incidents.c
    where = _opened_in(p, service)
    flags = _flags(conn, where)
    times = [c.opened_at, c.responded_at, c.resolved_at, c.respond_due, c.resolve_due]
    query = select(
        c.id, c.service, c.rule, c.priority, c.problem_id, *(_raw(conn, t) for t in times)
    ).where(*where)
    at = now.astimezone(UTC).replace(tzinfo=None)
    out = []
    for id_, svc, rule, priority, problem_id, *raw in conn.execute(query):
        opened, responded, resolved, respond_due, resolve_due = map(_naive, raw)
        assert opened is not None
        answered = responded is not None and (resolved is None or responded <= resolved)
        reopened, auto = flags.get(id_, (False, False))
        out.append(
            IncidentFact(
                id=id_,
                service=svc,
                rule=rule,
                priority=priority,
                opened_at=opened.replace(tzinfo=UTC),
                ack_s=(responded - opened).total_seconds() if answered and responded else None,
                fix_s=None if resolved is None else (resolved - opened).total_seconds(),
                respond=respond_verdict(respond_due, responded, resolved, at),
                resolve=resolve_verdict(resolve_due, resolved, at),
                reopened=reopened,
                auto_resolved=auto and resolved is not None,
                problem_id=problem_id,
            )
        )
    return out


def _flags(conn: Connection, where: list[ColumnElement[bool]]) -> dict[int, tuple[bool, bool]]:
    """Per incident: (reopened at least once, last resolved automatically)."""
    t = timeline.c
    ids = select(incidents.c.id).where(*where)
    query = (
        select(t.incident_id, t.kind)
        .where(t.kind.in_(_FLAGS), t.incident_id.in_(ids))
        .order_by(t.incident_id, t.id)
    )
    out: dict[int, tuple[bool, bool]] = {}
    for incident_id, kind in conn.execute(query):
        reopened, auto = out.get(incident_id, (False, False))
        if kind == TimelineKind.REOPENED.value:
            reopened = True
        else:
            auto = kind == TimelineKind.AUTO_RESOLVED.value
        out[incident_id] = (reopened, auto)
    return out


def alert_groups(
    conn: Connection, periods: Sequence[Period], service: str | None
) -> list[list[AlertGroup]]:
    """Per period, the alerts whose episode started in it, per rule and alertname; with
    `service`, only the alerts of that service's incidents. One pass over the alerts
    of all the periods (no index leads to them by time)."""
    a = alerts.c
    name = a.labels["alertname"].as_string()
    which = case(
        *((and_(a.starts_at >= p.start, a.starts_at < p.end), i) for i, p in enumerate(periods)),
        else_=-1,
    ).label("period")
    first, last = min(p.start for p in periods), max(p.end for p in periods)
    query = select(which, a.rule, name, func.count()).where(
        a.starts_at >= first, a.starts_at < last
    )
    if service is not None:
        query = query.join(incidents, incidents.c.id == a.incident_id).where(
            incidents.c.service == service
        )
    out: list[list[AlertGroup]] = [[] for _ in periods]
    for index, rule, alertname, count in conn.execute(query.group_by(which, a.rule, name)):
        if index >= 0:
            out[index].append(AlertGroup(rule, alertname, count))
    return out


def problem_facts(conn: Connection, p: Period, service: str | None) -> list[ProblemFact]:
    """The problems that incidents opened in `p` link, per service of those incidents."""
    c, pr = incidents.c, problems.c
    query = (
        select(pr.id, pr.title, pr.status, c.service, func.count())
        .select_from(incidents.join(problems, pr.id == c.problem_id))
        .where(*_opened_in(p, service))
        .group_by(pr.id, pr.title, pr.status, c.service)
    )
    return [ProblemFact(*row) for row in conn.execute(query)]


def known_services(conn: Connection, name: str) -> bool:
    """Whether any incident names the service."""
    found = conn.execute(select(incidents.c.id).where(incidents.c.service == name).limit(1))
    return found.first() is not None


# ---- availability over a period


def availability(
    conn: Connection, services: Sequence[str], p: Period, now: datetime
) -> dict[str, Uptime]:
    """Seconds per state of each service over `p`, adding up to its length: exact from
    the state changes where they are kept (checkstore.RAW_DAYS), from the daily
    aggregates of whole UTC days before that; time after `now`, and days nobody
    measured, count as unknown (as `checks.report.window_uptime` counts them)."""
    if not services:
        return {}
    subjects = [f"service:{s}" for s in services]
    raw_day = (now - timedelta(days=checkstore.RAW_DAYS - 1)).astimezone(UTC).date()
    raw_from = datetime.combine(raw_day, time(), UTC)
    end = min(p.end, now)
    exact_from = max(p.start, raw_from)
    history = checkstore.changes(conn, subjects, exact_from) if exact_from < end else {}
    older: dict[str, Uptime] = {}
    if p.start < raw_from:
        first = p.start.astimezone(UTC).date()
        last = min(raw_from, p.end).astimezone(UTC).date() - timedelta(days=1)
        if first <= last:
            older = checkstore.daily(conn, subjects, first, last)
    out = {}
    for name, subject in zip(services, subjects, strict=True):
        u = older.get(subject, Uptime())
        if exact_from < end:
            u += aggregate(history.get(subject, []), exact_from, end)
        out[name] = _padded(u, p.seconds)
    return out


def _padded(u: Uptime, seconds: float) -> Uptime:
    known = u.up_s + u.down_s + u.maintenance_s + u.unknown_s
    missing = seconds - known
    return u.plus(State.UNKNOWN, missing) if missing > 0 else u


# ---- one incident


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident with everything its post-incident review shows."""

    incident: Incident
    alerts: list[StoredAlert]
    timeline: list[TimelineEntry]
    problem: ProblemRecord | None
    parent: Incident | None
    symptoms: list[Incident]


def incident_review(conn: Connection, incident_id: int) -> IncidentRecord | None:
    inc = repo.get_incident(conn, incident_id)
    if inc is None:
        return None
    found = repo.get_problem(conn, inc.problem_id) if inc.problem_id else None
    parent = repo.get_incident(conn, inc.parent_id) if inc.parent_id else None
    symptoms = conn.execute(
        select(incidents).where(incidents.c.parent_id == incident_id).order_by(incidents.c.id)
    )
    return IncidentRecord(
        inc,
        repo.alerts_of(conn, incident_id),
        repo.timeline_of(conn, incident_id),
        found[0] if found else None,
        parent,
        [repo.incident_from_row(r) for r in symptoms],
    )
