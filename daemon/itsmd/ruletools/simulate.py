"""The daemon's correlation on an in-memory store, in virtual time.

Used by `itsmd rules test` and `itsmd replay`: alerts are sent at given moments,
and auto-resolve holds end at their exact time, between alerts too, as the
daemon's sweep would end them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from itsmd.correlation.correlate import Correlator, Identity, Outcome, Router, WorkingSet
from itsmd.correlation.problems import JoinProblem, OpenNewProblem, OpenProblem, recurrence
from itsmd.correlation.rules import RuleSet
from itsmd.correlation.sla import SlaTargets
from itsmd.models import Action, Alert, AlertStatus, Incident, IngestAction

FIRING = AlertStatus.FIRING


@dataclass
class SimulatedProblem:
    rule: str
    key: str
    title: str
    incidents: list[int] = field(default_factory=list)
    status: str = "open"


class Simulation:
    def __init__(self, rules: RuleSet, sla: SlaTargets | None = None) -> None:
        self.rules = rules
        self.problems: list[SimulatedProblem] = []  # as the store would link them
        self._opened: set[int] = set()
        self.ws = WorkingSet()
        self._correlator = Correlator(Router(rules), self.ws, sla or {})
        self._holds: list[tuple[datetime, int]] = []  # (end, incident id), a heap
        # Alerts a maintenance window holds back, in the order they came (released in
        # that order, as the sweep releases stored alerts by id): an ordered set.
        self._suppressed: dict[Identity, None] = {}

    def send(self, alert: Alert, at: datetime) -> Outcome:
        """Correlate `alert` received at `at` (not before the previous moment)."""
        self.advance(at)
        outcome = self._correlator.apply(alert, at)
        if outcome.incident_id is not None:
            self._watch(outcome.incident_id)
        if outcome.action is IngestAction.SUPPRESSED:
            self._suppressed[alert.identity] = None
        if outcome.incident_id is not None and outcome.incident_id not in self._opened:
            self._opened.add(outcome.incident_id)
            self._recur(outcome.incident_id, at)
        return outcome

    def _recur(self, incident_id: int, now: datetime) -> None:
        """Problems, as the store links them once a batch's incidents have ids."""
        inc = self.ws.incidents[incident_id]
        key = inc.problem_key
        rule = self.rules.problem_rule_of(key)
        if rule is None or key is None:
            return
        problem = next((p for p in reversed(self.problems) if p.key == key), None)
        found = None
        if problem is not None and problem.status != "resolved":
            found = OpenProblem(self.problems.index(problem))
        linked = {i for p in self.problems for i in p.incidents}
        recent = [
            i.id
            for i in self.ws.incidents.values()
            if i.id is not None
            and i.problem_key == key
            and i.opened_at >= now - rule.within
            and i.id not in linked
        ]
        match recurrence(rule, inc, found, recent, self.ws.opener(incident_id)):
            case JoinProblem(index):
                self.problems[index].incidents.append(incident_id)
            case OpenNewProblem(incident_ids, title):
                incidents = sorted(incident_ids, reverse=True)
                self.problems.append(SimulatedProblem(rule.name, key, title, incidents))

    def advance(self, until: datetime) -> None:
        """Let time pass: holds that end by `until` resolve, in the order they end, and
        suppressed alerts whose window has ended are correlated (as the sweep does)."""
        while self._holds and self._holds[0][0] <= until:
            end, incident_id = heapq.heappop(self._holds)
            inc = self.ws.incidents.get(incident_id)
            if inc is not None and inc.auto_resolve_at == end:  # not cancelled since
                self._correlator.resolve_due(end, only=[incident_id])
        if self._suppressed:
            self._correlator.release_suppressed(until, only=self._suppressed)
            for identity in list(self._suppressed):
                row = self.ws.alerts[identity]
                if row.decision.action is not Action.SUPPRESSED or row.status is not FIRING:
                    del self._suppressed[identity]
                    if row.incident_id is not None:
                        self._watch(row.incident_id)

    def incidents(self) -> list[Incident]:
        """Every incident opened so far, in opening order (temporary ids count down)."""
        return sorted(self.ws.incidents.values(), key=lambda i: -(i.id or 0))

    def _watch(self, incident_id: int) -> None:
        inc = self.ws.incidents[incident_id]
        if inc.auto_resolve_at is not None and inc.resolved_at is None:
            heapq.heappush(self._holds, (inc.auto_resolve_at, incident_id))
