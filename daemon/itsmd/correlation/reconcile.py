"""Reconciliation with Alertmanager, decided without I/O (docs/connectors.md,
"Reconciliation with Alertmanager").

Alertmanager keeps alerts in memory: a resolve it could not deliver is gone after
it restarts, and the incident would stay open for ever. Each round compares the
alerts itsmd stores as firing from Alertmanager with what every Alertmanager
holds (`GET /api/v2/alerts`), and repairs two differences once they have lasted
`grace` (Alertmanager may still be delivering, within its group_wait and
group_interval):

- a stored firing alert that no Alertmanager holds is resolved;
- an alert an Alertmanager holds as `active` (neither silenced, inhibited nor
  unprocessed: those it does not send) that itsmd never stored is ingested.

Absence is proven only when every Alertmanager answered: a round with one out of
reach resolves nothing and starts no clock of absence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from itsmd.correlation.correlate import SAME_START, Identity
from itsmd.durations import format_duration, format_time
from itsmd.models import ACTIVE, Alert, HeldAlert


@dataclass(frozen=True, slots=True)
class Answer:
    """What one Alertmanager answered in a round: its alerts, or why it did not."""

    url: str
    held: tuple[HeldAlert, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """A stored firing episode that came from Alertmanager."""

    fingerprint: str
    starts_at: datetime

    @property
    def identity(self) -> Identity:
        return (self.fingerprint, self.starts_at)


@dataclass(frozen=True, slots=True)
class Resolve:
    firing: Firing
    since: datetime  # the first round that found it in no Alertmanager: its end
    why: str


@dataclass(frozen=True, slots=True)
class Ingest:
    alert: Alert
    why: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What a round decided."""

    complete: bool  # every Alertmanager answered
    resolve: tuple[Resolve, ...] = ()
    ingest: tuple[Ingest, ...] = ()
    missing: int = 0  # stored firing alerts no Alertmanager holds, within grace
    unseen: int = 0  # active alerts never stored, within grace


@dataclass
class Reconciler:
    """The clocks of absence between rounds (in memory: a replica that takes over
    starts them again, so a repair waits up to `grace` more)."""

    grace: timedelta
    receiver: str | None = None  # ingest only alerts routed to this receiver
    missing_since: dict[Identity, datetime] = field(default_factory=dict)
    unseen_since: dict[Identity, datetime] = field(default_factory=dict)

    def candidates(self, firing: Iterable[Firing], answers: Sequence[Answer]) -> set[str]:
        """Fingerprints of active alerts that are not stored as firing: `plan` needs
        the latest stored start of each (a resolve already stored is newer news)."""
        stored = {f.fingerprint for f in firing}
        return {h.alert.fingerprint for h in self._ingestible(answers)} - stored

    def plan(
        self,
        firing: Sequence[Firing],
        latest_start: Mapping[str, datetime],
        answers: Sequence[Answer],
        now: datetime,
    ) -> Plan:
        """`latest_start`: the latest stored episode start of each of `candidates`."""
        complete = all(a.error is None for a in answers)
        resolve, missing = self._missing(firing, answers, complete, now)
        ingest, unseen = self._unseen(firing, latest_start, answers, now)
        return Plan(complete, tuple(resolve), tuple(ingest), missing, unseen)

    def _missing(
        self, firing: Sequence[Firing], answers: Sequence[Answer], complete: bool, now: datetime
    ) -> tuple[list[Resolve], int]:
        held = {h.alert.fingerprint for a in answers for h in a.held}
        asked = ", ".join(a.url for a in answers)
        stored = {f.identity for f in firing}
        for gone in [i for i in self.missing_since if i not in stored]:
            del self.missing_since[gone]  # resolved meanwhile, by Alertmanager or a person
        resolve, waiting = [], 0
        for f in firing:
            if f.fingerprint in held:
                self.missing_since.pop(f.identity, None)
                continue
            if not complete:
                continue  # absence is not proven; a clock already running keeps running
            since = self.missing_since.setdefault(f.identity, now)
            if now - since < self.grace:
                waiting += 1
                continue
            why = (
                f"no Alertmanager asked ({asked}) has held it since {_seconds(since)} "
                f"(grace {format_duration(self.grace)})"
            )
            resolve.append(Resolve(f, since, why))
            del self.missing_since[f.identity]
        return resolve, waiting

    def _unseen(
        self,
        firing: Sequence[Firing],
        latest_start: Mapping[str, datetime],
        answers: Sequence[Answer],
        now: datetime,
    ) -> tuple[list[Ingest], int]:
        stored = {f.fingerprint for f in firing}
        holders: dict[Identity, list[str]] = {}
        first: dict[Identity, HeldAlert] = {}
        for answer in answers:
            for h in self._ingestible([answer]):
                fp, start = h.alert.identity
                if fp in stored:
                    continue
                latest = latest_start.get(fp)
                if latest is not None and start <= latest + SAME_START:
                    continue  # that episode is stored, resolved: the resolve is newer
                holders.setdefault(h.alert.identity, []).append(answer.url)
                first.setdefault(h.alert.identity, h)
        for gone in [i for i in self.unseen_since if i not in first]:
            del self.unseen_since[gone]
        ingest, waiting, taken = [], 0, set()
        for identity, h in first.items():
            since = self.unseen_since.setdefault(identity, now)
            if now - since < self.grace:
                waiting += 1
                continue
            if identity[0] in taken:
                continue  # unclustered Alertmanagers each stamped their own startsAt
            taken.add(identity[0])
            why = (
                f"held as active by {', '.join(holders[identity])} since at least "
                f"{_seconds(since)} but never received"
            )
            ingest.append(Ingest(h.alert, why))
            del self.unseen_since[identity]
        return ingest, waiting

    def _ingestible(self, answers: Iterable[Answer]) -> Iterable[HeldAlert]:
        for answer in answers:
            for h in answer.held:
                if h.state == ACTIVE and (self.receiver is None or self.receiver in h.receivers):
                    yield h


def _seconds(moment: datetime) -> str:
    """A round's time in a message: to the second is what a reader needs."""
    return format_time(moment.replace(microsecond=0))
