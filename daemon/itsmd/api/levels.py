"""Service levels as on-call reads them: check states, uptime against objectives,
capacity forecasts (DESIGN section 7) and the SLA summary (section 6). Read from
the store, so every replica answers the same."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import RUNTIME
from itsmd.api.params import store_of
from itsmd.availreport import SLO_WINDOW, WINDOWS, Subject, report, window_key
from itsmd.durations import format_optional_time, parse_duration
from itsmd.rules import RuleSet
from itsmd.sla import summarize
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
        checks.append({
            "name": spec.name, "type": spec.type.value, "service": spec.service,
            "up": s.up if s else None, "last_run": format_optional_time(s.last_run if s else None),
            "last_error": s.last_error if s else None,
            "consecutive_failures": s.consecutive_failures if s else 0,
            "duration_s": s.duration_s if s else None,
            "interval_s": spec.interval.total_seconds(),
        })  # fmt: skip
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
        return availability_report(conn, rules, now, windows, budget)

    body = await store_of(runtime).read(read)
    return web.json_response(body)


async def sla_summary(request: web.Request) -> web.Response:
    """`?window=30d`: SLA targets met, breached and pending per priority for the
    incidents opened within the window, with MTTA and MTTR."""
    runtime = request.app[RUNTIME]
    window = _window(request.query.get("window"))
    now = runtime.clock()
    found = await store_of(runtime).read(lambda conn: slaclock.clocked_since(conn, now - window))
    return web.json_response({"window": window_key(window), "priorities": summarize(found, now)})


def availability_report(
    conn: Connection, rules: RuleSet, now: datetime, windows: list[timedelta], budget: timedelta
) -> dict[str, Any]:
    # Raw history from a UTC midnight, where the daily aggregates of longer windows end.
    raw_day = (now - timedelta(days=checkstore.RAW_DAYS - 1)).astimezone(UTC).date()
    raw_from = datetime.combine(raw_day, time(), UTC)
    raw = now - raw_from
    checks = {f"check:{c.name}": c for c in rules.checks}
    services = sorted({c.service for c in rules.checks if c.service})
    subjects = [*checks, *(f"service:{s}" for s in services)]
    history = checkstore.changes(conn, subjects, raw_from)
    older = {w: _older(conn, subjects, now, w, raw) for w in windows if w > raw}

    def subject(key: str, service: str | None, slo: float | None) -> Subject:
        return Subject(key, history[key], {w: o[key] for w, o in older.items()}, service, slo)

    check_docs = [
        {"check": c.name, "service": c.service,
         **report(subject(key, c.service, None), now, windows, budget, raw)}
        for key, c in checks.items()
    ]  # fmt: skip
    service_docs = []
    for name in services:
        slo = s.slo if (s := rules.service(name)) is not None else None
        doc = report(subject(f"service:{name}", name, slo), now, windows, budget, raw)
        service_docs.append({"service": name, **doc})
    return {"services": service_docs, "checks": check_docs}


def _older(
    conn: Connection, subjects: list[str], now: datetime, window: timedelta, raw: timedelta
) -> dict[str, Any]:
    """The daily aggregates of a long window's days before the raw part (whole UTC
    days: the first day counts from its midnight)."""
    first = (now - window).astimezone(UTC).date()
    last = (now - raw).astimezone(UTC).date() - timedelta(days=1)
    return checkstore.daily(conn, subjects, first, last)


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
