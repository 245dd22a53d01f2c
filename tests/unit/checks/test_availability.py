"""Uptime maths over state changes, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.checks.availability import (
    Change,
    State,
    Uptime,
    aggregate,
    burn_rate,
    combine,
    error_budget_left,
    intervals,
    service_state,
    uptime,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
UP, DOWN, MAINT, UNKNOWN = State.UP, State.DOWN, State.MAINTENANCE, State.UNKNOWN


def at(hours: float) -> datetime:
    return T0 + hours * H


@pytest.mark.parametrize(
    ("changes", "start", "end", "expected"),
    [
        pytest.param([], 0, 24, Uptime(unknown_s=86400), id="no-data"),
        pytest.param([(at(0), UP)], 0, 24, Uptime(up_s=86400), id="up-all-day"),
        pytest.param([(at(-5), DOWN)], 0, 2, Uptime(down_s=7200), id="state-carried-in"),
        pytest.param([(at(1), UP)], 0, 2, Uptime(up_s=3600, unknown_s=3600), id="unknown-first"),
        pytest.param(
            [(at(0), UP), (at(10), DOWN), (at(11), UP), (at(20), MAINT), (at(22), UP)],
            0,
            24,
            Uptime(up_s=21 * 3600, down_s=3600, maintenance_s=7200),
            id="a-day",
        ),
        pytest.param(
            [(at(-1), UP), (at(1), DOWN), (at(30), UP)],
            0,
            24,
            Uptime(up_s=3600, down_s=23 * 3600),
            id="changes-outside-the-window",
        ),
        pytest.param(
            [(at(2), DOWN), (at(0), UP)],
            0,
            4,
            Uptime(up_s=7200, down_s=7200),
            id="unsorted",
        ),
        pytest.param(
            [(at(0), UP), (at(1), DOWN), (at(1), UP)],
            0,
            2,
            Uptime(up_s=7200),
            id="same-instant-later-wins",
        ),
        pytest.param([(at(2), DOWN)], 0, 2, Uptime(unknown_s=7200), id="change-at-end-excluded"),
        pytest.param([(at(0), DOWN)], 0, 0, Uptime(), id="empty-window"),
    ],
)
def test_aggregate(
    changes: list[tuple[datetime, State]], start: float, end: float, expected: Uptime
) -> None:
    assert aggregate(changes, at(start), at(end)) == expected


def test_intervals_cover_the_window() -> None:
    changes = [Change(at(-1), UP), Change(at(1), DOWN), Change(at(2), UP)]
    assert intervals(changes, at(0), at(3)) == [
        (at(0), at(1), UP),
        (at(1), at(2), DOWN),
        (at(2), at(3), UP),
    ]


def test_uptime_is_the_window_before_now() -> None:
    changes = [(at(0), UP), (at(23), DOWN)]
    assert uptime(changes, at(24), timedelta(hours=2)) == Uptime(up_s=3600, down_s=3600)


def test_daily_aggregates_add_up_to_the_whole() -> None:
    changes = [(at(0), UP), (at(5), DOWN), (at(30), UP), (at(40), MAINT), (at(41), UP)]
    days = [aggregate(changes, at(24 * d), at(24 * (d + 1))) for d in range(3)]
    assert sum(days, Uptime()) == aggregate(changes, at(0), at(72))


@pytest.mark.parametrize(
    ("uptime_", "ratio"),
    [
        (Uptime(), None),
        (Uptime(maintenance_s=10, unknown_s=10), None),
        (Uptime(up_s=10), 1.0),
        (Uptime(down_s=10), 0.0),
        (Uptime(up_s=999, down_s=1, maintenance_s=5000, unknown_s=5000), 0.999),
    ],
)
def test_ratio_leaves_out_maintenance_and_unknown(uptime_: Uptime, ratio: float | None) -> None:
    assert uptime_.ratio == (pytest.approx(ratio) if ratio is not None else None)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], UNKNOWN),
        ([UNKNOWN, UNKNOWN], UNKNOWN),
        ([UP, UNKNOWN], UP),
        ([UP, MAINT], MAINT),
        ([UP, MAINT, DOWN], DOWN),
        ([DOWN, UNKNOWN], DOWN),
    ],
)
def test_service_state(states: list[State], expected: State) -> None:
    assert service_state(states) is expected


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        pytest.param([], [], id="no-checks"),
        pytest.param([[(at(0), UP)]], [(at(0), UP)], id="one-check"),
        pytest.param(
            [[(at(0), UP), (at(2), DOWN), (at(3), UP)], [(at(1), UP)]],
            [(at(0), UP), (at(2), DOWN), (at(3), UP)],
            id="any-down-is-down",
        ),
        pytest.param(
            [[(at(0), UP), (at(1), MAINT)], [(at(0), UP), (at(2), DOWN)]],
            [(at(0), UP), (at(1), MAINT), (at(2), DOWN)],
            id="down-beats-maintenance",
        ),
        pytest.param(
            [[(at(0), DOWN), (at(1), UP)], [(at(0), UP), (at(1), DOWN)]],
            [(at(0), DOWN)],
            id="hand-over-at-one-instant-is-no-blip",
        ),
        pytest.param(
            [[(at(1), UP)], [(at(0), UNKNOWN), (at(2), UP)]],
            [(at(0), UNKNOWN), (at(1), UP)],
            id="unknown-until-one-is-up",
        ),
    ],
)
def test_combine(
    streams: list[list[tuple[datetime, State]]], expected: list[tuple[datetime, State]]
) -> None:
    assert combine(streams) == [Change(*c) for c in expected]


DAY_S, MONTH_S = 86400.0, 30 * 86400.0


@pytest.mark.parametrize(
    ("window", "slo", "left", "burn"),
    [
        pytest.param(Uptime(unknown_s=DAY_S), 99.9, None, None, id="nothing-measured"),
        pytest.param(Uptime(up_s=DAY_S), None, None, None, id="no-objective"),
        pytest.param(Uptime(up_s=DAY_S), 99.9, 1.0, 0.0, id="untouched"),
        # A day at 99.9 % allows 86.4 s down.
        pytest.param(Uptime(DAY_S - 86.4, 86.4), 99.9, 0.0, 1.0, id="spent-exactly"),
        pytest.param(Uptime(DAY_S - 43.2, 43.2), 99.9, 0.5, 0.5, id="half-spent"),
        pytest.param(Uptime(DAY_S - 172.8, 172.8), 99.9, -1.0, 2.0, id="overspent"),
        pytest.param(Uptime(DAY_S - 864, 864), 99.0, 0.0, 1.0, id="99-percent"),
        # Maintenance is out of the budget's base: 0.1 % of 23 h is 82.8 s.
        pytest.param(
            Uptime(DAY_S - 3600 - 41.4, 41.4, maintenance_s=3600),
            99.9,
            0.5,
            41.4 / (DAY_S - 3600) / 0.001,
            id="maintenance-is-left-out",
        ),
        # A young window: 400 s measured of 30 days, 100 s down. The 30-day budget is
        # 2592 s, of which 100 s are spent; the burn over the 400 s is 250 (the
        # report only shows it once enough of the window is measured).
        pytest.param(
            Uptime(300, 100, unknown_s=MONTH_S - 400),
            99.9,
            1 - 100 / 2592,
            250.0,
            id="young-window-spends-its-own-budget",
        ),
        pytest.param(Uptime(up_s=DAY_S), 100.0, 1.0, 0.0, id="100-percent-untouched"),
        # A 100 % objective has no budget to spend.
        pytest.param(Uptime(DAY_S - 864, 864), 100.0, None, None, id="100-percent-failed"),
    ],
)
def test_error_budget(
    window: Uptime, slo: float | None, left: float | None, burn: float | None
) -> None:
    assert error_budget_left(window, slo) == (None if left is None else pytest.approx(left))
    assert burn_rate(window.ratio, slo) == (None if burn is None else pytest.approx(burn))


@pytest.mark.parametrize(
    ("window", "coverage"),
    [
        (Uptime(), None),
        (Uptime(unknown_s=DAY_S), 0.0),
        (Uptime(up_s=DAY_S / 2, unknown_s=DAY_S / 2), 0.5),
        (Uptime(up_s=10, down_s=10, maintenance_s=20, unknown_s=60), 0.4),  # maintenance known
        (Uptime(up_s=DAY_S), 1.0),
    ],
)
def test_coverage_is_the_known_share(window: Uptime, coverage: float | None) -> None:
    assert window.coverage == coverage


def test_uptime_adds_per_state() -> None:
    assert Uptime(up_s=1).plus(DOWN, 2).plus(MAINT, 3).plus(UNKNOWN, 4).plus(UP, 5) == Uptime(
        6, 2, 3, 4
    )
