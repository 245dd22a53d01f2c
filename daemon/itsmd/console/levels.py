"""Service levels as pages: per service its open incidents, availability against its
objective and its checks; capacity forecasts with their charts. The same store reads
as `api/levels.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.keys import RUNTIME
from itsmd.api.params import store_of
from itsmd.checks.report import SLO_WINDOW, WINDOWS, window_key
from itsmd.checks.spec import CheckSpec
from itsmd.console import charts
from itsmd.console.render import page, render
from itsmd.correlation.rules import RuleSet
from itsmd.durations import parse_time
from itsmd.models import Incident, IncidentStatus
from itsmd.store import checkstore, repo

OPEN_SHOWN = 500  # open incidents read for the service cards
# A check as a row: its spec, its last status (None before its first run), its report.
CheckRow = tuple[CheckSpec, checkstore.Status | None, Mapping[str, Any] | None]


@page
async def services(request: web.Request) -> web.StreamResponse:
    """Per service: open incidents, availability per window against its SLO, error
    budget, and its checks with their state."""
    runtime = request.app[RUNTIME]
    rules = runtime.rules
    now = runtime.clock()
    unresolved = repo.IncidentFilter(
        status=(IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED), order=repo.IncidentOrder.URGENT
    )

    def read(conn: Connection) -> tuple[dict[str, Any], list[checkstore.Status], list[Incident]]:
        report = checkstore.availability_report(conn, rules, now, list(WINDOWS), SLO_WINDOW)
        found = repo.list_incidents(conn, unresolved, OPEN_SHOWN)
        return report, checkstore.statuses(conn), found

    report, statuses, open_incidents = await store_of(runtime).read(read)
    by_check = {s.name: s for s in statuses}
    check_reports = {r["check"]: r for r in report["checks"]}

    def rows(service: str | None) -> list[CheckRow]:
        return [
            (c, by_check.get(c.name), check_reports.get(c.name))
            for c in rules.checks
            if c.service == service
        ]

    reports = {r["service"]: r for r in report["services"]}
    names = sorted(
        {s.name for s in rules.services}
        | {c.service for c in rules.checks if c.service}
        | {i.service for i in open_incidents if i.service}
    )
    cards = [
        _card(name, rules, reports.get(name), [i for i in open_incidents if i.service == name])
        | {"checks": rows(name)}
        for name in names
    ]
    return render(request, "services.html", cards=cards, loose=rows(None), now=now)


def _card(
    name: str, rules: RuleSet, doc: Mapping[str, Any] | None, incidents: Sequence[Incident]
) -> dict[str, Any]:
    catalog = rules.service(name)
    slo = catalog.slo if catalog is not None else None
    ratios = doc["availability"] if doc else {}
    return {
        "name": name,
        "slo": slo,
        "incidents": incidents,
        "report": doc,
        "measured_since": _parsed(doc["measured_since"]) if doc else None,
        "bars": [
            charts.availability_bar(window_key(w), ratios.get(window_key(w)), slo) for w in WINDOWS
        ],
    }


@page
async def capacity(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    names = {c.name for c in runtime.rules.checks}
    now = runtime.clock()
    found = await store_of(runtime).read(checkstore.statuses)
    entries = [entry for s in found if s.name in names for entry in s.capacity]
    charted = [
        (entry, charts.capacity_chart(entry, now), _parsed(entry.get("exhausts_at")))
        for entry in entries
    ]
    return render(request, "capacity.html", charted=charted, now=now)


def _parsed(text: Any) -> datetime | None:
    return parse_time(text) if isinstance(text, str) else None
