"""Report periods: half-open `[start, end)` spans of local time in a time zone (pure).

`--from 2026-11-01 --to 2026-12-01 --tz Europe/Berlin` is November in Berlin: from
its local midnight to the next month's, whatever the clock changes in between (a
month with the change to winter time has one hour more). The previous period is
the same number of calendar months before when the period is whole months, else
the same number of local days when it is whole days, else the same length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itsmd.durations import format_time, parse_time

MAX_DAYS = 400  # the longest period a review covers (the daily aggregates are kept that long)


class PeriodError(ValueError):
    """A period that cannot be read or makes no sense; the text names the field."""


@dataclass(frozen=True, slots=True)
class Period:
    """`[start, end)` in UTC, read in `zone`."""

    start: datetime
    end: datetime
    zone: str = "UTC"

    @property
    def tz(self) -> tzinfo:
        return zone_of(self.zone)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def days(self) -> float:
        """Local calendar days when both ends are local midnights, else 24-hour days."""
        a, b = self.local(self.start), self.local(self.end)
        if _midnight(a) and _midnight(b):
            return float((b.date() - a.date()).days)
        return self.seconds / 86400

    def json(self) -> dict[str, object]:
        return {
            "from": format_time(self.start),
            "to": format_time(self.end),
            "tz": self.zone,
            "local_from": self.local(self.start).isoformat(),
            "local_to": self.local(self.end).isoformat(),
            "days": self.days(),
            "hours": self.seconds / 3600,
        }


def zone_of(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"tz: unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None


def parse_bound(text: str, zone: tzinfo, name: str) -> datetime:
    """`2026-11-01` (that local midnight) or an RFC 3339 time, as UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(), zone).astimezone(UTC)
        return parse_time(text).astimezone(UTC)
    except ValueError:
        raise PeriodError(
            f"{name}: expected a date (2026-11-01) or an RFC 3339 time, got {text!r}"
        ) from None


def period(start: str | None, end: str | None, zone: str | None) -> Period:
    """The period the parameters name; PeriodError naming the parameter otherwise."""
    name = zone or "UTC"
    tz = zone_of(name)
    if not start:
        raise PeriodError("from: required (a date such as 2026-11-01, or an RFC 3339 time)")
    if not end:
        raise PeriodError("to: required (a date such as 2026-12-01, or an RFC 3339 time)")
    a, b = parse_bound(start, tz, "from"), parse_bound(end, tz, "to")
    if a >= b:
        raise PeriodError(f"from: must be before to ({start} is not before {end})")
    if b - a > timedelta(days=MAX_DAYS):
        raise PeriodError(f"to: a period is at most {MAX_DAYS} days long")
    return Period(a, b, name)


def previous(p: Period) -> Period:
    """The period just before `p`, of the same calendar length (see the module)."""
    tz = p.tz
    a, b = p.local(p.start), p.local(p.end)
    if _midnight(a) and _midnight(b) and a.day == 1 and b.day == 1:
        months = (b.year - a.year) * 12 + b.month - a.month
        first = _add_months(a.date(), -months)
        return Period(_utc(first, tz), p.start, p.zone)
    if _midnight(a) and _midnight(b):
        first = a.date() - (b.date() - a.date())
        return Period(_utc(first, tz), p.start, p.zone)
    return Period(p.start - (p.end - p.start), p.start, p.zone)


def weeks(p: Period) -> list[Period]:
    """The period cut at local Monday midnights: the first and last may be partial."""
    tz = p.tz
    a = p.local(p.start)
    monday = a.date() - timedelta(days=a.weekday())
    out: list[Period] = []
    cursor = p.start
    while cursor < p.end:
        monday += timedelta(days=7)
        nxt = min(_utc(monday, tz), p.end)
        out.append(Period(cursor, nxt, p.zone))
        cursor = nxt
    return out


def week_name(p: Period) -> str:
    """ISO week of the period's first local day: `2026-W45`."""
    year, week, _ = p.local(p.start).isocalendar()
    return f"{year}-W{week:02d}"


def _midnight(moment: datetime) -> bool:
    return moment.time() == time()


def _utc(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tz).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
