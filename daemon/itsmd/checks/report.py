"""Availability against objectives, as `GET /api/v1/availability` reports it (pure).

Windows up to RAW_DAYS come from state changes to the second; longer ones add
the daily aggregates of the days before (whole UTC days, so the first day of a
long window may count a few hours more than the window asks for).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsmd.checks.availability import Change, Uptime, burn_rate, error_budget_left, uptime
from itsmd.durations import format_duration

WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))
SLO_WINDOW = timedelta(days=30)  # the service `slo` is over 30 days (docs/rules.md, services)


@dataclass(frozen=True, slots=True)
class Subject:
    """A check or a service with its history."""

    name: str
    changes: Sequence[Change]  # from the start of the raw history on
    older: Mapping[timedelta, Uptime]  # per long window: the aggregates before the raw part
    service: str | None = None
    slo: float | None = None  # percent


def window_key(window: timedelta) -> str:
    """Whole days in days, not weeks ("1d", "7d", "30d"), as the API names windows."""
    if window % timedelta(days=1) == timedelta(0):
        return f"{window.days}d"
    return format_duration(window)


def window_uptime(s: Subject, now: datetime, span: timedelta, raw_span: timedelta) -> Uptime:
    if span <= raw_span:
        return uptime(s.changes, now, span)
    return uptime(s.changes, now, raw_span) + s.older.get(span, Uptime())


def report(
    s: Subject, now: datetime, windows: Sequence[timedelta], budget: timedelta, raw: timedelta
) -> dict[str, Any]:
    """One entry of the `checks` or `services` list."""
    ratios = {window_key(w): window_uptime(s, now, w, raw) for w in windows}
    over_budget = window_uptime(s, now, budget, raw)
    ratio = over_budget.ratio
    return {
        "availability": {key: u.ratio for key, u in ratios.items()},
        "downtime_s": {key: u.down_s for key, u in ratios.items()},
        "maintenance_s": {key: u.maintenance_s for key, u in ratios.items()},
        "slo": s.slo,
        "error_budget_left": error_budget_left(ratio, s.slo),
        "burn_rate": burn_rate(ratio, s.slo),
    }
