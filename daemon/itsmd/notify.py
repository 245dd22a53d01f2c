"""The delivery worker: drains the outbox into the sinks (DESIGN section 8).

Each pass claims the next due row of every incident and sink (a lease, so a
replica that dies mid-send gives its rows back), sends them concurrently within
each sink's concurrency limit and a timeout, and records the answer: sent, a
retry with exponential backoff and jitter, or a dead letter once the sink says
the failure is permanent or the attempts run out. A row is marked sent only
after the peer acknowledged it, so a crash in between sends it again with the
same event id (at least once; peers deduplicate on `X-Itsmd-Event-Id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from itsmd.connconfig import SinkSpec
from itsmd.connector import Delivered, Delivery, Failed, Notification, Retry, Sink
from itsmd.metrics import Metrics
from itsmd.routes import Route
from itsmd.store import outbox
from itsmd.store.engine import StoreUnavailable
from itsmd.writer import Writer

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass
class SinkRunner:
    """A configured sink with its delivery policy and concurrency limit."""

    spec: SinkSpec
    sink: Sink
    limit: asyncio.Semaphore = field(init=False)
    failing: bool = False  # log when a sink starts failing and when it recovers

    def __post_init__(self) -> None:
        self.limit = asyncio.Semaphore(self.spec.concurrency)

    def backoff_s(self, attempts: int, asked_s: float | None) -> float:
        """Exponential from `backoff`, capped, with ±20% jitter; a peer's Retry-After wins."""
        if asked_s is not None:
            return min(asked_s, self.spec.max_backoff_s)
        base = min(self.spec.backoff_s * 2.0 ** max(attempts - 1, 0), self.spec.max_backoff_s)
        return float(base * random.uniform(0.8, 1.2))


