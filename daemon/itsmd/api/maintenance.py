"""Maintenance windows: those of the rule files (read only) and those created here.

Windows created through the API are stored, join the rule files' windows at once
on this replica and within a second on the others (the sweep reads them), and
are checked exactly like a `maintenance:` entry of a rule file.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import ACTOR, RUNTIME
from itsmd.api.params import parse_json, read_body, writer_of
from itsmd.correlation.lifecycle import Conflict
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow, parse_window
from itsmd.durations import format_duration, format_optional_time
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
    runtime = request.app[RUNTIME]
    window = _window(await _body(request))
    _not_from_rules(runtime, window.name)
    actor = request.get(ACTOR, "anonymous")

    def work(conn: Connection, now: datetime) -> list[MaintenanceWindow]:
        if any(w.name == window.name for w in repo.api_windows(conn)):
            raise Conflict(f"a maintenance window named {window.name!r} exists; delete it first")
        repo.add_window(conn, window, actor, now)
        return repo.api_windows(conn)

    runtime.set_api_windows(await writer_of(runtime).run(work))
    return web.json_response(window_json(window, runtime.clock()), status=201)


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
        "active": occurrence is not None,
        "active_until": format_optional_time(occurrence[1]) if occurrence else None,
    }


async def _body(request: web.Request) -> str:
    """The body as text once it is JSON (so UTF-8) of a sane depth: the window parser
    reads it as YAML, which recurses."""
    raw = await read_body(request, MAX_BODY)
    if not raw.strip():
        raise BadRequest("body: expected a JSON object, got an empty body")
    parse_json(raw)
    return raw.decode()


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
