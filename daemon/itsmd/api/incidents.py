"""Incident list, detail and lifecycle actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.api.params import (
    MAX_ID,
    decode_cursor,
    encode_cursor,
    json_object,
    page_limit,
    store_of,
    text_param,
    writer_of,
)
from itsmd.durations import parse_since
from itsmd.models import (
    Incident,
    IncidentStatus,
    Priority,
    StoredAlert,
    TimelineEntry,
    parse_incident_id,
)
from itsmd.runtime.actions import ACTIONS, NotFound, incident_action
from itsmd.store import repo
from itsmd.views import incident_detail_json, incident_json


async def list_incidents(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    query = request.query
    limit = page_limit(query.get("limit"))
    filters = repo.IncidentFilter(
        status=_enum_list(query, "status", IncidentStatus),
        priority=_enum_list(query, "priority", Priority),
        service=text_param(query, "service"),
        q=text_param(query, "q"),
        since=_since(query.get("since"), runtime.clock()),
        before_id=decode_cursor(query.get("cursor")),
    )
    found = await store_of(runtime).read(lambda conn: repo.list_incidents(conn, filters, limit + 1))
    page = found[:limit]
    more = len(found) > limit and page[-1].id is not None
    now = runtime.clock()
    return web.json_response(
        {
            "incidents": [incident_json(inc, now) for inc in page],
            "next": encode_cursor(page[-1].id) if more and page[-1].id else None,
        }
    )


async def show_incident(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    incident_id = _incident_id(request)

    def load(conn: Connection) -> tuple[Incident | None, list[StoredAlert], list[TimelineEntry]]:
        inc = repo.get_incident(conn, incident_id)
        if inc is None:
            return None, [], []
        return inc, repo.alerts_of(conn, incident_id), repo.timeline_of(conn, incident_id)

    inc, alerts, timeline = await store_of(runtime).read(load)
    if inc is None:
        raise NotFound(f"no incident {request.match_info['id']}")
    return web.json_response(incident_detail_json(inc, alerts, timeline, runtime.clock()))


async def act_on_incident(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}; actions: {', '.join(ACTIONS)}")
    body = await json_object(request)
    actor = request.get(ACTOR, "anonymous")
    if isinstance(body.get("actor"), str) and body["actor"].strip():
        by = body["actor"].strip()[:100]
        actor = by if actor == "anonymous" else f"{by} (token {actor})"
    work = incident_action(_incident_id(request), action, actor, body)
    inc = await writer_of(runtime).run(work)
    return web.json_response(incident_json(inc, runtime.clock()))


def _incident_id(request: web.Request) -> int:
    incident_id = parse_incident_id(request.match_info["id"])
    if incident_id is None or incident_id > MAX_ID:
        raise NotFound(f"no incident {request.match_info['id']!r} (ids look like INC-42)")
    return incident_id


def _enum_list(query: Any, name: str, enum: Any) -> list[Any]:
    values = [v for raw in query.getall(name, []) for v in raw.split(",") if v]
    try:
        return [enum(v) for v in values]
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise BadRequest(f"{name}: expected any of {allowed}, got {','.join(values)!r}") from None


def _since(text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise BadRequest(f"since: {exc}") from None
    except OverflowError:  # a duration longer ago than the calendar reaches (100000y)
        raise BadRequest(f"since: {text!r} is before the year 1") from None
