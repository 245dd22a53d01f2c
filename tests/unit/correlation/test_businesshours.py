"""Business hours for SLA targets: time counted on working days only, in a zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from itsmd.correlation.businesshours import BusinessHours, parse_days, parse_span, parse_zone

BERLIN = parse_zone("Europe/Berlin")
NINE_TO_FIVE = BusinessHours(
    BERLIN, parse_days(["mon-fri"]), time(9), time(17), frozenset({date(2026, 12, 25)})
)
H = timedelta(hours=1)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "span", "due"),
    [
        (berlin(2026, 11, 25, 10), 4 * H, berlin(2026, 11, 25, 14)),  # within a Wednesday
        (berlin(2026, 11, 25, 16), 4 * H, berlin(2026, 11, 26, 12)),  # overnight
        (berlin(2026, 11, 27, 16), 4 * H, berlin(2026, 11, 30, 12)),  # over the weekend
        (berlin(2026, 11, 28, 3), 1 * H, berlin(2026, 11, 30, 10)),  # opened on a Saturday
        (berlin(2026, 11, 25, 7), 8 * H, berlin(2026, 11, 25, 17)),  # before opening
        (berlin(2026, 11, 25, 17), timedelta(0), berlin(2026, 11, 26, 9)),  # at closing
        (berlin(2026, 12, 24, 16), 2 * H, berlin(2026, 12, 28, 10)),  # Christmas, weekend
        (berlin(2026, 11, 23, 9), 40 * H, berlin(2026, 11, 27, 17)),  # a working week
    ],
)
def test_business_time_skips_nights_weekends_and_holidays(
    start: datetime, span: timedelta, due: datetime
) -> None:
    assert NINE_TO_FIVE.add(start, span) == due


def test_a_day_with_a_clock_change_is_as_long_as_the_wall_clock_says() -> None:
    # Around the clock, every day: the night of 2026-03-29 has 23 hours in Berlin.
    always = BusinessHours(BERLIN, parse_days(["mon-sun"]), time(0), time(23, 59))
    due = always.add(berlin(2026, 3, 28, 12), 24 * H)
    # 11h59m on Saturday, then 12h01m of real time from Sunday's midnight (CET): the
    # clock jumped from 02:00 to 03:00 on the way, so the wall says 13:01 (CEST).
    assert due.astimezone(BERLIN) == berlin(2026, 3, 29, 13, 1)
    assert due.tzinfo is UTC


def test_no_open_day_is_an_error_not_a_hang() -> None:
    every_day = frozenset(date(2026, 1, 1) + timedelta(days=d) for d in range(4000))
    closed = BusinessHours(BERLIN, parse_days(["sat"]), time(9), time(17), every_day)
    with pytest.raises(ValueError, match="no end within"):
        closed.add(berlin(2026, 1, 1), H)


@pytest.mark.parametrize(
    ("names", "days"),
    [(["mon-fri"], {0, 1, 2, 3, 4}), (["mon", "Wed", "sun"], {0, 2, 6}), (["sat-sun"], {5, 6})],
)
def test_days(names: list[str], days: set[int]) -> None:
    assert parse_days(names) == days


@pytest.mark.parametrize(
    ("text", "error"),
    [("9-5", "expected HH:MM-HH:MM, got '9-5'"), ("17:00-09:00", "closes before it opens")],
)
def test_bad_spans(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_span(text)
