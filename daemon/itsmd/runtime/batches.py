"""One ingest batch in one transaction: route the alerts of the merged requests, load
what they touch, correlate, write, link problems and queue the notifications.

The writer (runtime/writer.py) hands each batch to a runner: `LocalBatches` runs it
on the store's writer thread, in this process; on a SQLite file the ingest process
(runtime/ingestproc.py) runs the same `Batch` in a process of its own, so that
correlating and writing do not wait for the GIL that HTTP and parsing hold.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from itsmd.correlation.correlate import SAME_START, Correlator, Outcome, Router, WorkingSet
from itsmd.correlation.rules import RuleSet
from itsmd.correlation.sla import SlaTargets
from itsmd.models import Alert, AlertStatus, Event, Incident, IngestAction, format_incident_id
from itsmd.runtime.hotstate import CurrentIncidents
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.notes import pop_notes


def isolate(conn: Connection) -> None:
    """Every writer transaction sees one snapshot and fails, rather than overwrites,
    when another replica changed a row it changes (PostgreSQL's REPEATABLE READ): the
    counts and decisions it writes are computed from what it read. SQLite has one
    writer at a time, which is serializable already."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    new: int
    updated: int
    duplicate: int
    unrouted: int
    incidents: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "new": self.new,
            "updated": self.updated,
            "duplicate": self.duplicate,
            "unrouted": self.unrouted,
            "incidents": list(self.incidents),
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What batches are decided under, until a reload replaces a part of it."""

    rules: RuleSet
    sla: SlaTargets
    # The outbox's rows for what a transaction noted, before it commits (picklable).
    enqueue: Callable[[Connection], int]


@dataclass(frozen=True, slots=True)
class Done:
    """A committed batch: each request's answer, and what the writer counts after."""

    results: list[IngestResult]
    events: list[Event]
    correlation_s: float
    notified: int  # outbox rows written


class Batch:
    """The requests of one batch through one transaction: `unit` runs inside it, then
    `committed` or `failed` keeps the memory of current incidents true."""

    def __init__(
        self,
        jobs: Sequence[Sequence[Alert]],
        now: datetime,
        context: Context,
        current: CurrentIncidents | None,
    ) -> None:
        self.jobs, self.now, self.context, self._current = jobs, now, context, current
        rules = context.rules
        self._router = Router(rules)
        self._alerts = [alert for job in jobs for alert in job]
        routes = [
            (a, route)
            for a in self._alerts
            if a.status is AlertStatus.FIRING
            if (route := self._router.route(a.fingerprint, a.labels)) is not None
        ]
        self._keys = {route.key for _, route in routes}
        # Services whose open incidents may take these alerts as symptoms.
        self._upstream = {
            up
            for a, route in routes
            if route.rule.attach_to_upstream and "service" in a.labels
            for up in rules.upstream(a.labels["service"])
        }
        # Alerts that may continue another episode: resolves, and sends without startsAt.
        self._episodic = [
            a.fingerprint
            for a in self._alerts
            if a.status is AlertStatus.RESOLVED or "startsAt" not in a.raw
        ]
        self._known: Sequence[Incident] = ()
        self._missing = self._keys
        if current is not None:
            self._known, self._missing = current.lookup(self._keys)
        self._ws = WorkingSet()
        self._outcomes: list[list[Outcome]] = []
        self._ids: dict[int, int] = {}
        self._correlation_s = 0.0
        self._notified = 0

    def unit(self, conn: Connection) -> None:
        isolate(conn)
        pop_notes(conn)  # left by a transaction that rolled back
        rules, now = self.context.rules, self.now
        ws = self._ws = repo.load_working_set(
            conn,
            (a.identity for a in self._alerts),
            self._episodic,
            self._missing,
            self._known,
            self._upstream,
            near=SAME_START,
        )
        started = time.perf_counter()
        correlator = Correlator(self._router, ws, self.context.sla)
        self._outcomes = [[correlator.apply(a, now) for a in job] for job in self.jobs]
        self._correlation_s = time.perf_counter() - started
        self._ids = repo.flush(conn, ws)
        if rules.problem_rules:
            ws.events.extend(repo.link_problems(conn, ws, self._ids, rules, now))
        repo.touched_incidents(conn)  # what this batch wrote is remembered after
        self._notified = self.context.enqueue(conn)

    def committed(self) -> Done:
        if self._current is not None:
            self._current.remember(self._ws, self._ids, self._keys)
        return Done(
            [_summary(outcomes, self._ids) for outcomes in self._outcomes],
            self._ws.events,
            self._correlation_s,
            self._notified,
        )

    def failed(self) -> None:
        if self._current is not None:
            self._current.clear()  # whether anything committed is uncertain: read again


def drop_notes(conn: Connection) -> int:
    """Where a transaction's notes go without an outbox: nowhere (no rows)."""
    pop_notes(conn)
    return 0


class BatchRunner(Protocol):
    """Where the writer's ingest batches run, in queue order, each committed before
    the next begins; `depth` of them may be handed over before the first is done."""

    depth: int

    async def run(self, jobs: Sequence[Sequence[Alert]], now: datetime) -> Done: ...

    def forget(self) -> None: ...  # another unit of work wrote incidents: read them again

    async def stop(self) -> None: ...


class LocalBatches:
    """Batches on the store's own writer thread, in this process."""

    depth = 1

    def __init__(
        self,
        db: Database,
        context: Callable[[], Context],
        current: CurrentIncidents | None = None,
    ) -> None:
        self._db, self._context = db, context
        self._current = current  # None: read every batch's incidents from the store

    async def run(self, jobs: Sequence[Sequence[Alert]], now: datetime) -> Done:
        batch = Batch(jobs, now, self._context(), self._current)
        try:
            await self._db.write(batch.unit)
        except BaseException:
            batch.failed()
            raise
        return batch.committed()

    def forget(self) -> None:
        if self._current is not None:
            self._current.clear()

    async def stop(self) -> None:
        return None


# Stored as a new row, whether or not it opened or joined an incident.
_NEW = (IngestAction.NEW, IngestAction.UNROUTED, IngestAction.ORPHAN, IngestAction.SUPPRESSED)


def _summary(outcomes: Sequence[Outcome], ids: dict[int, int]) -> IngestResult:
    touched = {ids.get(o.incident_id, o.incident_id) for o in outcomes if o.incident_id}
    actions = Counter(o.action for o in outcomes)
    return IngestResult(
        received=len(outcomes),
        new=sum(actions[a] for a in _NEW),
        updated=actions[IngestAction.UPDATED],
        duplicate=actions[IngestAction.DUPLICATE],
        unrouted=actions[IngestAction.UNROUTED],
        incidents=tuple(format_incident_id(i) for i in sorted(touched)),
    )
