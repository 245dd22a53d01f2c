"""The delivery worker: drains the outbox into the sinks (docs/connectors.md).

Each pass claims the next due row of every incident and sink, as many per sink
as it has free slots (its `concurrency` less the sends in flight), each with a
lease (its timeout plus a margin, so a replica that dies mid-send gives its rows
back). Sends run as tasks of their own within the timeout; the worker does not
wait for them, so a slow sink holds up only its own slots. Each answer is
recorded: sent, a retry with exponential backoff and jitter, or a dead letter
once the sink says the failure is permanent or the attempts run out. A row is
marked sent only after the peer acknowledged it, so a crash in between sends it
again with the same event id (at least once; peers deduplicate on
`X-Itsmd-Event-Id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from itsmd.notify.config import SinkSpec
from itsmd.notify.connector import Delivered, Delivery, Failed, Notification, Retry, Sink
from itsmd.notify.routes import Route
from itsmd.runtime.metrics import Metrics
from itsmd.runtime.writer import Writer
from itsmd.store import outbox
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
# A claim outlives the send's timeout by this much: time to record the answer
# through the writer's queue before another replica may take the row again.
LEASE_MARGIN = timedelta(seconds=30)
ERROR_BACKOFF_S = 5.0  # after a pass that failed unexpectedly
PENDING_COUNT_EVERY_S = 1.0  # itsmd_outbox_pending is counted at most this often


@dataclass
class SinkRunner:
    """A configured sink with its delivery policy."""

    spec: SinkSpec
    sink: Sink
    failing: bool = False  # log when a sink starts failing and when it recovers

    def backoff_s(self, attempts: int, asked_s: float | None) -> float:
        """Exponential from `backoff`, capped, with ±20% jitter; a peer's Retry-After wins."""
        if asked_s is not None:
            return min(asked_s, self.spec.max_backoff_s)
        base = min(self.spec.backoff_s * 2.0 ** max(attempts - 1, 0), self.spec.max_backoff_s)
        return float(base * random.uniform(0.8, 1.2))


