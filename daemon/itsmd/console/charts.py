"""Charts drawn on the server as inline SVG (pure: data and `now` in, markup out).

Only numbers and escaped text go into the markup, and colours are attributes (the
console's Content-Security-Policy allows no inline styles). Every chart carries an
`aria-label` saying in words what it shows, and the pages print the figures next
to it: the picture is never the only way to read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from itsmd.checks.forecast import fit
from itsmd.console.present import utc_text
from itsmd.durations import parse_time

GOOD, BAD, NONE, TREND, AXIS = "#1a7f37", "#cf222e", "#8c959f", "#0969da", "#57606a"


def _n(x: float) -> str:
    return f"{x:.1f}"


# ---- availability against an objective


def bar_floor(slo: float | None) -> float:
    """Where an availability bar starts (percent): ten budgets below the objective,
    so that 99.5 % against 99.9 % reads as a short bar, not a full one."""
    if slo is None or slo >= 100:
        return 90.0
    return max(0.0, 100.0 - 10 * (100.0 - slo))


def availability_bar(window: str, ratio: float | None, slo: float | None) -> dict[str, Any]:
    """One window's availability: the figures, whether it meets the objective, and a
    bar (SVG) on a scale from `bar_floor` to 100 % with the objective marked."""
    width, height = 200, 14
    floor = bar_floor(slo)
    percent = None if ratio is None else ratio * 100
    met = None if percent is None or slo is None else percent >= slo
    colour = NONE if percent is None or met is None else (GOOD if met else BAD)
    share = 0.0 if percent is None else min(max((percent - floor) / (100 - floor), 0.0), 1.0)
    said = "no data" if percent is None else f"{percent:.3f} %"
    if slo is not None:
        said += f" against an objective of {slo:g} %"
    parts = [
        f'<svg class="bar" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(window)}: {escape(said)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eaeef2"/>',
        f'<rect x="0" y="0" width="{_n(share * width)}" height="{height}" fill="{colour}"/>',
    ]
    if slo is not None:
        x = (min(max(slo, floor), 100) - floor) / (100 - floor) * width
        parts.append(
            f'<line x1="{_n(x)}" y1="0" x2="{_n(x)}" y2="{height}" stroke="#24292f" '
            'stroke-width="2"/>'
        )
    parts.append("</svg>")
    return {
        "window": window,
        "percent": percent,
        "met": met,
        "floor": floor,
        "svg": Markup("".join(parts)),  # noqa: S704 - numbers and escaped text only
    }


# ---- capacity forecasts


W, H, PAD_L, PAD_R, PAD_T, PAD_B = 600, 220, 56, 12, 12, 28


def _samples(entry: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The series of an entry, when the check stored it: `samples` as [[unix s, value]]."""
    raw = entry.get("samples") or []
    out = []
    for item in raw:
        if isinstance(item, Sequence) and len(item) == 2:
            t, v = item
            if isinstance(t, int | float) and isinstance(v, int | float):
                out.append((float(t), float(v)))
    return sorted(out)


def capacity_chart(entry: Mapping[str, Any], now: datetime) -> Markup | None:
    """The series with its trend line and the threshold, from where the forecast's
    samples start to when the trend crosses the threshold (or now). Without stored
    samples the chart shows what the entry knows: the value now and, when a crossing
    is forecast, the trend from it to the threshold. None without a value."""
    value = entry.get("value")
    if not isinstance(value, int | float):
        return None
    threshold = entry.get("threshold") or {}
    limit = next(iter(threshold.values()), None) if isinstance(threshold, Mapping) else None
    now_s = now.timestamp()
    samples = _samples(entry)
    exhausts = _time(entry.get("exhausts_at"))
    since = _time(entry.get("forecast_since"))
    start = min(
        [t for t, _ in samples] + [since.timestamp() if since else now_s - 3600, now_s - 60]
    )
    end = now_s
    if exhausts is not None:
        end = max(end, min(exhausts.timestamp(), now_s + 4 * (now_s - start)))
    trend: list[tuple[float, float]] = []
    line = fit(samples) if len(samples) >= 2 else None
    if line is not None:
        trend = [(start, line.value_at(start)), (end, line.value_at(end))]
    elif exhausts is not None and isinstance(limit, int | float) and exhausts.timestamp() > now_s:
        # The forecast's line through the value now and the crossing, cut at the end.
        slope = (float(limit) - float(value)) / (exhausts.timestamp() - now_s)
        trend = [(now_s, float(value)), (end, float(value) + slope * (end - now_s))]
    points = samples or [(now_s, float(value))]
    ys = [v for _, v in points] + [v for _, v in trend]
    if isinstance(limit, int | float):
        ys.append(float(limit))
    low, high = min(ys), max(ys)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    margin = (high - low) * 0.08
    low, high = low - margin, high + margin

    def x(t: float) -> float:
        share = (t - start) / (end - start) if end > start else 1.0
        return PAD_L + min(max(share, 0.0), 1.0) * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (high - v) / (high - low) * (H - PAD_T - PAD_B)

    said = f"value now {value:.4g}"
    if isinstance(limit, int | float):
        said += f", threshold {limit:g}"
    said += f", reaches it {utc_text(exhausts)}" if exhausts else ", no crossing forecast"
    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(str(entry.get("check", "")))}: {escape(said)}">',
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="{AXIS}"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="{AXIS}"/>',
        _text(4, y(high - margin) + 4, f"{high - margin:.4g}"),
        _text(4, y(low + margin) + 4, f"{low + margin:.4g}"),
        _text(PAD_L, H - 8, utc_text(_at(start))),
        _text(W - PAD_R, H - 8, utc_text(_at(end)), anchor="end"),
    ]
    if isinstance(limit, int | float):
        ly = _n(y(float(limit)))
        parts.append(
            f'<line class="threshold" x1="{PAD_L}" y1="{ly}" x2="{W - PAD_R}" y2="{ly}" '
            f'stroke="{BAD}" stroke-dasharray="6 4"/>'
        )
    if trend:
        (t0, v0), (t1, v1) = trend
        parts.append(
            f'<line class="trend" x1="{_n(x(t0))}" y1="{_n(y(v0))}" x2="{_n(x(t1))}" '
            f'y2="{_n(y(v1))}" stroke="{TREND}" stroke-width="2" stroke-dasharray="2 3"/>'
        )
    if len(points) > 1:
        path = " ".join(f"{_n(x(t))},{_n(y(v))}" for t, v in points)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="#24292f" '
            'stroke-width="2"/>'
        )
    t_last, v_last = points[-1]
    parts.append(
        f'<circle class="now" cx="{_n(x(t_last))}" cy="{_n(y(v_last))}" r="4" fill="#24292f"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only


def _text(px: float, py: float, text: str, anchor: str = "start") -> str:
    return (
        f'<text x="{_n(px)}" y="{_n(py)}" font-size="11" fill="{AXIS}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
