"""Availability against objectives, as `GET /api/v1/availability` reports it (pure).

Windows up to RAW_DAYS come from state changes to the second; longer ones add
the daily aggregates of the days before (whole UTC days, so the first day of a
long window may count a few hours more than the window asks for).

A window is reported over the part of it that was measured, and says how much
that is (`coverage`, and `measured_since` for the history as a whole): a check
added six minutes ago has six minutes of availability, not thirty days. Its error
budget is the window's (`error_budget_left`), and its burn rate is only given once
the measured part covers MIN_BURN_COVERAGE of the window (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from itsmd.checks.availability import (
    Change,
    State,
    Uptime,
    burn_rate,
    error_budget_left,
    uptime,
)
from itsmd.durations import format_duration, format_optional_time

WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))
SLO_WINDOW = timedelta(days=30)  # the service `slo` is over 30 days (docs/rules.md, services)
# A burn rate from less than this share of its window would pass off a few minutes
# as the whole window (minutes of failure after a first start read as a 200-fold burn).
MIN_BURN_COVERAGE = 0.25


@dataclass(frozen=True, slots=True)
class Subject:
    """A check or a service with its history."""

    name: str
    changes: Sequence[Change]  # from the start of the raw history on
    older: Mapping[timedelta, Uptime]  # per long window: the aggregates before the raw part
    service: str | None = None
    slo: float | None = None  # percent
    # The UTC midnight of the first day the daily aggregates know the state of.
    older_since: datetime | None = None


def window_key(window: timedelta) -> str:
    """Whole days in days, not weeks ("1d", "7d", "30d"), as the API names windows."""
    if window % timedelta(days=1) == timedelta(0):
        return f"{window.days}d"
    return format_duration(window)


def window_uptime(s: Subject, now: datetime, span: timedelta, raw_span: timedelta) -> Uptime:
    """Seconds per state over the window; days of a long window that have no
    aggregate (before the history began, or never rolled up) count as unknown, so
    the seconds always add up to the window's length."""
    if span <= raw_span:
        return uptime(s.changes, now, span)
    total = uptime(s.changes, now, raw_span) + s.older.get(span, Uptime())
    first_midnight = datetime.combine((now - span).astimezone(UTC).date(), time(), UTC)
    known = total.up_s + total.down_s + total.maintenance_s + total.unknown_s
    missing = (now - first_midnight).total_seconds() - known
    return total.plus(State.UNKNOWN, missing) if missing > 0 else total


def measured_since(s: Subject, now: datetime) -> datetime | None:
    """When the subject's state was first known: its first known change, or the first
    day the aggregates know of when that is earlier (history older than the raw
    changes is only known to the day)."""
    known = [at for at, state in s.changes if state is not State.UNKNOWN and at <= now]
    found = [t for t in (min(known, default=None), s.older_since) if t is not None]
    return min(found, default=None)


def report(
    s: Subject, now: datetime, windows: Sequence[timedelta], budget: timedelta, raw: timedelta
) -> dict[str, Any]:
    """One entry of the `checks` or `services` list."""
    ratios = {window_key(w): window_uptime(s, now, w, raw) for w in windows}
    over_budget = window_uptime(s, now, budget, raw)
    coverage = over_budget.coverage or 0.0
    burn = burn_rate(over_budget.ratio, s.slo) if coverage >= MIN_BURN_COVERAGE else None
    return {
        "availability": {key: u.ratio for key, u in ratios.items()},
        "coverage": {key: u.coverage for key, u in ratios.items()},
        "measured_since": format_optional_time(measured_since(s, now)),
        "downtime_s": {key: u.down_s for key, u in ratios.items()},
        "maintenance_s": {key: u.maintenance_s for key, u in ratios.items()},
        "slo": s.slo,
        "error_budget_left": error_budget_left(over_budget, s.slo),
        "burn_rate": burn,
    }