class OutboxWorker:
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
        self._enqueuer: functools.partial[int] | None = None
        self._clock, self._metrics, self._poll_s = clock, metrics, poll_s
        self._sinks: dict[str, SinkRunner] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], outbox.Claimed] = {}
        self._busy: Counter[str] = Counter()  # sends in flight per sink
        self._count_after = 0.0  # monotonic time of the next count of pending rows
        self._stopping = False

    # -- the outbox side, called by the writer inside and after a transaction

    def enqueuer(self) -> Callable[[Connection], int]:
        routes, base_url = self._routes(), self._base_url()
        made = self._enqueuer
        if (
            made is None
            or made.keywords["routes"] is not routes
            or made.keywords["base_url"] != base_url
        ):
            made = self._enqueuer = functools.partial(
                outbox.enqueue, routes=routes, base_url=base_url
            )
        return made

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
        self._task = asyncio.create_task(self._loop(sole_writer), name="itsmd-outbox")

    async def stop(self, timeout_s: float = 5.0) -> int:
        """Stop claiming, give sends in flight `timeout_s`; returns how many were cut off.

        The claims of cut-off sends are given back, so they are sent again at once
        (by another replica, or at the next start).
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            _, late = await asyncio.wait([self._task], timeout=timeout_s)
            for task in late:  # stuck on the store: the writer is going away
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not self._sending:
            return 0
        _, cut = await asyncio.wait(list(self._sending), timeout=timeout_s)
        rows = [self._sending[task] for task in cut]
        for task in cut:
            task.cancel()
        if rows:
            try:
                await self._store().run(lambda conn, _: outbox.release(conn, rows), 2.0)
            except StoreUnavailable as exc:
                log.warning("cut-off sends keep their claims until they run out: %s", exc)
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
            self._wake.clear()
            pause = self._poll_s
            try:
                if not self._saturated() and await self._pass():
                    continue  # there may be more, for sinks with slots left
            except StoreUnavailable as exc:
                log.warning("outbox pass skipped: %s", exc)
            except Exception:  # a bug must not stop every notification for good
                log.exception("outbox pass failed")
                pause = max(pause, ERROR_BACKOFF_S)
            # A finished send wakes the loop: its slot is free and the next row of
            # its subject may be deliverable now.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def _saturated(self) -> bool:
        """Every sink's slots are taken: a pass could claim nothing (the store is
        spared a claim per commit while a burst drains; a finished send wakes it)."""
        sinks = self._sinks
        return bool(sinks) and all(self._busy[n] >= r.spec.concurrency for n, r in sinks.items())

    async def deliver_due(self) -> int:
        """One pass that waits for its sends (the worker does not); returns how many."""
        tasks = await self._pass()
        await asyncio.gather(*tasks)
        return len(tasks)

    async def _pass(self) -> list[asyncio.Task[None]]:
        """Claim what is due for the sinks with free slots and start sending it."""
        slots = outbox.Slots(
            free={name: r.spec.concurrency - self._busy[name] for name, r in self._sinks.items()},
            lease={
                name: timedelta(seconds=r.spec.timeout_s) + LEASE_MARGIN
                for name, r in self._sinks.items()
            },
            sending=[row.id for row in self._sending.values()],
        )

        count = time.monotonic() >= self._count_after
        if count:
            self._count_after = time.monotonic() + PENDING_COUNT_EVERY_S

        def take(conn: Connection, now: datetime) -> tuple[list[outbox.Claimed], int | None]:
            return outbox.claim(conn, now, slots), outbox.pending_count(conn) if count else None

        claimed, pending = await self._store().run(take)
        if pending is not None:
            self._metrics.outbox_pending.set(pending)
        tasks = []
        for row in claimed:
            task = asyncio.create_task(self._deliver(row))
            self._sending[task] = row
            self._busy[row.sink] += 1
            task.add_done_callback(functools.partial(self._sent, sink=row.sink))
            tasks.append(task)
        return tasks

    def _sent(self, task: asyncio.Task[None], *, sink: str) -> None:
        del self._sending[task]
        self._busy[sink] -= 1
        self._wake.set()

    async def _deliver(self, row: outbox.Claimed) -> None:
        runner = self._sinks.get(row.sink)
        if runner is None:
            await self._record(row, Failed(f"sink {row.sink!r} is no longer configured"), None)
            return
        notification = Notification(
            event_id=row.event_id,
            event=row.event,
            at=row.created_at,
            incident=row.payload.get("incident"),
            problem=row.payload.get("problem"),
            link=str(row.payload.get("link", "")),
            ref=row.ref,
            attempt=row.attempts + 1,
        )
        try:
            result = await asyncio.wait_for(runner.sink.send(notification), runner.spec.timeout_s)
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
        work: Callable[[Connection, datetime], bool]
        if isinstance(result, Delivered):
            work = functools.partial(_sent, row=row, ref=result.ref)
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
        try:
            held = await self._store().run(work)
        except StoreUnavailable as exc:  # the lease runs out and the row is sent again
            log.warning("could not record delivery of %s: %s", row.event_id, exc)
            return
        if not held:
            log.warning(
                "the claim of %s to %s ran out before its answer was recorded; "
                "the worker that took it over records its own",
                row.event_id,
                row.sink,
            )
            return
        # Counted once recorded: a row's outcome, not an attempt the store never took.
        self._metrics.notifications.labels(row.sink, outcome).inc()
        if isinstance(result, Delivered):
            latency = max((now - max(row.due_at, row.created_at)).total_seconds(), 0.0)
            self._metrics.notification_latency.labels(row.sink).observe(latency)

    def _log_transition(
        self, row: outbox.Claimed, result: Delivery, runner: SinkRunner | None, outcome: str
    ) -> None:
        if outcome == "dead":
            log.error(
                "%s %s to %s given up: %s",
                row.subject,
                row.event,
                row.sink,
                getattr(result, "reason", ""),
            )
        if runner is None:
            return
        if outcome == "retry" and not runner.failing:
            runner.failing = True
            log.warning("sink %s failing: %s", row.sink, getattr(result, "reason", ""))
        elif outcome == "sent" and runner.failing:
            runner.failing = False
            log.info("sink %s delivers again", row.sink)


def _sent(conn: Connection, now: datetime, *, row: outbox.Claimed, ref: str | None) -> bool:
    return outbox.mark_sent(conn, row, now, ref)


def _retry(
    conn: Connection, _: datetime, *, row: outbox.Claimed, due: datetime, error: str
) -> bool:
    return outbox.mark_retry(conn, row, due, error)


def _dead(conn: Connection, _: datetime, *, row: outbox.Claimed, error: str) -> bool:
    return outbox.mark_dead(conn, row, error)


def _outcome(row: outbox.Claimed, result: Delivery, runner: SinkRunner | None) -> str:
    if isinstance(result, Delivered):
        return "sent"
    if isinstance(result, Retry) and runner is not None:
        return "retry" if row.attempts + 1 < runner.spec.max_attempts else "dead"
    return "dead"
