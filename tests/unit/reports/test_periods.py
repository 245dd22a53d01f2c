"""Report periods: half-open, in a time zone, with the previous period (pure)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from itsmd.reports.periods import PeriodError, period, previous, weeks


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "tz", "days", "hours"),
    [
        ("2026-11-01", "2026-12-01", "UTC", 30, 720),
        ("2026-10-01", "2026-11-01", "Europe/Berlin", 31, 745),  # back to winter time
        ("2026-03-01", "2026-04-01", "Europe/Berlin", 31, 743),  # on to summer time
        ("2026-11-01", "2026-11-08", "America/New_York", 7, 169),  # DST ends Nov 1st
    ],
)
def test_days_and_hours_count_right_across_clock_changes(
    start: str, end: str, tz: str, days: int, hours: int
) -> None:
    p = period(start, end, tz)
    assert (p.days(), p.seconds / 3600) == (days, hours)


@pytest.mark.parametrize(
    ("start", "end", "previous_start"),
    [
        ("2026-11-01", "2026-12-01", "2026-10-01T00:00:00+00:00"),  # a month: the month
        ("2026-03-01", "2026-03-31", "2026-01-30T00:00:00+00:00"),  # 30 days: 30 days
        ("2026-01-01", "2026-04-01", "2025-10-01T00:00:00+00:00"),  # a quarter
        ("2026-11-01T06:00:00Z", "2026-11-01T18:00:00Z", "2026-10-31T18:00:00+00:00"),
    ],
)
def test_the_previous_period(start: str, end: str, previous_start: str) -> None:
    p = period(start, end, "UTC")
    before = previous(p)
    assert before.end == p.start
    assert before.start.isoformat() == previous_start


def test_weeks_start_on_local_mondays_and_cover_the_period() -> None:
    p = period("2026-10-01", "2026-11-01", "Europe/Berlin")
    spans = weeks(p)
    assert spans[0].start == p.start
    assert spans[-1].end == p.end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert [s.local(s.start).weekday() for s in spans[1:]] == [0] * (len(spans) - 1)
    assert spans[1].start == utc("2026-10-04 22:00")  # Monday the 5th, Berlin summer time
    assert spans[-1].start == utc("2026-10-25 23:00")  # Monday the 26th, winter time


@pytest.mark.parametrize(
    ("start", "end", "tz", "message"),
    [
        (None, "2026-12-01", None, "from: required"),
        ("2026-12-01", "2026-12-01", None, "from: must be before to"),
        ("2026-13-01", "2026-12-01", None, "from: expected a date"),
        ("2026-11-01", "2026-12-01", "Nowhere/City", "tz: unknown time zone"),
    ],
)
def test_bad_periods_name_the_parameter(
    start: str | None, end: str, tz: str | None, message: str
) -> None:
    with pytest.raises(PeriodError, match=f"^{message}"):
        period(start, end, tz)
