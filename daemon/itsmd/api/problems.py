"""Problems: recurring causes behind incidents (read side; docs/api.md, Problems)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.keys import RUNTIME
from itsmd.api.params import (
    MAX_ID,
    acting,
    decode_cursor,
    encode_cursor,
    json_object,
    page_limit,
    store_of,
    writer_of,
)
from itsmd.correlation.lifecycle import Conflict
from itsmd.durations import format_time
from itsmd.models import ProblemRecord, ProblemStatus, format_incident_id
from itsmd.runtime.actions import InvalidAction, NotFound
from itsmd.runtime.writer import UnitOfWork
from itsmd.store import repo
from itsmd.store.notes import note_problem
from itsmd.views import problem_json


async def list_problems(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    limit = page_limit(request.query.get("limit"))
    before = decode_cursor(request.query.get("cursor"))
    found = await store_of(runtime).read(lambda conn: repo.list_problems(conn, limit + 1, before))
    page = found[:limit]
    more = len(found) > limit
    return web.json_response(
        {
            "problems": [problem_json(p) for p in page],
            "next": encode_cursor(page[-1].id) if more else None,
        }
    )


def _problem_id(request: web.Request) -> int:
    text = request.match_info["id"]
    digits = text[4:] if text.upper().startswith("PRB-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10 or int(digits) > MAX_ID:
        raise NotFound(f"no problem {text!r}: ids look like PRB-7")
    return int(digits)


async def show_problem(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    problem_id = _problem_id(request)
    found = await store_of(runtime).read(lambda conn: repo.get_problem(conn, problem_id))
    if found is None:
        raise NotFound(f"no problem PRB-{problem_id}")
    problem, linked = found
    body = problem_json(problem)
    body["incidents"] = [
        {
            "id": format_incident_id(i.id),
            "title": i.title,
            "status": i.status.value,
            "opened_at": format_time(i.opened_at),
        }
        for i in linked
    ]
    return web.json_response(body)


# action -> (the body's text field, what it sets)
ACTIONS = {"root_cause": "text", "known_error": "workaround", "resolve": None}


async def act_on_problem(request: web.Request) -> web.Response:
    """Set the root cause, mark a known error with its workaround, or resolve."""
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}; actions: {', '.join(ACTIONS)}")
    problem_id = _problem_id(request)
    body = await json_object(request)
    field = ACTIONS[action]
    text = body.get(field) if field else None
    if field and (not isinstance(text, str) or not text.strip()):
        raise InvalidAction(f'{action} needs {{"{field}": "..."}}')

    actor = acting(request, body)
    done = await writer_of(runtime).run(problem_work(problem_id, action, text, actor))
    return web.json_response(problem_json(done))


def problem_work(
    problem_ref: int, action: str, text: str | None, actor: str
) -> UnitOfWork[ProblemRecord]:
    """The unit of work of a problem action (its text already checked) by `actor`, for
    the API and the console's forms alike."""

    def work(conn: Connection, now: datetime) -> ProblemRecord:
        found = repo.get_problem(conn, problem_ref)
        if found is None:
            raise NotFound(f"no problem PRB-{problem_ref}")
        if found[0].status is ProblemStatus.RESOLVED:
            raise Conflict(f"{found[0].ref} is resolved")
        if action == "root_cause":
            repo.update_problem(conn, problem_ref, root_cause=text, root_cause_by=actor)
        elif action == "known_error":
            repo.update_problem(
                conn,
                problem_ref,
                status=ProblemStatus.KNOWN_ERROR.value,
                workaround=text,
                workaround_by=actor,
            )
        else:
            repo.update_problem(
                conn,
                problem_ref,
                status=ProblemStatus.RESOLVED.value,
                resolved_at=now,
                resolved_by=actor,
            )
            note_problem(conn, "problem_resolved", problem_ref, now)
        updated = repo.get_problem(conn, problem_ref)
        assert updated is not None
        return updated[0]

    return work
