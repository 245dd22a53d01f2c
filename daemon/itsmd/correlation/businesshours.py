"""Business hours for SLA targets: time that counts only on working days between
opening and closing, in one time zone, skipping holidays (pure).

Arithmetic runs in UTC on the day's opening and closing instants, so a day with
a daylight-saving change is as long as the clock on the wall says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A target further away than this many calendar days is a configuration mistake.
MAX_DAYS = 3660


@dataclass(frozen=True, slots=True)
class BusinessHours:
    zone: ZoneInfo
    days: frozenset[int]  # weekday numbers, Monday = 0
    opens: time
    closes: time
    holidays: frozenset[date] = frozenset()

    def add(self, start: datetime, span: timedelta) -> datetime:
        """The moment `span` of business time after `start` has passed."""
        cursor, left = start.astimezone(UTC), span
        day = cursor.astimezone(self.zone).date()
        for _ in range(MAX_DAYS):
            opens, closes = self._open_span(day)
            begin = max(cursor, opens)
            if begin < closes and day.weekday() in self.days and day not in self.holidays:
                if begin + left <= closes:
                    return begin + left
                left -= closes - begin
            day += timedelta(days=1)
        raise ValueError(f"no end within {MAX_DAYS} days: are any business hours open?")

    def _open_span(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.opens, self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.closes, self.zone).astimezone(UTC)
        return opens, closes


def parse_zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {text!r} (an IANA name such as Europe/Berlin)"
        ) from None


def parse_days(names: list[str]) -> frozenset[int]:
    """`[mon, tue, ...]`, or ranges such as `mon-fri`."""
    days: set[int] = set()
    for name in names:
        first, _, last = name.strip().lower().partition("-")
        for part in (first, last or first):
            if part not in DAY_NAMES:
                raise ValueError(f"unknown day {part!r} (expected {', '.join(DAY_NAMES)})")
        lo, hi = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if hi < lo:
            raise ValueError(f"day range {name!r} runs backwards")
        days.update(range(lo, hi + 1))
    if not days:
        raise ValueError("expected at least one day")
    return frozenset(days)


def parse_span(text: str) -> tuple[time, time]:
    """`09:00-17:00`: opening and closing, the same day."""
    opens_text, _, closes_text = text.partition("-")
    try:
        opens = time.fromisoformat(opens_text.strip())
        closes = time.fromisoformat(closes_text.strip())
    except ValueError:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}") from None
    if closes <= opens:
        raise ValueError(f"closes before it opens: {text!r}")
    return opens, closes
