"""SLA clocks: due times per priority and whether they were missed (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
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


class Verdict(StrEnum):
    """Where one SLA target stands (docs/api.md, "SLA summary")."""

    MET = "met"  # reached by its due time (respond: by a person)
    BREACHED = "breached"  # its due time passed first
    PENDING = "pending"  # can still be met
    NOT_NEEDED = "not_needed"  # respond: it resolved by itself before anyone responded


@dataclass(frozen=True, slots=True)
class SlaState:
    respond_due: datetime | None
    resolve_due: datetime | None
    respond: Verdict | None  # None: no target
    resolve: Verdict | None

    @property
    def breached(self) -> bool:
        return Verdict.BREACHED in (self.respond, self.resolve)


def sla_state(inc: Incident, now: datetime) -> SlaState:
    return SlaState(
        respond_due=inc.respond_due,
        resolve_due=inc.resolve_due,
        respond=respond_verdict(inc.respond_due, inc.responded_at, inc.resolved_at, now),
        resolve=resolve_verdict(inc.resolve_due, inc.resolved_at, now),
    )


def respond_verdict(
    due: datetime | None, responded_at: datetime | None, resolved_at: datetime | None, now: datetime
) -> Verdict | None:
    """A respond target is met by a person (acknowledge, assign, comment, or resolve)
    by its due time. An incident that resolved by itself before anyone responded and
    before the due time needed no response: `not_needed`, neither met nor breached."""
    if due is None:
        return None
    if responded_at is not None and (resolved_at is None or responded_at <= resolved_at):
        return Verdict.MET if responded_at <= due else Verdict.BREACHED
    if resolved_at is not None:
        return Verdict.NOT_NEEDED if resolved_at <= due else Verdict.BREACHED
    return Verdict.BREACHED if now > due else Verdict.PENDING


def resolve_verdict(
    due: datetime | None, resolved_at: datetime | None, now: datetime
) -> Verdict | None:
    if due is None:
        return None
    if resolved_at is not None:
        return Verdict.MET if resolved_at <= due else Verdict.BREACHED
    return Verdict.BREACHED if now > due else Verdict.PENDING


@dataclass(frozen=True, slots=True)
class Clocked:
    """What the SLA summary needs of one incident."""

    priority: str
    opened_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    respond_due: datetime | None
    resolve_due: datetime | None


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
                "respond": {"met": 0, "breached": 0, "pending": 0, "not_needed": 0},
                "resolve": {"met": 0, "breached": 0, "pending": 0},
                "_ack": [],
                "_res": [],
            },
        )
        row["incidents"] += 1
        verdicts = (
            ("respond", respond_verdict(inc.respond_due, inc.responded_at, inc.resolved_at, now)),
            ("resolve", resolve_verdict(inc.resolve_due, inc.resolved_at, now)),
        )
        for kind, verdict in verdicts:
            if verdict is not None:
                row[kind][verdict.value] += 1
        if inc.responded_at is not None and (
            inc.resolved_at is None or inc.responded_at <= inc.resolved_at
        ):  # MTTA: time to the first response of a person, while it mattered
            row["_ack"].append((inc.responded_at - inc.opened_at).total_seconds())
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
