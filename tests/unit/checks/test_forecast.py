"""Least-squares trends and threshold crossings, as tables with known answers."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itsmd.checks.forecast import (
    MIN_SAMPLES,
    MIN_SHARE,
    Direction,
    Trend,
    crossing_time,
    enough,
    exhausts_within,
    fit,
    span,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: Unix times of today must not lose precision


def line(a: float, b: float, times: list[float]) -> list[tuple[float, float]]:
    """Samples of value = a + b * (t - T0)."""
    return [(t, a + b * (t - T0)) for t in times]


MINUTES = [T0 + 60 * i for i in range(10)]


@pytest.mark.parametrize(
    ("samples", "slope", "value_at_t0"),
    [
        pytest.param(line(1.0, 0.5, MINUTES), 0.5, 1.0, id="rising"),
        pytest.param(line(100.0, -2.0, MINUTES), -2.0, 100.0, id="falling"),
        pytest.param(line(7.0, 0.0, MINUTES), 0.0, 7.0, id="flat"),
        pytest.param([(T0, 0.0), (T0 + 10, 10.0)], 1.0, 0.0, id="two-points"),
        pytest.param([(T0 + 10, 10.0), (T0, 0.0)], 1.0, 0.0, id="unsorted"),
        pytest.param([(T0, 0.0), (T0, 2.0), (T0 + 2, 2.0)], 0.5, 1.0, id="repeated-time"),
        pytest.param([(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)], 0.5, None, id="scatter"),
    ],
)
def test_fit(samples: list[tuple[float, float]], slope: float, value_at_t0: float | None) -> None:
    trend = fit(samples)
    assert trend is not None
    assert trend.slope == pytest.approx(slope)
    if value_at_t0 is not None:
        assert trend.value_at(T0) == pytest.approx(value_at_t0)


def test_scatter_fit_matches_the_textbook_formula() -> None:
    # Points (0,1), (1,3), (2,2): slope 0.5, intercept 1.5 at t = 0.
    trend = fit([(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)])
    assert trend is not None
    assert trend.value_at(0.0) == pytest.approx(1.5)


@pytest.mark.parametrize(
    "samples",
    [
        pytest.param([], id="none"),
        pytest.param([(T0, 1.0)], id="one"),
        pytest.param([(T0, 1.0), (T0, 5.0)], id="one-time"),
    ],
)
def test_no_trend_without_two_distinct_times(samples: list[tuple[float, float]]) -> None:
    assert fit(samples) is None
    assert crossing_time(samples, 0.0, Direction.BELOW, T0) is None


def test_trend_value_at_any_origin() -> None:
    assert Trend(slope=2.0, intercept=1.0).value_at(3.0) == 7.0
    assert Trend(slope=2.0, intercept=1.0, at=10.0).value_at(13.0) == 7.0


NOW = T0 + 540  # the last of MINUTES


@pytest.mark.parametrize(
    ("samples", "threshold", "direction", "expected"),
    [
        pytest.param(line(1.0, -0.001, MINUTES), 0.1, "below", T0 + 900, id="falls-below"),
        pytest.param(line(0.0, 0.001, MINUTES), 0.9, "above", T0 + 900, id="rises-above"),
        pytest.param(line(1.0, 0.001, MINUTES), 0.1, "below", None, id="rises-away"),
        pytest.param(line(0.0, -0.001, MINUTES), 0.9, "above", None, id="falls-away"),
        pytest.param(line(0.5, 0.0, MINUTES), 0.1, "below", None, id="flat-never"),
        pytest.param(line(0.05, 0.0, MINUTES), 0.1, "below", NOW, id="flat-already-past"),
        pytest.param(line(1.0, -0.001, MINUTES), 0.5, "below", NOW, id="already-below"),
        pytest.param(line(1.0, -0.001, MINUTES), 0.46, "below", NOW, id="reaches-exactly-now"),
        pytest.param(line(0.0, 0.001, MINUTES), 0.9, Direction.ABOVE, T0 + 900, id="enum"),
    ],
)
def test_crossing_time(
    samples: list[tuple[float, float]], threshold: float, direction: str, expected: float | None
) -> None:
    result = crossing_time(samples, threshold, direction, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_a_noisy_line_crosses_near_the_true_line() -> None:
    rng = random.Random(7)
    times = [T0 + 60 * i for i in range(360)]  # 6 hours of minutes
    samples = [(t, 0.8 - 1e-5 * (t - T0) + rng.gauss(0, 0.01)) for t in times]
    crossing = crossing_time(samples, 0.05, Direction.BELOW, times[-1])
    assert crossing is not None
    assert crossing == pytest.approx(T0 + 75_000, rel=0, abs=3_600)  # within an hour of 20h50m


def test_an_unknown_direction_is_an_error() -> None:
    with pytest.raises(ValueError, match="sideways"):
        crossing_time(line(0, 1, MINUTES), 1.0, "sideways", NOW)


@pytest.mark.parametrize(
    ("crossing", "horizon", "expected"),
    [
        (None, 3600.0, False),
        (NOW, 3600.0, True),
        (NOW + 3600, 3600.0, True),
        (NOW + 3601, 3600.0, False),
    ],
)
def test_exhausts_within(crossing: float | None, horizon: float, expected: bool) -> None:
    assert exhausts_within(crossing, NOW, horizon) is expected


SIX_HOURS = 6 * 3600.0


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        pytest.param([], False, id="no-samples"),
        pytest.param([T0 + 10 * i for i in range(7)], False, id="a-minute-of-6h"),
        pytest.param([T0 + 1350 * i - (i == 4) for i in range(5)], False, id="a-second-short"),
        pytest.param([T0 + 1350 * i for i in range(5)], True, id="a-quarter-of-6h"),
        pytest.param([T0 + 3600 * i for i in range(4)], False, id="3h-but-4-samples"),
        pytest.param([T0 + 2700 * i for i in range(5)], True, id="3h-and-5-samples"),
        pytest.param([T0 + 5400, T0, T0 + 60, T0 + 120, T0 + 180], True, id="unsorted"),
    ],
)
def test_enough_data_to_forecast(times: list[float], expected: bool) -> None:
    assert (MIN_SHARE, MIN_SAMPLES) == (0.25, 5)
    assert enough([(t, 0.5) for t in times], SIX_HOURS) is expected


def test_span() -> None:
    assert span([]) == 0.0
    assert span([(T0, 1.0)]) == 0.0
    assert span([(T0 + 60, 1.0), (T0, 2.0), (T0 + 30, 3.0)]) == 60.0


@given(
    a=st.floats(-1e3, 1e3),
    b=st.floats(1e-3, 1e2) | st.floats(-1e2, -1e-3),
    threshold=st.floats(-1e4, 1e4),
    n=st.integers(2, 30),
    step=st.integers(1, 600),
)
def test_an_exact_line_crosses_where_algebra_says(
    a: float, b: float, threshold: float, n: int, step: int
) -> None:
    times = [T0 + step * i for i in range(n)]
    now = times[-1]
    direction = Direction.ABOVE if b > 0 else Direction.BELOW
    analytic = T0 + (threshold - a) / b
    result = crossing_time(line(a, b, times), threshold, direction, now)
    assert result is not None
    expected = max(analytic, now)
    # Absolute error: the line's values are computed, not exact, near the threshold.
    tolerance = 1e-6 * max(1.0, abs(expected - T0)) + 1e-6 * (abs(a) + abs(threshold)) / abs(b)
    assert math.isclose(result, expected, rel_tol=0, abs_tol=tolerance)
