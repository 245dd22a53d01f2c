"""Service levels as on-call reads them: check states, uptime against objectives,
capacity forecasts and the SLA summary (docs/api.md). Read from
the store, so every replica answers the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import store_of
from itsmd.checks.report import SLO_WINDOW, WINDOWS, window_key
from itsmd.durations import format_optional_time, parse_duration
from itsmd.store import checkstore, slaclock

MAX_WINDOW = timedelta(days=checkstore.AGGREGATE_DAYS)


async def list_checks(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    names = {c.name for c in runtime.rules.checks}
    found = await store_of(runtime).read(checkstore.statuses)
    by_name = {s.name: s for s in found if s.name in names}
    checks = []
    for spec in runtime.rules.checks:
        s = by_name.get(spec.name)
        checks.append(
            {
                "name": spec.name,
                "type": spec.type.value,
                "service": spec.service,
                "up": s.up if s else None,
                "last_run": format_optional_time(s.last_run if s else None),
                "last_error": s.last_error if s else None,
                "consecutive_failures": s.consecutive_failures if s else 0,
                "duration_s": s.duration_s if s else None,
                "interval_s": spec.interval.total_seconds(),
            }
        )
    return web.json_response({"checks": checks, "next": None})


async def capacity(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    names = {c.name for c in runtime.rules.checks}
    found = await store_of(runtime).read(checkstore.statuses)
    entries = [entry for s in found if s.name in names for entry in s.capacity]
    return web.json_response({"capacity": entries})


async def availability(request: web.Request) -> web.Response:
    """`?window=30d`: the span of the error budget and burn rate (default 30 days, the
    span of a service's `slo`); ratios are always given for 1d, 7d and 30d too."""
    runtime = request.app[RUNTIME]
    budget = _window(request.query.get("window"))
    now = runtime.clock()
    rules = runtime.rules
    windows = sorted({*WINDOWS, budget})

    def read(conn: Connection) -> dict[str, Any]:
        return checkstore.availability_report(conn, rules, now, windows, budget)

    body = await store_of(runtime).read(read)
    return web.json_response(body)


async def sla_summary(request: web.Request) -> web.Response:
    """`?window=30d`: SLA targets met, breached and pending per priority for the
    incidents opened within the window, with MTTA and MTTR."""
    runtime = request.app[RUNTIME]
    window = _window(request.query.get("window"))
    now = runtime.clock()
    found = await store_of(runtime).read(lambda conn: slaclock.sla_summary(conn, now - window, now))
    return web.json_response({"window": window_key(window), "priorities": found})


def _window(text: str | None) -> timedelta:
    if text is None:
        return SLO_WINDOW
    try:
        window = parse_duration(text)
    except ValueError as exc:
        raise BadRequest(f"window: {exc}") from None
    if not timedelta(hours=1) <= window <= MAX_WINDOW:
        raise BadRequest(f"window: expected 1h to {checkstore.AGGREGATE_DAYS}d, got {text}")
    return window
