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
from itsmd.models import Incident, ProblemRecord, ResolvedBy, StoredAlert, TimelineEntry
from itsmd.reports.figures import AlertGroup, IncidentFact, PeriodFacts, ProblemFact
from itsmd.reports.periods import Period
from itsmd.store import checkstore, repo
from itsmd.store.tables import QUARTER_S, alert_counts, alerts, incidents, problems

_AUTO = ResolvedBy.AUTO.value


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


def _naive(value: datetime) -> datetime:
    """A stored time as a naive UTC datetime (compared with others of its kind only)."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: Any) -> datetime:
    """A stored time (not NULL) as an aware UTC datetime: parsing the text with its
    offset costs a fifth of replacing the zone of the naive one."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(f"{value}+00:00")


def incident_facts(
    conn: Connection, p: Period, service: str | None, now: datetime
) -> list[IncidentFact]:
    """The incidents opened in `p`, with the verdicts of `correlation.sla` as of `now`
    (worked out on naive UTC times: the same comparisons, a third of the cost), and the
    marks the timeline leaves on each (`reopens`, `resolved_by`: migration 0017)."""
    c = incidents.c
    times = [c.opened_at, c.responded_at, c.resolved_at, c.respond_due, c.resolve_due]
    query = select(
        c.id,
        c.service,
        c.rule,
        c.priority,
        c.problem_id,
        c.reopens,
        c.resolved_by,
        c.alert_count,
        *(_raw(conn, t) for t in times),
    ).where(*_opened_in(p, service))
    at = now.astimezone(UTC).replace(tzinfo=None)
    # SQLite's UTC text parses to the naive time at once (500,000 values: called as
    # few times as there are values, the parse is most of the cost).
    naive = datetime.fromisoformat if conn.dialect.name == "sqlite" else _naive
    out = []
    for id_, svc, rule, priority, problem_id, reopens, by, alert_count, *raw in conn.execute(
        query
    ).all():
        opened_raw, responded_raw, resolved_raw, respond_raw, resolve_raw = raw
        opened = naive(opened_raw)
        responded = responded_raw and naive(responded_raw)
        resolved = resolved_raw and naive(resolved_raw)
        answered = responded is not None and (resolved is None or responded <= resolved)
        out.append(
            IncidentFact(
                id_,
                svc,
                rule,
                priority,
                _aware(opened_raw),
                (responded - opened).total_seconds() if answered and responded else None,
                None if resolved is None else (resolved - opened).total_seconds(),
                respond_verdict(respond_raw and naive(respond_raw), responded, resolved, at),
                resolve_verdict(resolve_raw and naive(resolve_raw), resolved, at),
                reopens > 0,
                by == _AUTO and resolved is not None,
                problem_id,
                alert_count,
            )
        )
    return out


def alert_groups(
    conn: Connection, periods: Sequence[Period], service: str | None
) -> list[list[AlertGroup]]:
    """Per period, the alerts whose episode started in it, per rule and alertname; with
    `service`, only the alerts of that service's incidents. From the quarter-hour
    counts (`alert_counts`) when the period's ends fall on quarter hours and it is not
    one service's; else from the alerts themselves, in one pass over the alerts of all
    such periods (no index leads to them by time)."""
    counted = service is None
    out: dict[int, list[AlertGroup]] = {}
    scanned: list[int] = []
    for index, p in enumerate(periods):
        if counted and _on_quarters(p):
            out[index] = _counted_groups(conn, p)
        else:
            scanned.append(index)
    if scanned:
        groups = _scanned_groups(conn, [periods[i] for i in scanned], service)
        out.update(zip(scanned, groups, strict=True))
    return [out[i] for i in range(len(periods))]


def _on_quarters(p: Period) -> bool:
    return all(t.timestamp() % QUARTER_S == 0 for t in (p.start, p.end))


def _counted_groups(conn: Connection, p: Period) -> list[AlertGroup]:
    q = alert_counts.c
    query = (
        select(q.rule, q.alertname, func.sum(q.alerts))
        .where(q.quarter >= int(p.start.timestamp()), q.quarter < int(p.end.timestamp()))
        .group_by(q.rule, q.alertname)
    )
    return [
        AlertGroup(rule or None, alertname or None, int(count))
        for rule, alertname, count in conn.execute(query)
        if count
    ]


def _scanned_groups(
    conn: Connection, periods: Sequence[Period], service: str | None
) -> list[list[AlertGroup]]:
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
    alerts = repo.alerts_of(conn, incident_id)
    return IncidentRecord(
        inc,
        alerts,
        repo.timeline_of(conn, incident_id, alerts),
        found[0] if found else None,
        parent,
        [repo.incident_from_row(r) for r in symptoms],
    )
