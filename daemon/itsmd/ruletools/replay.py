"""`itsmd replay`: recorded alerts through a rule set in virtual time, touching no store.

Each recorded alert fires at its `startsAt` and, when it was resolved, resolves at
its `endsAt`; the daemon's correlation runs on an in-memory store in that order. A
resolve the daemon received for an alert it never saw firing is recorded with
`"firingReceived": false` (`itsmd export alerts`) and replays as that resolve alone,
so that it opens nothing, as it did in the daemon.
With a second rule set, the incidents of both runs are paired by the alert that
opened them, so a renamed rule or a changed key still reads as a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from itsmd.correlation.rules import RuleSet
from itsmd.correlation.sla import SlaTargets
from itsmd.models import Action, Alert, AlertStatus, Incident, evolve
from itsmd.ruletools.simulate import Simulation

Identity = tuple[str, datetime]
FIRING_RECEIVED = "firingReceived"  # false on a recorded resolve that came alone
COMPARED = ("key", "rule", "title", "priority", "status", "alert_count")


@dataclass(frozen=True)
class Opened:
    """An incident a replay opened, with the alert that opened it."""

    opener: Identity
    incident: Incident

    def summary(self) -> str:
        inc = self.incident
        return (
            f"{inc.opened_at:%Y-%m-%d %H:%M:%S} {inc.priority} {inc.status:<12} "
            f"{inc.alert_count:>4} alerts  {inc.key}  {inc.title!r}"
        )


def events(alerts: Iterable[Alert]) -> list[tuple[datetime, Alert]]:
    """When each recorded alert fired and resolved, in time order."""
    out = []
    for alert in alerts:
        resolved = alert.status is AlertStatus.RESOLVED and alert.ends_at is not None
        if not (resolved and alert.raw.get(FIRING_RECEIVED) is False):
            out.append((alert.starts_at, evolve(alert, status=AlertStatus.FIRING, ends_at=None)))
        if resolved and alert.ends_at is not None:
            out.append((max(alert.ends_at, alert.starts_at), alert))
    out.sort(key=lambda e: e[0])  # stable: a line's firing stays before its resolve
    return out


def replay(
    timeline: list[tuple[datetime, Alert]], rules: RuleSet, sla: SlaTargets | None = None
) -> list[Opened]:
    simulation = Simulation(rules, sla)
    for at, alert in timeline:
        simulation.send(alert, at)
    if timeline:
        simulation.advance(timeline[-1][0])
    openers = {
        a.incident_id: a.identity
        for a in simulation.ws.alerts.values()
        if a.decision.action is Action.OPENED and a.incident_id is not None
    }
    return [Opened(openers[inc.id], inc) for inc in simulation.incidents() if inc.id in openers]


def diff(new: list[Opened], old: list[Opened]) -> list[str]:
    """What changes from the `old` run to the `new` one: `+` opens only with the new
    rules, `-` only with the old, `~` opens with both but differs."""
    before = {o.opener: o for o in old}
    after = {o.opener: o for o in new}
    lines = [f"+ {o.summary()}" for o in new if o.opener not in before]
    lines += [f"- {o.summary()}" for o in old if o.opener not in after]
    for o in new:
        was = before.get(o.opener)
        if was is None:
            continue
        changes = [
            f"{name} {getattr(was.incident, name)!s} -> {getattr(o.incident, name)!s}"
            for name in COMPARED
            if getattr(was.incident, name) != getattr(o.incident, name)
        ]
        if changes:
            lines.append(f"~ {o.summary()}\n    " + "; ".join(changes))
    return lines
