"""What the pages show, worked out from domain objects (pure; the clock is passed in).

Times, ages and countdowns as text; an incident's alerts grouped, each with the labels
that tell it from the others; its timeline with runs of the same line collapsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsmd.folding import fold
from itsmd.models import Action, AlertStatus, StoredAlert, TimelineEntry

# Labels every alert of an incident has in common say nothing about one of them; of the
# labels that differ, these say the most and come first.
FIRST_LABELS = ("alertname", "severity", "instance", "pod", "job")


def utc_text(moment: datetime) -> str:
    """The server-side text of a time (the browser shows it in its own zone)."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def span_text(delta: timedelta) -> str:
    """A length of time in the largest two units a person reads at a glance."""
    seconds = abs(int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def age_text(moment: datetime, now: datetime) -> str:
    """ "12 min ago", or "in 5 min" for a time to come."""
    delta = now - moment
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"{span_text(delta)} ago" if delta > timedelta(0) else f"in {span_text(delta)}"


# ---- alerts of an incident


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert: StoredAlert
    labels: tuple[tuple[str, str], ...]  # those that tell it from the incident's others


@dataclass(frozen=True, slots=True)
class AlertGroup:
    key: str  # firing | resolved | symptom | suppressed
    title: str
    rows: tuple[AlertRow, ...]  # the newest `shown` of them
    total: int


@dataclass(frozen=True, slots=True)
class AlertView:
    common: tuple[tuple[str, str], ...]  # labels all the alerts share
    groups: tuple[AlertGroup, ...]


def _ordered(labels: Mapping[str, str], names: set[str]) -> tuple[tuple[str, str], ...]:
    first = [n for n in FIRST_LABELS if n in names and n in labels]
    rest = sorted(n for n in names if n in labels and n not in FIRST_LABELS)
    return tuple((n, labels[n]) for n in (*first, *rest))


def distinguishing(alerts: Sequence[StoredAlert]) -> tuple[set[str], set[str]]:
    """(common, differing) label names: a name is common when every alert has it with
    the same value. One alert alone has only common labels."""
    names = {n for a in alerts for n in a.labels}
    common = {
        n
        for n in names
        if all(n in a.labels for a in alerts) and len({a.labels[n] for a in alerts}) == 1
    }
    return common, names - common


_GROUPS = (
    ("firing", "Firing"),
    ("resolved", "Resolved"),
    ("symptom", "Symptoms (alerts of downstream services)"),
    ("suppressed", "Suppressed by maintenance"),
)


def _group_of(alert: StoredAlert) -> str:
    action = alert.decision.action
    if action is Action.ATTACHED:
        return "symptom"
    if action is Action.SUPPRESSED:
        return "suppressed"
    return "firing" if alert.status is AlertStatus.FIRING else "resolved"


def alert_view(alerts: Sequence[StoredAlert], shown: int | None = None) -> AlertView:
    """The incident's alerts by group, newest episode first within each, with the
    labels shared by all of them shown once; at most `shown` of each group (None: all)."""
    common, differing = distinguishing(alerts)
    sample = alerts[0].labels if alerts else {}
    groups = []
    for key, title in _GROUPS:
        members = sorted(
            (a for a in alerts if _group_of(a) == key),
            key=lambda a: (a.starts_at, a.id or 0),
            reverse=True,
        )
        if members:
            rows = tuple(AlertRow(a, _ordered(a.labels, differing)) for a in members[:shown])
            groups.append(AlertGroup(key, title, rows, len(members)))
    return AlertView(_ordered(sample, common), tuple(groups))


# ---- timeline


@dataclass(frozen=True, slots=True)
class TimelineLine:
    first: TimelineEntry
    last_at: datetime
    count: int = 1
    alerts: bool = False  # a run of per-alert lines: `first` is the first of `count`


def collapse(entries: Sequence[TimelineEntry]) -> list[TimelineLine]:
    """The timeline folded as `itsmd.folding` says: a flapping alert's re-fires read
    as one line "x40", 500 alerts joining in a storm as one line and "500 alerts"; what
    people did is never folded."""
    return [
        TimelineLine(f.first, f.last.at, f.count, f.run)
        for f in fold(entries, lambda e: (e.kind.value, e.actor, e.message))
    ]
