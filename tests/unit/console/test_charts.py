"""Server-drawn charts: scales, verdicts, and markup that holds only what it should."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from itsmd.console.charts import BAD, GOOD, NONE, availability_bar, bar_floor, capacity_chart

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("slo", "floor"), [(99.9, 99.0), (99.0, 90.0), (95.0, 50.0), (50.0, 0.0), (None, 90.0)]
)
def test_a_bar_starts_ten_budgets_below_the_objective(slo: float | None, floor: float) -> None:
    assert bar_floor(slo) == pytest.approx(floor)


@pytest.mark.parametrize(
    ("ratio", "slo", "met", "colour"),
    [
        (0.9995, 99.9, True, GOOD),
        (0.995, 99.9, False, BAD),
        (None, 99.9, None, NONE),
        (0.995, None, None, NONE),
    ],
)
def test_a_bar_says_whether_the_window_meets_its_objective(
    ratio: float | None, slo: float | None, met: bool | None, colour: str
) -> None:
    bar = availability_bar("30d", ratio, slo)
    assert bar["met"] is met
    assert f'fill="{colour}"' in bar["svg"]
    assert "aria-label=" in bar["svg"]


def test_a_bar_is_as_long_as_the_availability_above_the_floor() -> None:
    bar = availability_bar("1d", 0.995, 99.9)  # floor 99.0: half way
    widths = re.findall(r'<rect x="0" y="0" width="([\d.]+)"', str(bar["svg"]))
    assert widths == ["200", "100.0"]
    assert 'x1="180.0"' in bar["svg"]  # the objective's mark


def entry(**fields: object) -> dict[str, object]:
    return {
        "check": "disk <b>",
        "labels": {"path": "/data"},
        "value": 0.3,
        "threshold": {"below": 0.1},
        "exhausts_at": None,
        "forecast_ready": True,
        "forecast_since": (NOW - timedelta(hours=1)).isoformat(),
        "forecast_reason": None,
        **fields,
    }


def test_a_chart_without_samples_draws_the_value_and_the_forecast_line() -> None:
    crossing = (NOW + timedelta(hours=2)).isoformat()
    svg = str(capacity_chart(entry(exhausts_at=crossing), NOW))
    assert 'class="threshold"' in svg
    assert 'class="trend"' in svg
    assert 'class="now"' in svg
    assert 'class="series"' not in svg
    assert "disk &lt;b&gt;" in svg
    assert "<b>" not in svg


def test_a_chart_with_samples_draws_the_series_and_its_fitted_trend() -> None:
    start = NOW.timestamp() - 3600
    samples = [[start + i * 600, 0.5 - i * 0.03] for i in range(7)]
    svg = str(capacity_chart(entry(samples=samples), NOW))
    points = re.search(r'class="series" points="([^"]+)"', svg)
    assert points is not None
    assert len(points.group(1).split()) == 7
    assert 'class="trend"' in svg


def test_no_chart_without_a_value() -> None:
    assert capacity_chart(entry(value=None), NOW) is None
