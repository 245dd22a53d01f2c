"""Alert search: stored alerts by label matchers, state and time, and the episodes of
one fingerprint (docs/api.md, Searching alerts)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import decode_cursor, encode_cursor, page_limit, since_param, store_of
from itsmd.correlation.matchers import MatcherError, Selector, parse_selector
from itsmd.models import StoredAlert
from itsmd.runtime.actions import NotFound
from itsmd.store import alertsearch
from itsmd.store.alertsearch import AlertQuery, AlertState, state_of
from itsmd.views import found_alert_json

# Candidate rows one request looks at before it answers with what it found and a
# cursor to go on from: a rare match on a large table is then several short
# requests, not one that holds a connection for seconds.
SCAN = 50_000
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
# A selector with braces, after an optional alert name (`DiskFull{...}`).
_SELECTOR = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*\s*)?\{")
_STATES = ", ".join(AlertState)
_STATE_NAMES = frozenset(s.value for s in AlertState)


async def list_alerts(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    query = request.query
    limit = page_limit(query.get("limit"))
    search = AlertQuery(
        selectors=tuple(_filter(text) for text in query.getall("filter", [])),
        states=_states(query.getall("state", [])),
        since=since_param(query.get("since"), runtime.clock()),
        before_id=decode_cursor(query.get("cursor")),
    )
    page = await store_of(runtime).read(
        lambda conn: alertsearch.search_page(conn, search, limit, scan=SCAN)
    )
    resume = page.resume_below
    return web.json_response(
        {
            "alerts": [_json(a) for a in page.alerts],
            "next": None if resume is None else encode_cursor(resume),
        }
    )


async def show_alert(request: web.Request) -> web.Response:
    fingerprint = request.match_info["fingerprint"]
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise BadRequest(
            f"fingerprint: expected 16 lowercase hexadecimal digits, got {fingerprint!r}"
        )
    found = await store_of(request.app[RUNTIME]).read(
        lambda conn: alertsearch.episodes(conn, fingerprint)
    )
    if not found:
        raise NotFound(f"no alert with fingerprint {fingerprint}")
    return web.json_response({"fingerprint": fingerprint, "episodes": [_json(a) for a in found]})


def _json(alert: StoredAlert) -> dict[str, Any]:
    return found_alert_json(alert, state_of(alert).value)


def _filter(text: str) -> Selector:
    """One `filter` value, as Alertmanager's API v2 takes it: a selector
    (`{pod="web-7",severity=~"crit.*"}`) or matchers without braces (`pod="web-7"`)."""
    if not text.strip():
        raise BadRequest('filter: empty; expected a selector such as {pod="web-7"} or a matcher')
    if "\x00" in text:
        raise BadRequest("filter: must not contain a NUL character")
    braced = _SELECTOR.match(text) is not None
    try:
        return parse_selector(text if braced else f"{{{text}}}")
    except MatcherError as exc:
        problem = str(exc) if braced else _unbraced(exc)
        raise BadRequest(f"filter: {text!r}: {problem}") from None


def _unbraced(exc: MatcherError) -> str:
    """The parser's message about `{text}` as one about the text sent: its position
    and the excerpt it quotes without the braces added around it."""
    problem = str(exc)
    if exc.position is not None:
        problem = problem.replace(f"position {exc.position}:", f"position {exc.position - 1}:", 1)
    if problem.endswith("got '}'"):
        return problem[: -len("'}'")] + "end of input"
    if problem.endswith("}'"):
        return problem[:-2] + "'"
    return problem


def _states(values: list[str]) -> frozenset[AlertState]:
    """`state` repeated and/or as a comma-separated list."""
    names = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    wrong = [n for n in names if n not in _STATE_NAMES]
    if wrong:
        raise BadRequest(f"state: expected any of {_STATES}, got {','.join(wrong)!r}")
    return frozenset(AlertState(n) for n in names)
