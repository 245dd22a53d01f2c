"""The console's pages (GET): the same store reads as the JSON API's handlers, as HTML."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import MAX_ID, store_of, text_param
from itsmd.console.present import alert_view, collapse
from itsmd.console.render import page, render
from itsmd.correlation.matchers import MatcherError, Selector, parse_selector
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow
from itsmd.correlation.sla import SlaState, Verdict, sla_state
from itsmd.models import (
    Incident,
    IncidentStatus,
    Priority,
    ProblemRecord,
    StoredAlert,
    TimelineEntry,
    parse_incident_id,
)
from itsmd.runtime.actions import NotFound
from itsmd.store import alertsearch, repo

PAGE_SIZE = 50
ALERT_SCAN = 20_000  # rows one alert search looks at before it offers "more"
ALERTS_SHOWN = 50  # alerts of each group on an incident page, unless ?alerts=all


@page
async def root(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": "/incidents"})


# ---- incidents


@dataclass(frozen=True, slots=True)
class Row:
    """An incident as a list or a page shows it."""

    inc: Incident
    sla: SlaState

    @property
    def next_due(self) -> tuple[str, datetime, bool] | None:
        """The SLA target to watch now: (what, due, breached), or None."""
        s, inc = self.sla, self.inc
        if inc.resolved_at is not None:
            return None
        if s.respond is not None and s.respond_due is not None and inc.responded_at is None:
            return "respond", s.respond_due, s.respond is Verdict.BREACHED
        if s.resolve is not None and s.resolve_due is not None:
            return "resolve", s.resolve_due, s.resolve is Verdict.BREACHED
        return None


def _choices(query: MultiMapping[str], name: str, enum: Any) -> list[Any]:
    values = [v for raw in query.getall(name, []) for v in raw.split(",") if v]
    try:
        return [enum(v) for v in values]
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise BadRequest(f"{name}: expected any of {allowed}, got {','.join(values)!r}") from None


@page
async def incidents(request: web.Request) -> web.StreamResponse:
    """Open and acknowledged first, by priority, then newest; filters in the URL."""
    runtime = request.app[RUNTIME]
    query = request.query
    filters = incident_filter(query)
    found = await store_of(runtime).read(
        lambda conn: repo.list_incidents(conn, filters, PAGE_SIZE + 1)
    )
    now = runtime.clock()
    shown = found[:PAGE_SIZE]
    kept = {
        k: v for k, v in query.items() if k in ("status", "priority", "service", "assignee", "q")
    }
    next_url = None
    if len(found) > PAGE_SIZE:
        cursor = repo.encode_cursor(repo.IncidentCursor.after(shown[-1], filters.order))
        next_url = "/incidents?" + urlencode([*_multi(query), ("cursor", cursor)])
    return render(
        request,
        "incidents.html",
        rows=[Row(inc, sla_state(inc, now)) for inc in shown],
        filters=filters,
        filtered=bool(kept),
        next_url=next_url,
        first_url="/incidents?" + urlencode(_multi(query)) if filters.after else None,
        statuses=list(IncidentStatus),
        priorities=list(Priority),
        services=sorted({s.name for s in runtime.rules.services}),
        now=now,
    )


def incident_filter(query: MultiMapping[str]) -> repo.IncidentFilter:
    """The list's filters from the URL, most urgent first, from its cursor on."""
    cursor = query.get("cursor")
    try:
        after = repo.decode_cursor(cursor) if cursor else None
    except ValueError:
        after = None
    if cursor and (after is None or after.order is not repo.IncidentOrder.URGENT):
        raise BadRequest("cursor: not a cursor from this list's next page")
    return repo.IncidentFilter(
        status=_choices(query, "status", IncidentStatus),
        priority=_choices(query, "priority", Priority),
        service=text_param(query, "service"),
        assignee=text_param(query, "assignee"),
        q=text_param(query, "q"),
        order=repo.IncidentOrder.URGENT,
        after=after,
    )


def _multi(query: MultiMapping[str]) -> list[tuple[str, str]]:
    """The list's filters as they came (repeated ones too), without its cursor."""
    return [(k, v) for k, v in query.items() if k != "cursor" and v]


def incident_id(text: str) -> int:
    found = parse_incident_id(text)
    if found is None or not 0 < found <= MAX_ID:
        raise NotFound(f"no incident {text!r} (ids look like INC-42)")
    return found


@dataclass(frozen=True, slots=True)
class IncidentPage:
    inc: Incident
    alerts: list[StoredAlert]
    timeline: list[TimelineEntry]
    problem: ProblemRecord | None
    parent: Incident | None


async def load_incident(request: web.Request, ref: str) -> IncidentPage:
    runtime = request.app[RUNTIME]
    wanted = incident_id(ref)

    def load(conn: Connection) -> IncidentPage | None:
        inc = repo.get_incident(conn, wanted)
        if inc is None:
            return None
        found = repo.get_problem(conn, inc.problem_id) if inc.problem_id else None
        parent = repo.get_incident(conn, inc.parent_id) if inc.parent_id else None
        alerts = repo.alerts_of(conn, wanted)
        return IncidentPage(
            inc,
            alerts,
            repo.timeline_of(conn, wanted, alerts),
            found[0] if found else None,
            parent,
        )

    loaded = await store_of(runtime).read(load)
    if loaded is None:
        raise NotFound(f"no incident INC-{wanted}")
    return loaded


