"""Maintenance windows: those of the rule files (read only) and those created here.

Windows created through the API are stored, join the rule files' windows at once
on this replica and within a second on the others (the sweep reads them), and
are checked exactly like a `maintenance:` entry of a rule file.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.api.params import parse_json, read_body, writer_of
from itsmd.correlation.lifecycle import Conflict
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow, parse_window
from itsmd.durations import format_duration, format_optional_time, format_time
from itsmd.runtime.actions import NotFound
from itsmd.runtime.state import Runtime
from itsmd.sources import PayloadError
from itsmd.store import repo
from itsmd.yamlsource import LoadError

MAX_BODY = 64 * 1024


async def list_windows(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    now = runtime.clock()
    windows = [window_json(w, now) for w in runtime.rules.maintenance]
    return web.json_response({"maintenance": windows, "next": None})


async def create_window(request: web.Request) -> web.Response:
    """POST /api/v1/maintenance (admin): the body as a `maintenance:` entry, plus an
    optional `comment` and the `actor` the change is made for."""
    runtime = request.app[RUNTIME]
    text, by = await _body(request)
    window = _window(text)
    await save_window(runtime, window, _actor(request, by))
    saved = next((w for w in runtime.api_windows if w.name == window.name), window)
    return web.json_response(window_json(saved, runtime.clock()), status=201)


async def save_window(runtime: Runtime, window: MaintenanceWindow, actor: str) -> None:
    """Store a window created through the API and put it in force on this replica.
    Conflict when a window of that name exists (of a rule file or of the API)."""
    _not_from_rules(runtime, window.name)

    def work(conn: Connection, now: datetime) -> list[MaintenanceWindow]:
        if repo.window_exists(conn, window.name):
            raise Conflict(
                f"a maintenance window named {window.name!r} exists; end or delete it first"
            )
        repo.add_window(conn, window, actor, now)
        return repo.api_windows(conn)

    runtime.set_api_windows(await writer_of(runtime).run(work))


async def end_window(request: web.Request) -> web.Response:
    """POST /api/v1/maintenance/{name}/end (admin): the window ends now and stays
    listed, as ended."""
    runtime = request.app[RUNTIME]
    window = await end_window_now(runtime, request.match_info["name"])
    return web.json_response(window_json(window, runtime.clock()))


async def end_window_now(runtime: Runtime, name: str) -> MaintenanceWindow:
    """End a window of the API now: its end becomes now, so alerts it held back from
    now on open incidents, and it is listed as ended. NotFound for an unknown name;
    Conflict for a window of a rule file or one that has ended already."""
    if "\x00" in name:  # no stored name holds one (PostgreSQL cannot store it)
        raise NotFound(f"no maintenance window named {name!r}")
    _not_from_rules(runtime, name)

    def work(conn: Connection, now: datetime) -> tuple[list[MaintenanceWindow], MaintenanceWindow]:
        window = next((w for w in repo.api_windows(conn) if w.name == name), None)
        if window is None:
            if repo.window_exists(conn, name):
                raise Conflict(
                    f"maintenance window {name!r} is not in force (its match no longer "
                    "loads, see the log); delete it"
                )
            raise NotFound(f"no maintenance window named {name!r}")
        if window.ended(now):
            assert window.end is not None
            raise Conflict(
                f"maintenance window {name!r} ended at {format_time(window.end)}; nothing to end"
            )
        repo.end_window(conn, name, now)
        windows = repo.api_windows(conn)
        return windows, next(w for w in windows if w.name == name)

    windows, ended = await writer_of(runtime).run(work)
    runtime.set_api_windows(windows)
    return ended


async def delete_window(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    name = request.match_info["name"]
    if "\x00" in name:  # no stored name holds one (PostgreSQL cannot store it)
        raise NotFound(f"no maintenance window named {name!r}")
    _not_from_rules(runtime, name)

    def work(conn: Connection, _now: datetime) -> list[MaintenanceWindow]:
        if not repo.delete_window(conn, name):
            raise NotFound(f"no maintenance window named {name!r}")
        return repo.api_windows(conn)

    runtime.set_api_windows(await writer_of(runtime).run(work))
    return web.Response(status=204)


def window_json(w: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    occurrence = w.occurrence(now)
    return {
        "name": w.name,
        "source": "api" if w.file == API_WINDOWS else f"{w.file}:{w.line}",
        "match": [str(s) for s in w.match],
        "action": w.action.value,
        "start": format_optional_time(w.start),
        "end": format_optional_time(w.end),
        "every": w.every,
        "duration": format_duration(w.duration) if w.every else None,
        "timezone": w.timezone,
        "change": w.change,
        "comment": w.comment,
        "created_by": w.created_by,
        "active": occurrence is not None,
        "active_until": format_optional_time(occurrence[1]) if occurrence else None,
        "state": "active" if occurrence else "ended" if w.ended(now) else "scheduled",
    }


async def _body(request: web.Request) -> tuple[str, str | None]:
    """The body as text once it is JSON (so UTF-8) of a sane depth (the window parser
    reads it as YAML, which recurses), and its `actor`, taken out. A one-off window
    without `start` starts now, by this daemon's clock (not the client's)."""
    raw = await read_body(request, MAX_BODY)
    if not raw.strip():
        raise BadRequest("body: expected a JSON object, got an empty body")
    body = parse_json(raw)
    if not isinstance(body, dict):
        return raw.decode(), None  # the window parser says what is wrong
    starts_now = "end" in body and "start" not in body and "every" not in body
    if "actor" not in body and not starts_now:
        return raw.decode(), None  # as sent: messages name its lines
    actor = body.pop("actor", None)
    if actor is not None and not isinstance(actor, str):
        raise PayloadError("actor", f"expected a string, got {type(actor).__name__}")
    if starts_now:
        body = {"start": format_time(request.app[RUNTIME].clock()), **body}
    return orjson.dumps(body).decode(), actor


def _actor(request: web.Request, by: str | None) -> str:
    """Who made the change: the token's name, and the person the client names (its
    `actor`), as incident actions record it."""
    actor = str(request.get(ACTOR, "anonymous"))
    if by is not None and by.strip():
        named = by.strip()[:100]
        return named if actor == "anonymous" else f"{named} (token {actor})"
    return actor


def _window(text: str) -> MaintenanceWindow:
    try:
        return parse_window(text)
    except LoadError as exc:
        first = exc.findings[0].message
        # "window (pg).match: ..." names the field window.match
        field = re.sub(r" \([^)]*\)", "", first.partition(":")[0])
        raise PayloadError(
            field if " " not in field else "", "; ".join(p.message for p in exc.findings)
        ) from None


def _not_from_rules(runtime: Runtime, name: str) -> None:
    for w in runtime.rules.maintenance:
        if w.name == name and w.file != API_WINDOWS:
            raise Conflict(
                f"maintenance window {name!r} is defined in {w.file}:{w.line}; "
                "change it there (windows from rule files reload with the rules)"
            )
