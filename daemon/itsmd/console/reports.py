"""The console's /reports page: a form for the period, the service and the time zone,
and the service review the API answers for them (`api.reports.review_document`),
drawn by the same renderer as `GET /api/v1/reports/review?format=html`."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import text_param
from itsmd.api.reports import review_document
from itsmd.console.render import page, render
from itsmd.reports import html
from itsmd.reports.periods import PeriodError, zone_of


def _last_month(today: date) -> tuple[str, str]:
    first = today.replace(day=1)
    before = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return before.isoformat(), first.isoformat()


@page
async def reports(request: web.Request) -> web.StreamResponse:
    """Without parameters: last month in UTC (or in `tz`)."""
    runtime = request.app[RUNTIME]
    query = request.query
    zone = (query.get("tz") or "UTC").strip()
    try:
        today = runtime.clock().astimezone(zone_of(zone)).date()
    except PeriodError:
        today = runtime.clock().date()
    start, end = _last_month(today)
    form = {
        "from": (query.get("from") or start).strip(),
        "to": (query.get("to") or end).strip(),
        "service": (text_param(query, "service") or "").strip(),
        "tz": zone,
    }
    error = None
    fragment = None
    try:
        doc = await review_document(
            runtime, form["from"], form["to"], form["service"] or None, form["tz"]
        )
        fragment = html.review_fragment(doc)
    except BadRequest as exc:
        error = str(exc)
    rules = runtime.rules
    services = sorted(
        {s.name for s in rules.services} | {c.service for c in rules.checks if c.service}
    )
    return render(
        request,
        "reports.html",
        status=400 if error else 200,
        form=form,
        services=services,
        fragment=fragment,
        error=error,
    )
