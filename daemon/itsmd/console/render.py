"""Pages from templates: the Jinja environment (autoescaped), the headers every page
carries, flash messages, and the pages of errors and refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from aiohttp import web

from itsmd.api.errors import BadRequest, TooLarge, store_cause
from itsmd.api.keys import RUNTIME
from itsmd.console.present import age_text, span_text, utc_text
from itsmd.console.session import CSRF_FIELD, viewer_of
from itsmd.correlation.lifecycle import Conflict
from itsmd.durations import format_time
from itsmd.runtime.actions import InvalidAction, NotFound
from itsmd.sources import PayloadError
from itsmd.store.engine import StoreUnavailable

TEMPLATES = Path(__file__).with_name("templates")
JINJA = web.AppKey("console_jinja", jinja2.Environment)
FLASH_COOKIE = "itsmd_flash"
# Nothing is loaded from elsewhere, no inline script runs, no other site may frame the
# console or receive its forms. Same-origin referrers: a form's POST then carries an
# Origin the daemon recognises (with no-referrer, Chromium sends `Origin: null`).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template is HTML: labels holding <script> stay text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rfc3339"] = format_time
    env.filters["utc"] = utc_text
    env.filters["span"] = span_text
    env.filters["pct"] = _percent
    env.filters["num"] = lambda x: "–" if x is None else f"{x:.4g}"
    env.filters["path_part"] = lambda text: quote(str(text), safe="")
    env.filters["link_ok"] = link_ok
    env.globals["age"] = age_text
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    return env


def link_ok(url: object) -> bool:
    """Whether a URL from an alert may be a link: http(s) only, so that a
    `javascript:` generatorURL stays text."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def _percent(ratio: float | None, digits: int = 3) -> str:
    if ratio is None:
        return "–"
    return f"{ratio * 100:.{digits}f} %"


def render(
    request: web.Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> web.Response:
    runtime = request.app[RUNTIME]
    now: datetime = context.pop("now", None) or runtime.clock()
    raw_flash = request.cookies.get(FLASH_COOKIE)
    flash = unquote(raw_flash) if raw_flash else None
    html = (
        request.app[JINJA]
        .get_template(template)
        .render(
            viewer=viewer_of(request),
            now=now,
            path=request.path,
            url=str(request.rel_url),
            flash=flash,
            with_tokens=bool(runtime.settings.tokens),
            **context,
        )
    )
    response = web.Response(
        text=html, status=status, content_type="text/html", headers={**HEADERS, **(headers or {})}
    )
    if raw_flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def see_other(location: str, flash: str | None = None) -> web.Response:
    """The answer to a form: back to a page (POST, then 303, then GET), with a line
    that page shows once."""
    response = web.Response(status=303, headers={"Location": location, **HEADERS})
    if flash:
        response.set_cookie(
            FLASH_COOKIE,
            quote(flash[:200], safe=""),
            max_age=60,
            path="/",
            httponly=True,
            samesite="Strict",
        )
    return response


def error_page(
    request: web.Request, status: int, error: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A refusal or an error as a page (also what `api.auth` answers on the console's
    paths: see CONSOLE_REFUSAL)."""
    return render(
        request, "error.html", status=status, headers=headers, status_code=status, error=error
    )


# Domain errors a page or a form may meet, and their status.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadRequest, 400),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (PayloadError, 422),
    (InvalidAction, 422),
)


def page(handler: Handler) -> Handler:
    """A console handler whose errors are pages: the API's errors middleware would
    answer them as JSON."""

    @wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreUnavailable as exc:
            return error_page(
                request,
                503,
                f"the store cannot answer right now: {store_cause(exc)}",
                {"Retry-After": "1"},
            )
        except Exception as exc:
            for kind, status in _STATUS:
                if isinstance(exc, kind):
                    return error_page(request, status, str(exc))
            raise

    return run
