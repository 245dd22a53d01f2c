"""Reports: the service review over a period and the post-incident review of one
incident (docs/reports.md). The store gives the facts, `reports` makes the figures
and renders them: JSON by default, Markdown or a standalone HTML page with
`?format=md|html`, the same document in each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import MAX_ID, store_of, text_param
from itsmd.models import parse_incident_id
from itsmd.reports import html, markdown, postmortem
from itsmd.reports.figures import Catalog, PeriodFacts, RuleInfo, review
from itsmd.reports.periods import PeriodError, period, previous
from itsmd.runtime.actions import NotFound
from itsmd.runtime.state import Runtime
from itsmd.store import checkstore, reportstore

FORMATS = ("json", "md", "html")
_TYPES = {"md": "text/markdown", "html": "text/html"}


def report_format(text: str | None) -> str:
    if not text:
        return "json"
    if text not in FORMATS:
        raise BadRequest(f"format: expected one of {', '.join(FORMATS)}, got {text!r}")
    return text


async def review_document(
    runtime: Runtime,
    start: str | None,
    end: str | None,
    service: str | None,
    zone: str | None,
) -> dict[str, Any]:
    """The service review of `[start, end)` in `zone` (default UTC), for every service
    or one; 400 naming the parameter that is wrong. Also what the console's
    /reports page shows."""
    try:
        p = period(start, end, zone)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    before = previous(p)
    now = runtime.clock()
    rules = runtime.rules
    measured = sorted({c.service for c in rules.checks if c.service})
    slos = {s.name: s.slo for s in rules.services}
    known = service is None or service in slos or service in measured
    if service is not None:
        measured = [s for s in measured if s == service]
    services_by_check = {c.name: c.service for c in rules.checks}

    def read(conn: Connection) -> tuple[list[PeriodFacts], Catalog]:
        if not known and not reportstore.known_services(conn, service or ""):
            raise BadRequest(f"service: no service {service!r} in the catalog, checks or incidents")
        capacity = [
            {**entry, "service": services_by_check.get(s.name)}
            for s in checkstore.statuses(conn)
            if s.name in services_by_check
            for entry in s.capacity
        ]
        catalog = Catalog(
            slos=slos,
            rules=[RuleInfo(r.name, r.policy.auto_resolve) for r in rules.incident_rules],
            capacity=capacity,
        )
        return reportstore.review_facts(conn, periods, service, measured, now), catalog

    # The alerts are the longest read (every alert of the periods): beside the rest.
    db = store_of(runtime)
    periods = [p, before]
    (facts, catalog), groups = await asyncio.gather(
        db.read(read), db.read(lambda conn: reportstore.alert_groups(conn, periods, service))
    )
    current, earlier = (replace(f, alerts=g) for f, g in zip(facts, groups, strict=True))
    return review(current, earlier, catalog, service, now)


async def service_review(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    query = request.query
    fmt = report_format(query.get("format"))
    doc = await review_document(
        runtime,
        query.get("from"),
        query.get("to"),
        text_param(query, "service"),
        query.get("tz"),
    )
    return _answer(doc, fmt, markdown.review, html.review_page)


async def incident_document(runtime: Runtime, ref: str) -> dict[str, Any]:
    incident_id = parse_incident_id(ref)
    if incident_id is None or not 0 < incident_id <= MAX_ID:
        raise NotFound(f"no incident {ref!r} (ids look like INC-42)")
    found = await store_of(runtime).read(
        lambda conn: reportstore.incident_review(conn, incident_id)
    )
    if found is None:
        raise NotFound(f"no incident INC-{incident_id}")
    return postmortem.incident_review(
        found.incident,
        found.alerts,
        found.timeline,
        found.problem,
        found.parent,
        found.symptoms,
        runtime.clock(),
    )


async def incident_review(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    fmt = report_format(request.query.get("format"))
    doc = await incident_document(runtime, request.match_info["id"])
    return _answer(doc, fmt, markdown.incident, html.incident_page)


def _answer(
    doc: dict[str, Any],
    fmt: str,
    as_markdown: Callable[[dict[str, Any]], str],
    as_html: Callable[[dict[str, Any]], str],
) -> web.Response:
    if fmt == "json":
        return web.Response(body=orjson.dumps(doc), content_type="application/json")
    text = as_markdown(doc) if fmt == "md" else as_html(doc)
    return web.Response(text=text, content_type=_TYPES[fmt], charset="utf-8")
