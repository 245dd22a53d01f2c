"""Problems: recurring causes behind incidents (read side; DESIGN §3)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from itsmd.actions import NotFound
from itsmd.api.incidents import _cursor, _db, _encode_cursor, _limit
from itsmd.api.keys import RUNTIME
from itsmd.durations import format_optional_time, format_time
from itsmd.models import ProblemRecord, format_incident_id
from itsmd.store import repo


async def list_problems(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    limit = _limit(request.query.get("limit"))
    before = _cursor(request.query.get("cursor"))
    found = await _db(runtime).read(lambda conn: repo.list_problems(conn, limit + 1, before))
    page = found[:limit]
    more = len(found) > limit
    return web.json_response({
        "problems": [problem_json(p) for p in page],
        "next": _encode_cursor(page[-1].id) if more else None,
    })  # fmt: skip


async def show_problem(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    text = request.match_info["id"]
    digits = text[4:] if text.upper().startswith("PRB-") else text
    if not digits.isdecimal() or len(digits) > 18:
        raise NotFound(f"no problem {text!r}: ids look like PRB-7")
    problem_id = int(digits)
    found = await _db(runtime).read(lambda conn: repo.get_problem(conn, problem_id))
    if found is None:
        raise NotFound(f"no problem PRB-{problem_id}")
    problem, linked = found
    body = problem_json(problem)
    body["incidents"] = [
        {"id": format_incident_id(i.id), "title": i.title, "status": i.status.value,
         "opened_at": format_time(i.opened_at)}
        for i in linked
    ]  # fmt: skip
    return web.json_response(body)


def problem_json(p: ProblemRecord) -> dict[str, Any]:
    return {
        "id": p.ref, "status": p.status.value, "title": p.title, "rule": p.rule, "key": p.key,
        "opened_at": format_time(p.opened_at), "resolved_at": format_optional_time(p.resolved_at),
        "root_cause": p.root_cause, "workaround": p.workaround,
        "incident_count": p.incident_count,
    }  # fmt: skip
