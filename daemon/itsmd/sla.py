"""SLA clocks: due times per priority and whether they were missed (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsmd.models import Incident, Priority


@dataclass(frozen=True, slots=True)
class SlaTarget:
    respond: timedelta | None  # time to acknowledge
    resolve: timedelta | None


SlaTargets = Mapping[Priority, SlaTarget]


def due_times(
    priority: Priority, opened_at: datetime, targets: SlaTargets
) -> tuple[datetime | None, datetime | None]:
    target = targets.get(priority)
    if target is None:
        return None, None
    respond = opened_at + target.respond if target.respond is not None else None
    resolve = opened_at + target.resolve if target.resolve is not None else None
    return respond, resolve


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
