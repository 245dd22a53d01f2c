"""The console's forms (POST): read, check the CSRF token, act through the same use
cases as the JSON API, then send the browser back to a page (303)."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, quote

from aiohttp import hdrs, web

from itsmd.api import auth
from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.maintenance import end_window_now, save_window
from itsmd.api.params import read_body, writer_of
from itsmd.api.problems import problem_work
from itsmd.console.pages import (
    incident_id,
    incident_response,
    load_incident,
    load_problem,
    maintenance_response,
    problem_id,
    problem_response,
)
from itsmd.console.render import HEADERS, error_page, page, render, see_other
from itsmd.console.session import (
    CSRF_FIELD,
    NAME_COOKIE,
    clean_name,
    csrf_ok,
    safe_next,
    viewer_of,
)
from itsmd.correlation.lifecycle import Conflict
from itsmd.correlation.rules import parse_window
from itsmd.durations import format_time, parse_duration, parse_time
from itsmd.runtime.actions import InvalidAction, NotFound, incident_action
from itsmd.yamlsource import LoadError

FORM = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024
MAX_FIELDS = 32


class CsrfRefused(Exception):
    """A form without this session's CSRF token (403)."""


async def read_form(request: web.Request, *, csrf: bool = True) -> dict[str, str]:
    """A form's fields (the first value of each), its CSRF token checked."""
    media = request.headers.get(hdrs.CONTENT_TYPE, "").partition(";")[0].strip().lower()
    if media != FORM:
        raise BadRequest(f"body: expected a form ({FORM}), got {media or 'none'}")
    raw = await read_body(request, MAX_FORM, "a form's limit")
    try:
        pairs = parse_qsl(
            raw.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body: not a form: {exc}") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in value:
            raise BadRequest(f"{key}: must not contain a NUL character")
        fields.setdefault(key, value)
    if csrf and not csrf_ok(request, fields.get(CSRF_FIELD, "")):
        raise CsrfRefused(
            "this form is out of date or not from this page (its CSRF token does not match "
            "your session): reload the page and send it again"
        )
    return fields


# ---- incidents

# The console's action names are the API's (`ack`, not the button's `Acknowledge`).
INCIDENT_DONE = {
    "ack": "Acknowledged",
    "assign": "Assigned",
    "comment": "Commented on",
    "resolve": "Resolved",
    "reopen": "Reopened",
}


@page
async def act_on_incident(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    if action not in INCIDENT_DONE:
        raise NotFound(f"no action {action!r}; actions: {', '.join(INCIDENT_DONE)}")
    wanted = incident_id(request.match_info["id"])
    try:
        fields = await read_form(request)
    except CsrfRefused as exc:
        return error_page(request, 403, str(exc))
    body: dict[str, str] = {k: fields[k] for k in ("note", "text", "assignee") if k in fields}
    actor = viewer_of(request).name
    try:
        inc = await writer_of(runtime).run(incident_action(wanted, action, actor, body))
    except (Conflict, InvalidAction) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        loaded = await load_incident(request, request.match_info["id"])
        return incident_response(request, loaded, status, str(exc))
    return see_other(f"/incidents/{inc.ref}", f"{INCIDENT_DONE[action]} {inc.ref}")


# ---- problems

# action -> (the form's text field, what is done)
PROBLEM_ACTIONS = {
    "root_cause": ("text", "Root cause set on"),
    "known_error": ("workaround", "Known error recorded on"),
    "resolve": (None, "Resolved"),
}


@page
async def act_on_problem(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    if action not in PROBLEM_ACTIONS:
        raise NotFound(f"no action {action!r}; actions: {', '.join(PROBLEM_ACTIONS)}")
    wanted = problem_id(request.match_info["id"])
    try:
        fields = await read_form(request)
    except CsrfRefused as exc:
        return error_page(request, 403, str(exc))
    field, done = PROBLEM_ACTIONS[action]
    text = fields.get(field, "").strip() if field else None
    try:
        if field and not text:
            raise InvalidAction(f"{field}: required and must not be empty")
        actor = viewer_of(request).name
        problem = await writer_of(runtime).run(problem_work(wanted, action, text, actor))
    except (Conflict, InvalidAction) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        found = await load_problem(request, request.match_info["id"])
        return problem_response(request, found, status, str(exc))
    return see_other(f"/problems/{problem.ref}", f"{done} {problem.ref}")


# ---- maintenance


def window_document(fields: dict[str, str], now: datetime) -> str:
    """The form as a `maintenance:` entry (JSON), starting now and lasting `duration`
    or until `until`; checked by the same parser as the API's windows."""
    doc: dict[str, str] = {"name": fields.get("name", "").strip()}
    doc["match"] = fields.get("match", "").strip()
    doc["start"] = format_time(now)
    until_text = fields.get("until", "").strip()
    duration_text = fields.get("duration", "").strip()
    if until_text:
        doc["end"] = _until(until_text)
    else:
        try:
            doc["end"] = format_time(now + parse_duration(duration_text or "nothing"))
        except ValueError:
            raise InvalidAction(
                f"duration: expected a duration like 2h or 30m, got {duration_text!r}; "
                "or give until"
            ) from None
    for key in ("comment", "change"):
        if fields.get(key, "").strip():
            doc[key] = fields[key].strip()
    return json.dumps(doc)


def _until(text: str) -> str:
    """RFC 3339, or the browser's `datetime-local` form (YYYY-MM-DDTHH:MM), read as UTC."""
    for candidate in (text, f"{text}:00Z", f"{text}Z"):
        try:
            return format_time(parse_time(candidate))
        except ValueError:
            continue
    raise InvalidAction(f"until: expected a time like 2026-12-01T04:00:00Z, got {text!r}")


@page
async def create_window(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    try:
        fields = await read_form(request)
    except CsrfRefused as exc:
        return error_page(request, 403, str(exc))
    kept = {k: v for k, v in fields.items() if k != CSRF_FIELD}
    try:
        window = parse_window(window_document(fields, runtime.clock()))
        await save_window(runtime, window, viewer_of(request).name)
    except LoadError as exc:
        error = "; ".join(p.message for p in exc.findings)
        return maintenance_response(request, 422, error, kept)
    except (InvalidAction, Conflict) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        return maintenance_response(request, status, str(exc), kept)
    return see_other("/maintenance", f"Maintenance window {window.name} created")


@page
async def end_window(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    try:
        await read_form(request)
    except CsrfRefused as exc:
        return error_page(request, 403, str(exc))
    name = request.match_info["name"]
    try:
        await end_window_now(runtime, name)
    except Conflict as exc:
        return maintenance_response(request, 409, str(exc))
    return see_other("/maintenance", f"Maintenance window {name} ended")


# ---- signing in and out


def _secure(request: web.Request) -> bool:
    external = request.app[RUNTIME].settings.external_url or ""
    return request.secure or external.startswith("https://")


# The sign-in form's CSRF token: there is no session yet to bind one to, so the token
# is a random value in a cookie of its own, sent again in the form (double submit).
LOGIN_COOKIE = "itsmd_login"
LOGIN_FORM_TTL = timedelta(hours=1)
_LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


@page
async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request, next_=safe_next(request.query.get("next")))


def _login_form(
    request: web.Request,
    *,
    next_: str,
    status: int = 200,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    # The browser's token when it has one: a second tab's form keeps the first one good.
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not _LOGIN_TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", status, headers, next=next_, error=error, login_csrf=token
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path="/login",
        httponly=True,
        samesite="Strict",
        max_age=int(LOGIN_FORM_TTL.total_seconds()),
        secure=_secure(request) or None,
    )
    return response


def _login_csrf_ok(request: web.Request, sent: str) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


@page
async def login(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    fields = await read_form(request, csrf=False)  # checked against the form's own cookie
    target = safe_next(fields.get("next"))
    if not _login_csrf_ok(request, fields.get(CSRF_FIELD, "")):
        return _login_form(
            request,
            next_=target,
            status=403,
            error="this sign-in form is out of date or not from this page: sign in again",
        )
    if not runtime.settings.tokens:
        response = see_other(target)
        response.del_cookie(LOGIN_COOKIE, path="/login")
        name = clean_name(fields.get("name", ""))
        if name:
            response.set_cookie(
                NAME_COOKIE,
                quote(name, safe=""),
                path="/",
                httponly=True,
                samesite="Strict",
                max_age=int(timedelta(days=30).total_seconds()),
                secure=_secure(request) or None,
            )
        else:
            response.del_cookie(NAME_COOKIE, path="/")
        return response
    try:
        token = auth.log_in(request, fields.get("token", ""))
    except auth.LoginRefused as exc:
        wait = exc.retry_after_s
        return _login_form(
            request,
            next_=target,
            status=429 if wait else 401,
            headers={"Retry-After": str(wait)} if wait else None,
            error=str(exc),
        )
    session = auth.sign_session(token, runtime.clock())
    response = see_other(target)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    response.set_cookie(
        auth.SESSION_COOKIE,
        session.value,
        path="/",
        httponly=True,
        samesite="Strict",
        max_age=int(auth.SESSION_TTL.total_seconds()),
        secure=_secure(request) or None,
    )
    return response


@page
async def logout_page(request: web.Request) -> web.StreamResponse:
    """`GET /logout`: the sign-out button alone (signing out changes state: a POST)."""
    if not viewer_of(request).signed_in:
        return see_other("/login")
    return render(request, "logout.html")


@page
async def logout(request: web.Request) -> web.StreamResponse:
    # Without a session there is nothing to end and no form to read: the cookies go.
    signed_in = viewer_of(request).signed_in
    fields = await read_form(request, csrf=False) if signed_in else {}
    if signed_in and not csrf_ok(request, fields.get(CSRF_FIELD, "")):
        return error_page(
            request,
            403,
            "this sign-out form is out of date or not from this page (its CSRF token does "
            "not match your session): reload the page and sign out again",
        )
    response = web.Response(status=303, headers={"Location": "/login", **HEADERS})
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    response.del_cookie(NAME_COOKIE, path="/")
    return response
