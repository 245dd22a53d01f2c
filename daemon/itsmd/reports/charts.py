"""The review's charts as inline SVG (pure: figures in, markup out).

Colours are attributes, never inline styles (the console's Content-Security-Policy
allows none); each chart says in its `aria-label` what it shows, and the figures
are printed beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

COLOURS = {"P1": "#cf222e", "P2": "#bc4c00", "P3": "#9a6700", "P4": "#0969da", "P5": "#8c959f"}
AXIS, GOOD, BAD, MTTA, MTTR = "#57606a", "#1a7f37", "#cf222e", "#0969da", "#8250df"
W, H, PAD_L, PAD_B, PAD_T = 640, 200, 48, 36, 12


def _n(x: float) -> str:
    return f"{x:.1f}"


def _svg(label: str, body: list[str], height: int = H) -> Markup:
    head = f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}">'
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - numbers and escaped text


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="11" fill="{AXIS}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )


def _axes(height: int = H) -> list[str]:
    return [
        f'<line x1="{PAD_L}" y1="{height - PAD_B}" x2="{W - 8}" y2="{height - PAD_B}" '
        f'stroke="{AXIS}"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{height - PAD_B}" stroke="{AXIS}"/>',
    ]


def incidents_per_week(weeks: Sequence[Mapping[str, Any]]) -> Markup:
    """Stacked bars: incidents opened per week, by priority."""
    top = max([w["incidents"] for w in weeks] + [1])
    slot = (W - PAD_L - 8) / max(len(weeks), 1)
    plot = H - PAD_B - PAD_T
    body = [*_axes(), _text(4, PAD_T + 8, str(top)), _text(4, H - PAD_B, "0")]
    for i, w in enumerate(weeks):
        x, y = PAD_L + i * slot + slot * 0.15, float(H - PAD_B)
        for p, colour in COLOURS.items():
            count = w["by_priority"].get(p, 0)
            if not count:
                continue
            h = count / top * plot
            y -= h
            body.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(slot * 0.7)}" height="{_n(h)}" '
                f'fill="{colour}"><title>{escape(w["week"])} {p}: {count}</title></rect>'
            )
        if len(weeks) <= 16 or i % max(1, len(weeks) // 12) == 0:
            body.append(_text(x, H - PAD_B + 14, w["week"][5:]))
    legend_x = PAD_L
    for p, colour in COLOURS.items():
        body.append(f'<rect x="{legend_x}" y="{H - 14}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(legend_x + 14, H - 5, p))
        legend_x += 48
    total = sum(w["incidents"] for w in weeks)
    return _svg(f"Incidents per week by priority: {total} in {len(weeks)} weeks", body)


def trend(weeks: Sequence[Mapping[str, Any]]) -> Markup:
    """MTTA and MTTR medians per week, as two lines (minutes on a shared scale)."""
    series = {
        "MTTA": ([w["mtta_median_s"] for w in weeks], MTTA),
        "MTTR": ([w["mttr_median_s"] for w in weeks], MTTR),
    }
    known = [v for values, _ in series.values() for v in values if v is not None]
    top = max([*known, 60.0]) / 60
    slot = (W - PAD_L - 8) / max(len(weeks), 1)
    plot = H - PAD_B - PAD_T
    body = [*_axes(), _text(4, PAD_T + 8, f"{top:.0f}m"), _text(4, H - PAD_B, "0")]
    legend_x = PAD_L
    for name, (values, colour) in series.items():
        points = [
            f"{_n(PAD_L + (i + 0.5) * slot)},{_n(H - PAD_B - v / 60 / top * plot)}"
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for point in points:
            cx, cy = point.split(",")
            body.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        body.append(f'<rect x="{legend_x}" y="{H - 14}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(legend_x + 14, H - 5, f"{name} median"))
        legend_x += 110
    return _svg("MTTA and MTTR medians per week, in minutes", body)


def availability(services: Sequence[Mapping[str, Any]]) -> Markup | None:
    """One bar per measured service against its objective (a black tick), on a scale
    from ten error budgets below the strictest objective to 100 %."""
    rows = [s for s in services if s["availability"]["ratio"]["value"] is not None]
    if not rows:
        return None
    slos = [s["slo"] for s in rows if s["slo"] is not None and s["slo"] < 100]
    floor = max(0.0, 100 - 10 * (100 - min(slos))) if slos else 90.0
    row_h, label_w = 22, 140
    height = PAD_T + row_h * len(rows) + 8
    width = W - label_w - 70
    body: list[str] = []
    said = []
    for i, s in enumerate(rows):
        y = PAD_T + i * row_h
        percent = s["availability"]["ratio"]["value"] * 100
        share = min(max((percent - floor) / (100 - floor), 0.0), 1.0)
        met = s["availability"]["meets_slo"]
        colour = AXIS if met is None else (GOOD if met else BAD)
        body.append(_text(4, y + 14, str(s["service"])))
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="14" fill="#eaeef2"/>')
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_n(share * width)}" height="14" '
            f'fill="{colour}"/>'
        )
        body.append(_text(label_w + width + 6, y + 14, f"{percent:.3f} %"))
        if s["slo"] is not None:
            x = label_w + (min(max(s["slo"], floor), 100) - floor) / (100 - floor) * width
            body.append(
                f'<line x1="{_n(x)}" y1="{y}" x2="{_n(x)}" y2="{y + 20}" stroke="#24292f" '
                'stroke-width="2"/>'
            )
        said.append(f"{s['service']} {percent:.3f} %")
    return _svg("Availability against the objective: " + ", ".join(said), body, height)


def compression(rules: Sequence[Mapping[str, Any]]) -> Markup | None:
    """Alerts per incident of each rule that opened incidents, as horizontal bars."""
    rows = [r for r in rules if r["alerts_per_incident"]["value"] is not None]
    if not rows:
        return None
    top = max(r["alerts_per_incident"]["value"] for r in rows) or 1.0
    row_h, label_w = 22, 160
    height = PAD_T + row_h * len(rows) + 8
    width = W - label_w - 70
    body = []
    for i, r in enumerate(rows):
        y = PAD_T + i * row_h
        value = r["alerts_per_incident"]["value"]
        body.append(_text(4, y + 14, r["rule"]))
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_n(value / top * width)}" height="14" '
            f'fill="{MTTA}"/>'
        )
        body.append(_text(label_w + value / top * width + 6, y + 14, f"{value:.2f}"))
    return _svg("Alerts per incident per rule", body, height)
