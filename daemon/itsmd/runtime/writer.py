"""The single writer: every change to incidents goes through one queue.

Concurrent ingest requests are merged into one transaction (group commit): one
load of the state they touch, one correlation pass, one commit, then each request
gets its own answer. Other units of work (incident actions, auto-resolve sweeps)
run one per transaction, in queue order. Serialising writes in one task keeps
correlation of a key race-free inside a process and SQLite's single writer busy
instead of contended.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from itsmd.correlation.rules import RuleSet
from itsmd.correlation.sla import SlaTargets
from itsmd.models import Alert, Event
from itsmd.runtime.batches import (
    BatchRunner,
    Context,
    IngestResult,
    LocalBatches,
    drop_notes,
    isolate,
)
from itsmd.runtime.hotstate import CurrentIncidents
from itsmd.runtime.metrics import Metrics
from itsmd.store import repo
from itsmd.store.engine import Database, StoreUnavailable, describe_error, is_unavailable
from itsmd.store.notes import pop_notes

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
UnitOfWork = Callable[[Connection, datetime], T]


_EVENTS = "itsmd.events"
CONFLICT_ATTEMPTS = 12
# SQLite has one writer: a conflict of an ingest batch there is only a stale cache of
# current incidents, settled at once (here, or in the ingest process).
SQLITE_CONFLICT_ATTEMPTS = 3
# Serialization failure, deadlock detected: another transaction won a race.
_CONFLICT_STATES = frozenset({"40001", "40P01"})


def is_conflict(exc: BaseException) -> bool:
    """A race another writer won (a duplicate key, a row changed since the snapshot):
    running the unit again on what that writer committed settles it."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICT_STATES


async def _backoff(attempt: int) -> None:
    """A short random pause so that two replicas racing for one row stop colliding."""
    await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))


def note_events(conn: Connection, events: Iterable[Event]) -> None:
    """What a unit of work did, for the metrics: the writer counts it after the commit,
    as it counts what ingestion did, so every change is counted the same way."""
    conn.info.setdefault(_EVENTS, []).extend(events)


def _pop_events(conn: Connection) -> list[Event]:
    events: list[Event] = conn.info.pop(_EVENTS, [])
    return events


class Outbox(Protocol):
    """Where units of work put their notifications (see itsmd.notify.worker)."""

    # Its rows for what a transaction noted, as they stand until a reload (the ingest
    # process runs it too): picklable, the same object while routes and base URL are.
    def enqueuer(self) -> Callable[[Connection], int]: ...

    def wake(self) -> None: ...  # after the commit


class Overloaded(StoreUnavailable):
    """Too much is queued: answer 503 now rather than late."""


@dataclass
class _Job:
    future: asyncio.Future[Any]
    alerts: Sequence[Alert] = ()
    work: UnitOfWork[Any] | None = None
    started: bool = False
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.alerts)