def incident_response(
    request: web.Request, loaded: IncidentPage, status: int = 200, error: str | None = None
) -> web.Response:
    """The incident page; `?alerts=all` shows every alert, not the newest ALERTS_SHOWN
    of each group (an incident of 500 alerts renders five times faster)."""
    now = request.app[RUNTIME].clock()
    inc = loaded.inc
    shown = None if request.query.get("alerts") == "all" else ALERTS_SHOWN
    return render(
        request,
        "incident.html",
        status=status,
        row=Row(inc, sla_state(inc, now)),
        inc=inc,
        alerts=alert_view(loaded.alerts, shown),
        timeline=collapse(loaded.timeline),
        problem=loaded.problem,
        parent=loaded.parent,
        error=error,
        now=now,
    )


@page
async def incident(request: web.Request) -> web.StreamResponse:
    return incident_response(request, await load_incident(request, request.match_info["id"]))


# ---- alerts


@page
async def alerts(request: web.Request) -> web.StreamResponse:
    """Alerts by matchers (`q` or `filter`) and state, newest first, each linked to its
    incident."""
    runtime = request.app[RUNTIME]
    query = request.query
    text = (text_param(query, "q") or text_param(query, "filter") or "").strip()
    states = _choices(query, "state", alertsearch.AlertState)
    selectors, error = _selectors(text)
    search = alertsearch.AlertQuery(
        selectors=selectors,
        states=frozenset(states),
        before_id=query_id(query.get("before"), "before"),
    )
    result = None
    if error is None:
        result = await store_of(runtime).read(
            lambda conn: alertsearch.search_page(conn, search, PAGE_SIZE, scan=ALERT_SCAN)
        )
    next_url = None
    if result is not None and result.resume_below is not None:
        next_url = "/alerts?" + urlencode(
            [
                *((k, v) for k, v in query.items() if k != "before" and v),
                ("before", str(result.resume_below)),
            ]
        )
    return render(
        request,
        "alerts.html",
        status=400 if error else 200,
        text=text,
        states=list(alertsearch.AlertState),
        chosen={s.value for s in states},
        found=[(a, alertsearch.state_of(a)) for a in result.alerts] if result else [],
        next_url=next_url,
        error=error,
    )


def _selectors(text: str) -> tuple[tuple[Selector, ...], str | None]:
    """The search's matchers (braces optional), or why they do not parse."""
    if not text:
        return (), None
    try:
        return (parse_selector(text if "{" in text else "{" + text + "}"),), None
    except MatcherError as exc:
        return (), f"q: {exc}"


# ---- problems


@page
async def problems(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    before = query_id(request.query.get("before"), "before")
    found = await store_of(runtime).read(
        lambda conn: repo.list_problems(conn, PAGE_SIZE + 1, before)
    )
    shown = found[:PAGE_SIZE]
    next_url = f"/problems?before={shown[-1].id}" if len(found) > PAGE_SIZE else None
    return render(request, "problems.html", problems=shown, next_url=next_url)


def query_id(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        raise BadRequest(f"{name}: not a position from this list's next page")
    return int(text)


def problem_id(text: str) -> int:
    digits = text[4:] if text.upper().startswith("PRB-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10 or int(digits) > MAX_ID:
        raise NotFound(f"no problem {text!r}: ids look like PRB-7")
    return int(digits)


async def load_problem(request: web.Request, ref: str) -> tuple[ProblemRecord, list[Incident]]:
    wanted = problem_id(ref)
    found = await store_of(request.app[RUNTIME]).read(lambda conn: repo.get_problem(conn, wanted))
    if found is None:
        raise NotFound(f"no problem PRB-{wanted}")
    return found


def problem_response(
    request: web.Request,
    found: tuple[ProblemRecord, list[Incident]],
    status: int = 200,
    error: str | None = None,
) -> web.Response:
    problem, linked = found
    return render(
        request, "problem.html", status=status, problem=problem, linked=linked, error=error
    )


@page
async def problem(request: web.Request) -> web.StreamResponse:
    return problem_response(request, await load_problem(request, request.match_info["id"]))


# ---- maintenance


def split_windows(
    windows: Sequence[MaintenanceWindow], now: datetime
) -> dict[str, list[MaintenanceWindow]]:
    """Active now, coming (or recurring), and past."""
    out: dict[str, list[MaintenanceWindow]] = {"active": [], "coming": [], "past": []}
    for w in windows:
        if w.occurrence(now) is not None:
            out["active"].append(w)
        elif w.ended(now):
            out["past"].append(w)
        else:
            out["coming"].append(w)
    out["past"].sort(key=lambda w: w.end or now, reverse=True)
    return out


def maintenance_response(
    request: web.Request,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    runtime = request.app[RUNTIME]
    now = runtime.clock()
    return render(
        request,
        "maintenance.html",
        status=status,
        groups=split_windows(runtime.rules.maintenance, now),
        api_file=API_WINDOWS,
        error=error,
        form=form or {},
        now=now,
    )


@page
async def maintenance(request: web.Request) -> web.StreamResponse:
    return maintenance_response(request)