class Notifier:
    """The outbox for the writer (enqueue, wake) and the worker that drains it."""

    def __init__(
        self,
        routes: Callable[[], Sequence[Route]],
        base_url: Callable[[], str],
        clock: Clock,
        metrics: Metrics,
        *,
        poll_s: float = 1.0,
    ) -> None:
        self._writer: Writer | None = None
        self._routes, self._base_url = routes, base_url
        self._clock, self._metrics, self._poll_s = clock, metrics, poll_s
        self._sinks: dict[str, SinkRunner] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- the outbox side, called by the writer inside and after a transaction

    def enqueue(self, conn: Connection) -> int:
        return outbox.enqueue(conn, self._routes(), self._base_url())

    def wake(self) -> None:
        self._wake.set()

    # -- the worker

    def set_sinks(self, sinks: Mapping[str, SinkRunner]) -> None:
        """Use these sinks from the next pass on (a reload); sends in flight finish."""
        self._sinks = dict(sinks)

    def start(self, writer: Writer, *, sole_writer: bool = False) -> None:
        """`sole_writer`: no other process uses this store (SQLite), so leases left by a
        crash of this daemon are released at once instead of running out."""
        self._writer = writer
        self._task = asyncio.create_task(self._loop(sole_writer), name="itsmd-notifier")

    async def stop(self, timeout_s: float = 5.0) -> int:
        """Stop claiming, give sends in flight `timeout_s`; returns how many were cut off.

        A cut-off send keeps its lease until it expires and is then sent again.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self._sending:
            return 0
        _, cut = await asyncio.wait(self._sending, timeout=timeout_s)
        for task in cut:
            task.cancel()
        return len(cut)

    async def _loop(self, sole_writer: bool) -> None:
        if sole_writer:
            try:
                released = await self._store().run(lambda conn, _: outbox.release_leases(conn))
                if released:
                    log.info("%d notifications claimed before a crash are due again", released)
            except StoreUnavailable as exc:
                log.warning("could not release old leases: %s", exc)
        while not self._stopping:
            try:
                claimed = await self.deliver_due()
            except StoreUnavailable as exc:
                log.warning("outbox pass skipped: %s", exc)
                claimed = 0
            if claimed:
                continue  # a sent row may have freed the next one of its incident
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def deliver_due(self) -> int:
        """One pass: claim what is due, send it, record the answers; returns how many."""
        lease = timedelta(seconds=max((s.spec.timeout_s for s in self._sinks.values()), default=10))

        def take(conn: Connection, now: datetime) -> tuple[list[outbox.Claimed], int]:
            return outbox.claim(conn, now, lease + timedelta(seconds=30)), outbox.pending_count(
                conn
            )

        claimed, pending = await self._store().run(take)
        self._metrics.outbox_pending.set(pending)
        if claimed:
            tasks = [asyncio.create_task(self._deliver(row)) for row in claimed]
            self._sending.update(tasks)
            for task in tasks:
                task.add_done_callback(self._sending.discard)
            await asyncio.gather(*tasks)
        return len(claimed)

    async def _deliver(self, row: outbox.Claimed) -> None:
        runner = self._sinks.get(row.sink)
        if runner is None:
            await self._record(row, Failed(f"sink {row.sink!r} is no longer configured"), None)
            return
        notification = Notification(
            event_id=row.event_id, event=row.event, at=row.created_at,
            incident=row.payload.get("incident"), problem=row.payload.get("problem"),
            link=str(row.payload.get("link", "")), ref=row.ref, attempt=row.attempts + 1,
        )  # fmt: skip
        async with runner.limit:
            try:
                result = await asyncio.wait_for(
                    runner.sink.send(notification), runner.spec.timeout_s
                )
            except TimeoutError:
                result = Retry(f"no answer within {runner.spec.timeout_s:g}s")
            except Exception as exc:
                log.exception("sink %s failed on %s", row.sink, row.event_id)
                result = Retry(f"{type(exc).__name__}: {exc}")
        await self._record(row, result, runner)

    def _store(self) -> Writer:
        assert self._writer is not None, "start() first"
        return self._writer

    async def _record(
        self, row: outbox.Claimed, result: Delivery, runner: SinkRunner | None
    ) -> None:
        now = self._clock()
        outcome = _outcome(row, result, runner)
        work: Callable[[Connection, datetime], None]
        if isinstance(result, Delivered):
            work = functools.partial(_sent, row=row, ref=result.ref)
            latency = max((now - max(row.due_at, row.created_at)).total_seconds(), 0.0)
            self._metrics.notification_latency.labels(row.sink).observe(latency)
        elif isinstance(result, Retry) and outcome == "retry" and runner is not None:
            delay = runner.backoff_s(row.attempts + 1, result.after_s)
            due = now + timedelta(seconds=delay)
            work = functools.partial(_retry, row=row, due=due, error=result.reason)
        else:
            error = result.reason
            if isinstance(result, Retry):
                error = f"gave up after {row.attempts + 1} attempts: {error}"
            work = functools.partial(_dead, row=row, error=error)
        self._log_transition(row, result, runner, outcome)
        self._metrics.notifications.labels(row.sink, outcome).inc()
        try:
            await self._store().run(work)
        except StoreUnavailable as exc:  # the lease runs out and the row is sent again
            log.warning("could not record delivery of %s: %s", row.event_id, exc)

    def _log_transition(
        self, row: outbox.Claimed, result: Delivery, runner: SinkRunner | None, outcome: str
    ) -> None:
        if outcome == "dead":
            log.error("%s %s to %s given up: %s", row.subject, row.event, row.sink,
                      getattr(result, "reason", ""))  # fmt: skip
        if runner is None:
            return
        if outcome == "retry" and not runner.failing:
            runner.failing = True
            log.warning("sink %s failing: %s", row.sink, getattr(result, "reason", ""))
        elif outcome == "sent" and runner.failing:
            runner.failing = False
            log.info("sink %s delivers again", row.sink)


def _sent(conn: Connection, now: datetime, *, row: outbox.Claimed, ref: str | None) -> None:
    outbox.mark_sent(conn, row, now, ref)


def _retry(
    conn: Connection, _: datetime, *, row: outbox.Claimed, due: datetime, error: str
) -> None:
    outbox.mark_retry(conn, row, due, error)


def _dead(conn: Connection, _: datetime, *, row: outbox.Claimed, error: str) -> None:
    outbox.mark_dead(conn, row, error)


def _outcome(row: outbox.Claimed, result: Delivery, runner: SinkRunner | None) -> str:
    if isinstance(result, Delivered):
        return "sent"
    if isinstance(result, Retry) and runner is not None:
        return "retry" if row.attempts + 1 < runner.spec.max_attempts else "dead"
    return "dead"