class Writer:
    def __init__(
        self,
        db: Database,
        rules: Callable[[], RuleSet],
        sla: Callable[[], SlaTargets],
        clock: Clock,
        metrics: Metrics,
        *,
        max_batch_alerts: int = 2000,
        max_pending_alerts: int = 20000,
        current: CurrentIncidents | None = None,
        outbox: Outbox | None = None,
        batches: BatchRunner | None = None,
    ) -> None:
        """`batches`: where ingest batches run (default: `LocalBatches` on `db` with
        `current`); a runner of its own reads what they are decided under from
        `context`."""
        self._db, self._rules, self._sla = db, rules, sla
        self._outbox = outbox
        self._batches = batches or LocalBatches(db, self.context, current)
        # Told of every committed batch of alerts (heartbeat checks watch them).
        self.on_ingested: Callable[[Sequence[Alert]], None] | None = None
        self._clock, self._metrics = clock, metrics
        self._max_batch, self._max_pending = max_batch_alerts, max_pending_alerts
        self._queue: deque[_Job] = deque()
        self._pending_alerts = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.committed_at: float | None = None  # time.monotonic() of the last commit

    @property
    def batches(self) -> BatchRunner:
        """Where the ingest batches run."""
        return self._batches

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="itsmd-writer")

    async def stop(self) -> int:
        """Refuse new work, finish what is queued; returns how many jobs were drained."""
        self._stopping = True
        drained = len(self._queue)
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            await self._batches.stop()
        return drained

    def context(self) -> Context:
        """What ingest batches are decided under now."""
        return Context(self._rules(), self._sla(), self._enqueuer())

    async def ingest(self, alerts: Sequence[Alert], timeout_s: float = 5.0) -> IngestResult:
        if self._pending_alerts + len(alerts) > self._max_pending:
            raise Overloaded(f"{self._pending_alerts} alerts are waiting to be stored")
        job = self._submit(_Job(asyncio.get_running_loop().create_future(), alerts=alerts))
        result: IngestResult = await self._wait(job, timeout_s)
        return result

    async def run(self, work: UnitOfWork[T], timeout_s: float = 10.0) -> T:
        """Run one unit of work in its own transaction, in queue order."""
        job = self._submit(_Job(asyncio.get_running_loop().create_future(), work=work))
        result: T = await self._wait(job, timeout_s)
        return result

    def _submit(self, job: _Job) -> _Job:
        if not self.running:
            raise StoreUnavailable("not accepting writes (starting or shutting down)")
        self._queue.append(job)
        self._pending_alerts += job.size
        self._wake.set()
        return job

    async def _wait(self, job: _Job, timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            if not job.started:  # never touched the store: nothing of it is stored
                self._queue.remove(job)
                self._pending_alerts -= job.size
                raise Overloaded(f"not stored within {timeout_s:g}s; try again") from None
            return await job.future  # in a running transaction: its outcome is the answer

    async def _loop(self) -> None:
        # Ingest batches handed over and not yet answered (up to the runner's depth);
        # a unit of work waits for them all, and runs alone.
        ingesting: set[asyncio.Task[None]] = set()
        while True:
            if not self._queue:
                if self._stopping:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._queue[0].work is not None:
                if ingesting:
                    await asyncio.wait(ingesting)
                    continue  # the queue may have changed meanwhile (a caller gave up)
                await self._run_work(self._take_batch()[0])
            elif len(ingesting) < self._batches.depth:
                task = asyncio.create_task(self._run_ingest(self._take_batch()))
                ingesting.add(task)
                task.add_done_callback(ingesting.discard)
            else:  # what queues meanwhile makes the next batch
                await asyncio.wait(ingesting, return_when=asyncio.FIRST_COMPLETED)
        if ingesting:
            await asyncio.wait(ingesting)

    def _take_batch(self) -> list[_Job]:
        first = self._queue.popleft()
        batch, size = [first], first.size
        if first.work is None:
            while self._queue and self._queue[0].work is None and size < self._max_batch:
                job = self._queue.popleft()
                batch.append(job)
                size += job.size
        for job in batch:
            job.started = True
            self._pending_alerts -= job.size
        return batch

    async def _run_work(self, job: _Job) -> None:
        assert job.work is not None
        work, now, enqueue = job.work, self._clock(), self._enqueuer()

        def unit(conn: Connection) -> tuple[Any, set[int], int, list[Event]]:
            isolate(conn)
            pop_notes(conn)  # left by a transaction that rolled back
            _pop_events(conn)
            result = work(conn, now)
            events = _pop_events(conn)
            return result, repo.touched_incidents(conn), enqueue(conn), events

        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                result, touched, notified, events = await self._db.write(unit)
                if touched:
                    self._batches.forget()  # rare (humans, ended holds): read them again
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
                if is_conflict(exc) and attempt < CONFLICT_ATTEMPTS:
                    await _backoff(attempt)  # run it again on what the other writer did
                    continue
                _fail(job, self._work_failed(exc))
                return
            break
        self._metrics.record(events)
        if notified and self._outbox is not None:
            self._outbox.wake()
        if not job.future.done():
            job.future.set_result(result)

    def _work_failed(self, exc: Exception) -> Exception:
        """What the caller of a failed unit of work gets. Races are run again (and
        some settled inside the units, with savepoints); a conflict that still gets
        here after every attempt is a 503, counted and logged like an outage."""
        if not isinstance(exc, (SQLAlchemyError, OSError)):
            return exc  # a domain error (409, 404, ...), the caller's to answer
        self._metrics.store_errors.labels("action").inc()
        if is_unavailable(exc) or isinstance(exc, IntegrityError):
            log.warning("unit of work not stored: %s", describe_error(exc))
            return StoreUnavailable(describe_error(exc))
        log.error("unit of work failed on a faulty statement", exc_info=exc)
        return exc

    def _enqueuer(self) -> Callable[[Connection], int]:
        return drop_notes if self._outbox is None else self._outbox.enqueuer()

    async def _run_ingest(self, batch: list[_Job]) -> None:
        attempts = SQLITE_CONFLICT_ATTEMPTS if self._db.sqlite else CONFLICT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                results = await self._ingest_once(batch)
            except Exception as exc:
                if is_conflict(exc) and attempt < attempts:
                    # Another replica changed the same incident, key or alert first:
                    # reload and decide again on what it committed.
                    log.debug("ingest batch conflicted (attempt %d): %s", attempt, exc)
                    error: Exception = StoreUnavailable(describe_error(exc))
                    await _backoff(attempt)
                    continue
                # Still conflicting after every attempt: split a merged batch (one
                # request's own rows may collide), else a 503 to be sent again.
                conflicted = is_conflict(exc)
                if (conflicted and len(batch) == 1) or (is_unavailable(exc) and not conflicted):
                    error = StoreUnavailable(describe_error(exc))
                elif len(batch) > 1:
                    # Not an outage: one request's alerts may be at fault. Each request
                    # runs on its own, so only the faulty one fails.
                    for job in batch:
                        await self._run_ingest([job])
                    return
                else:
                    log.exception("ingest request failed on a faulty statement")
                    error = exc
                break
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            return
        self._metrics.store_errors.labels("ingest").inc()
        log.warning("could not store %d alerts: %s", sum(j.size for j in batch), error)
        for job in batch:
            _fail(job, error)

    async def _ingest_once(self, batch: list[_Job]) -> list[IngestResult]:
        done = await self._batches.run([job.alerts for job in batch], self._clock())
        self.committed_at = time.monotonic()
        self._metrics.correlation_duration.observe(done.correlation_s)
        alerts = [alert for job in batch for alert in job.alerts]
        self._metrics.commit_batch_alerts.observe(len(alerts))
        received = Counter((alert.source, alert.status.value) for alert in alerts)
        for (source, status), count in received.items():  # one update per series, not per alert
            self._metrics.alerts_received.labels(source, status).inc(count)
        self._metrics.record(done.events)
        if done.notified and self._outbox is not None:
            self._outbox.wake()
        if self.on_ingested is not None:
            self.on_ingested(alerts)
        return done.results


def _fail(job: _Job, error: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(error)
