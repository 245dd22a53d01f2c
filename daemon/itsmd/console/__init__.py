"""The web console for on-call engineers: server-rendered pages and plain HTML forms
over the same store reads and use cases as the JSON API (docs/console.md).

May import `api` (its auth, parameters, errors and use cases), `runtime`, `store` and
everything below them; only `server` imports it. `OPERATIONS` are its routes, declared
like the API's; `setup(app)` adds what they need (templates, the CSRF key, the pages
`api.auth` answers refusals with).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from itsmd.api import auth
from itsmd.api.routes import HTML, Operation, Param
from itsmd.config import Role
from itsmd.console import forms, levels, pages, reports
from itsmd.console.render import JINJA, Handler, environment, error_page
from itsmd.console.session import PROCESS_KEY, new_process_key

STATIC = Path(__file__).with_name("static")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_ID = Param("id", "INC-42 (or PRB-7 on problems)", where="path", required=True)
_TAG = "console"


async def static(request: web.Request) -> web.StreamResponse:
    """The console's own style sheet and script: only files of its folder, by name."""
    name = request.match_info["name"]
    kind = _STATIC_TYPES.get(Path(name).suffix)
    path = STATIC / name
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return web.Response(
        body=path.read_bytes(),
        content_type=kind,
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def _page(path: str, handler: Handler, summary: str, *params: Param) -> Operation:
    return Operation("GET", path, handler, summary, Role.READ, _TAG, params=params, content=HTML)


def _form(path: str, handler: Handler, summary: str, role: Role | None) -> Operation:
    return Operation(
        "POST",
        path,
        handler,
        summary,
        role,
        _TAG,
        body_type="application/x-www-form-urlencoded",
        status=303,
        content=HTML,
        errors=(400, 404, 409, 413, 422),
    )


_FILTERS = tuple(
    Param(name, what, repeated=name in ("status", "priority"))
    for name, what in (
        ("status", "open, acknowledged, resolved"),
        ("priority", "P1..P5"),
        ("service", "exact service name"),
        ("assignee", "who owns it"),
        ("q", "text in the title or the correlation key"),
        ("cursor", "the next page's place"),
    )
)

OPERATIONS: tuple[Operation, ...] = (
    _page("/", pages.root, "Redirects to the incident list"),
    _page("/incidents", pages.incidents, "Incidents, most urgent first", *_FILTERS),
    _page("/incidents/{id}", pages.incident, "One incident with its actions", _ID),
    _form("/incidents/{id}/{action}", forms.act_on_incident, "Incident action", Role.RESPOND),
    _page(
        "/alerts",
        pages.alerts,
        "Alert search by matchers and state",
        Param("q", 'matchers, e.g. {pod="web-7"}'),
        Param("filter", "the same as q"),
        Param("state", "firing, resolved, suppressed, unrouted", repeated=True),
    ),
    _page("/problems", pages.problems, "Problems, newest first"),
    _page("/problems/{id}", pages.problem, "One problem with its incidents", _ID),
    _form("/problems/{id}/{action}", forms.act_on_problem, "Problem action", Role.RESPOND),
    _page("/services", levels.services, "Availability and checks per service"),
    _page("/capacity", levels.capacity, "Capacity forecasts with charts"),
    _page(
        "/reports",
        reports.reports,
        "The service review of a period",
        Param("from", "first day, 2026-11-01 (default: the first of last month)"),
        Param("to", "the day after the last (default: the first of this month)"),
        Param("service", "one service only"),
        Param("tz", "time zone of the days (default UTC)"),
    ),
    _page("/maintenance", pages.maintenance, "Maintenance windows"),
    _form("/maintenance", forms.create_window, "Create a maintenance window", Role.ADMIN),
    _form("/maintenance/{name}/end", forms.end_window, "End a window now", Role.ADMIN),
    Operation("GET", "/login", forms.login_page, "Sign-in page", None, _TAG, content=HTML),
    _form("/login", forms.login, "Sign in", None),
    Operation("GET", "/logout", forms.logout_page, "Sign-out page", None, _TAG, content=HTML),
    _form("/logout", forms.logout, "Sign out", None),
    Operation(
        "GET",
        "/static/{name}",
        static,
        "The console's style sheet and script",
        None,
        _TAG,
        params=(Param("name", "file name", where="path", required=True),),
        content="text/css",
    ),
)


def setup(app: web.Application) -> None:
    """Before the app starts: templates, this process's CSRF key (without tokens), and
    the pages the auth middleware answers refusals of console paths with."""
    app[JINJA] = environment()
    app[PROCESS_KEY] = new_process_key()
    app[auth.CONSOLE_REFUSAL] = error_page
