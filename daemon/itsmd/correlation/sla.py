"""SLA clocks: due times per priority and whether they were missed (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsmd.correlation.businesshours import BusinessHours
from itsmd.models import Incident, Priority


@dataclass(frozen=True, slots=True)
class SlaTarget:
    respond: timedelta | None  # time to acknowledge
    resolve: timedelta | None
    hours: BusinessHours | None = None  # the targets count business time only


SlaTargets = Mapping[Priority, SlaTarget]


def due_times(
    priority: Priority, opened_at: datetime, targets: SlaTargets
) -> tuple[datetime | None, datetime | None]:
    target = targets.get(priority)
    if target is None:
        return None, None
    return _after(opened_at, target.respond, target), _after(opened_at, target.resolve, target)


def _after(start: datetime, span: timedelta | None, target: SlaTarget) -> datetime | None:
    if span is None:
        return None
    return start + span if target.hours is None else target.hours.add(start, span)


@dataclass(frozen=True, slots=True)
class SlaState:
    respond_due: datetime | None
    resolve_due: datetime | None
    respond_breached: bool
    resolve_breached: bool

    @property
    def breached(self) -> bool:
        return self.respond_breached or self.resolve_breached


def sla_state(inc: Incident, now: datetime) -> SlaState:
    """A target is breached when its moment passed before it was met (or is still unmet)."""
    responded = inc.acknowledged_at or inc.resolved_at
    return SlaState(
        respond_due=inc.respond_due,
        resolve_due=inc.resolve_due,
        respond_breached=_missed(inc.respond_due, responded, now),
        resolve_breached=_missed(inc.resolve_due, inc.resolved_at, now),
    )


def _missed(due: datetime | None, met_at: datetime | None, now: datetime) -> bool:
    if due is None:
        return False
    return (met_at or now) > due


@dataclass(frozen=True, slots=True)
class Clocked:
    """What the SLA summary needs of one incident."""

    priority: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    respond_due: datetime | None
    resolve_due: datetime | None


def _verdict(due: datetime | None, met_at: datetime | None, now: datetime) -> str | None:
    if due is None:
        return None
    if met_at is not None and met_at <= due:
        return "met"
    return "breached" if (met_at or now) > due else "pending"


def summarize(incidents: Iterable[Clocked], now: datetime) -> list[dict[str, object]]:
    """Per priority: respond and resolve targets met, breached or still pending, and the
    mean times to acknowledge and to resolve (docs/api.md, "SLA summary"). Pure."""
    rows: dict[str, dict[str, Any]] = {}
    for inc in incidents:
        row = rows.setdefault(
            inc.priority,
            {
                "priority": inc.priority,
                "incidents": 0,
                "respond": {"met": 0, "breached": 0, "pending": 0},
                "resolve": {"met": 0, "breached": 0, "pending": 0},
                "_ack": [],
                "_res": [],
            },
        )
        row["incidents"] += 1
        responded = inc.acknowledged_at or inc.resolved_at
        for kind, due, met_at in (
            ("respond", inc.respond_due, responded),
            ("resolve", inc.resolve_due, inc.resolved_at),
        ):
            verdict = _verdict(due, met_at, now)
            if verdict is not None:
                row[kind][verdict] += 1
        if inc.acknowledged_at is not None:
            row["_ack"].append((inc.acknowledged_at - inc.opened_at).total_seconds())
        if inc.resolved_at is not None:
            row["_res"].append((inc.resolved_at - inc.opened_at).total_seconds())
    out = []
    for priority in sorted(rows):
        row = rows[priority]
        acks, fixes = row.pop("_ack"), row.pop("_res")
        row["mtta_s"] = sum(acks) / len(acks) if acks else None
        row["mttr_s"] = sum(fixes) / len(fixes) if fixes else None
        out.append(row)
    return out
