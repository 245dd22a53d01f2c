"""Least-squares trends and when they cross a threshold (pure, no clock).

The same ordinary least squares as Prometheus' `predict_linear`, so a capacity
forecast here agrees with one an operator writes in PromQL. Times are seconds
(Unix time or any other origin, as long as samples and `now_s` share it).

A trend fitted to a sliver of its window says little: a minute of a disk's free
space, extrapolated over a day, turns a temporary file into a full disk. So a
forecast is only made from samples that span at least MIN_SHARE of the window it
is meant to cover, and number at least MIN_SAMPLES (`enough`; docs/rules.md, checks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

MIN_SHARE = 0.25  # of the forecast window (`over`) the samples must span
MIN_SAMPLES = 5


class Direction(StrEnum):
    """Which side of a threshold is bad."""

    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True, slots=True)
class Trend:
    """A straight line: `intercept` is its value at time `at` (seconds).

    Keeping the intercept near the samples, not at t = 0, avoids the cancellation
    an intercept at 1970 would cause with Unix times of today.
    """

    slope: float  # units per second
    intercept: float
    at: float = 0.0

    def value_at(self, t: float) -> float:
        return self.intercept + self.slope * (t - self.at)


def fit(samples: Sequence[tuple[float, float]]) -> Trend | None:
    """The least-squares line through `(t, value)` samples; None when there are fewer
    than two points or all share one time (no line is defined then)."""
    if len(samples) < 2:
        return None
    n = len(samples)
    t_mean = math.fsum(t for t, _ in samples) / n
    v_mean = math.fsum(v for _, v in samples) / n
    sxx = math.fsum((t - t_mean) ** 2 for t, _ in samples)
    if sxx == 0:
        return None
    sxy = math.fsum((t - t_mean) * (v - v_mean) for t, v in samples)
    return Trend(slope=sxy / sxx, intercept=v_mean, at=t_mean)


def span(samples: Sequence[tuple[float, float]]) -> float:
    """Seconds from the oldest sample to the newest (0 without two of them)."""
    if not samples:
        return 0.0
    times = [t for t, _ in samples]
    return max(times) - min(times)


def enough(samples: Sequence[tuple[float, float]], over_s: float) -> bool:
    """Whether `samples` may forecast over a window of `over_s` seconds: at least
    MIN_SAMPLES of them, spanning at least MIN_SHARE of the window."""
    return len(samples) >= MIN_SAMPLES and span(samples) >= MIN_SHARE * over_s


def crossing_time(
    samples: Sequence[tuple[float, float]],
    threshold: float,
    direction: Direction | str,
    now_s: float,
) -> float | None:
    """When the trend of `samples` reaches `threshold` from the good side.

    `now_s` when the trend is already at or past it now; None when there is no
    trend, or it is flat or heads away from the threshold (it never crosses).
    """
    trend = fit(samples)
    if trend is None:
        return None
    bad_side = Direction(direction)
    value_now = trend.value_at(now_s)
    if _reached(value_now, threshold, bad_side):
        return now_s
    heading = trend.slope > 0 if bad_side is Direction.ABOVE else trend.slope < 0
    if not heading:
        return None
    crossing = now_s + (threshold - value_now) / trend.slope
    return crossing if math.isfinite(crossing) else None


def exhausts_within(crossing_s: float | None, now_s: float, horizon_s: float) -> bool:
    """Whether a crossing (from `crossing_time`) falls within `horizon_s` of now."""
    return crossing_s is not None and crossing_s <= now_s + horizon_s


def _reached(value: float, threshold: float, bad_side: Direction) -> bool:
    return value >= threshold if bad_side is Direction.ABOVE else value <= threshold
