"""The daemon's correlation on an in-memory store, in virtual time.

Used by `itsmd rules test` and `itsmd replay`: alerts are sent at given moments,
and auto-resolve holds end at their exact time, between alerts too, as the
daemon's sweep would end them.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from itsmd.correlate import Correlator, Outcome, Router, WorkingSet
from itsmd.models import Alert, Incident
from itsmd.rules import RuleSet
from itsmd.sla import SlaTargets


class Simulation:
    def __init__(self, rules: RuleSet, sla: SlaTargets | None = None) -> None:
        self.ws = WorkingSet()
        self._correlator = Correlator(Router(rules), self.ws, sla or {})
        self._holds: list[tuple[datetime, int]] = []  # (end, incident id), a heap
        self.now: datetime | None = None

    def send(self, alert: Alert, at: datetime) -> Outcome:
        """Correlate `alert` received at `at` (not before the previous moment)."""
        self.advance(at)
        outcome = self._correlator.apply(alert, at)
        if outcome.incident_id is not None:
            self._watch(outcome.incident_id)
        return outcome

    def advance(self, until: datetime) -> None:
        """Let time pass: holds that end by `until` resolve, in the order they end."""
        while self._holds and self._holds[0][0] <= until:
            end, incident_id = heapq.heappop(self._holds)
            inc = self.ws.incidents.get(incident_id)
            if inc is not None and inc.auto_resolve_at == end:  # not cancelled since
                self._correlator.resolve_due(end, only=[incident_id])
        self.now = until if self.now is None else max(self.now, until)

    def incidents(self) -> list[Incident]:
        """Every incident opened so far, in opening order (temporary ids count down)."""
        return sorted(self.ws.incidents.values(), key=lambda i: -(i.id or 0))

    def _watch(self, incident_id: int) -> None:
        inc = self.ws.incidents[incident_id]
        if inc.auto_resolve_at is not None and inc.resolved_at is None:
            heapq.heappush(self._holds, (inc.auto_resolve_at, incident_id))
