"""How the rendered reports write numbers, durations and changes (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Show = Callable[[Any], str]


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if digits == 0 and float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits or 2}f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def duration(value: float | None) -> str:
    """Seconds the way people read them: `45s`, `12m 5s`, `3h 20m`, `2d 4h`."""
    if value is None:
        return "–"
    total = round(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


seconds = duration


def moment(text: str | None, missing: str = "–") -> str:
    """An RFC 3339 UTC time of the document for a reader: `2026-12-06 23:26:00 UTC`
    (to the second; the JSON keeps the precise one)."""
    if not text:
        return missing
    return f"{text[:10]} {text[11:19]} UTC"


def change(f: Mapping[str, Any], show: Show = number) -> str:
    """`+3`, `-12m 5s`, `+1.5 %` (points), `=`, or a dash when unknown."""
    delta = f.get("change")
    if delta is None:
        return "–"
    if delta == 0:
        return "="
    sign = "+" if delta > 0 else "-"
    return sign + show(abs(delta))


def period_title(p: Mapping[str, Any]) -> str:
    start, end = str(p["local_from"])[:10], str(p["local_to"])[:10]
    return f"{start} to {end}"
