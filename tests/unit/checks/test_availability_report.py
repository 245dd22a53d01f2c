"""Availability reports over young and partly measured windows, with hand-computed numbers.

A window is reported over its measured part and says how much that is; its error
budget is the window's, and its burn rate waits for a quarter of the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.checks.availability import Change, State, Uptime
from itsmd.checks.report import MIN_BURN_COVERAGE, WINDOWS, Subject, report

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
RAW = NOW - datetime(2026, 1, 26, tzinfo=UTC)  # raw changes from the UTC midnight 34 days ago
S, H, DAY = timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)
MONTH = timedelta(days=30)
UP, DOWN = State.UP, State.DOWN


def subject(*changes: tuple[datetime, State], slo: float | None = 99.9) -> Subject:
    return Subject("service:api", [Change(*c) for c in changes], {}, "api", slo)


def test_minutes_after_a_first_start_are_not_stretched_over_the_window() -> None:
    # First measured 400 s ago: up 300 s, then down for the last 100 s.
    doc = report(subject((NOW - 400 * S, UP), (NOW - 100 * S, DOWN)), NOW, WINDOWS, MONTH, RAW)

    assert doc["availability"] == {"1d": 0.75, "7d": 0.75, "30d": 0.75}  # of what was measured
    assert doc["coverage"] == {
        "1d": pytest.approx(400 / 86400),
        "7d": pytest.approx(400 / (7 * 86400)),
        "30d": pytest.approx(400 / (30 * 86400)),
    }
    assert doc["measured_since"] == "2026-03-01T19:53:20Z"
    assert doc["downtime_s"] == {"1d": 100, "7d": 100, "30d": 100}
    # 30 days at 99.9 % allow 2592 s down; 100 s are spent (not 250 budgets).
    assert doc["error_budget_left"] == pytest.approx(1 - 100 / 2592)
    assert doc["burn_rate"] is None  # 400 s of 30 days is no 30-day burn rate


def test_a_burn_rate_once_a_quarter_of_the_window_is_measured() -> None:
    # Measured for the last 8 h (a third of a day), down 432 s two hours ago; 99 %.
    changes = ((NOW - 8 * H, UP), (NOW - 2 * H, DOWN), (NOW - 2 * H + 432 * S, UP))
    day = report(subject(*changes, slo=99.0), NOW, WINDOWS, DAY, RAW)
    assert day["coverage"]["1d"] == pytest.approx(1 / 3)
    assert day["availability"]["1d"] == pytest.approx(1 - 432 / 28800)
    assert day["error_budget_left"] == pytest.approx(0.5)  # 432 s of the day's 864 s
    assert day["burn_rate"] == pytest.approx(1.5)  # 1.5 % down over 8 h, against 1 %

    month = report(subject(*changes, slo=99.0), NOW, WINDOWS, MONTH, RAW)
    assert month["error_budget_left"] == pytest.approx(1 - 432 / 25920)  # 1 % of 30 days
    assert month["burn_rate"] is None


@pytest.mark.parametrize(
    ("measured", "burn"),
    [
        pytest.param(6 * H, 0.0, id="a-quarter"),
        pytest.param(6 * H - S, None, id="just-under-a-quarter"),
    ],
)
def test_the_burn_rate_threshold(measured: timedelta, burn: float | None) -> None:
    assert MIN_BURN_COVERAGE == 0.25
    doc = report(subject((NOW - measured, UP)), NOW, WINDOWS, DAY, RAW)
    assert doc["burn_rate"] == burn
    assert doc["error_budget_left"] == 1.0


def test_nothing_measured_yet() -> None:
    doc = report(subject(), NOW, WINDOWS, MONTH, RAW)
    assert doc["availability"] == {"1d": None, "7d": None, "30d": None}
    assert doc["coverage"] == {"1d": 0.0, "7d": 0.0, "30d": 0.0}
    assert doc["measured_since"] is None
    assert (doc["error_budget_left"], doc["burn_rate"]) == (None, None)


def test_a_long_window_counts_the_days_before_the_history_as_unmeasured() -> None:
    # 60 days back from 2026-03-01T20:00 start at 2025-12-31T20:00: whole UTC days from
    # 2025-12-31, so the window is 60 d 20 h, of which the raw part is the last
    # 34 d 20 h and the aggregates the 26 days before. The history began on 2026-01-16:
    # only 10 of those 26 days have aggregates.
    window = timedelta(days=60)
    s = Subject(
        "check:api",
        [Change(datetime(2026, 1, 16, 8, tzinfo=UTC), UP)],
        {window: Uptime(up_s=10 * 86400)},
        older_since=datetime(2026, 1, 16, tzinfo=UTC),
    )
    doc = report(s, NOW, [*WINDOWS, window], window, RAW)
    assert doc["availability"]["60d"] == 1.0
    assert doc["coverage"]["60d"] == pytest.approx((10 + 34 + 20 / 24) / (60 + 20 / 24))
    assert doc["coverage"]["30d"] == 1.0
    assert doc["measured_since"] == "2026-01-16T00:00:00Z"  # to the day, from the aggregates
