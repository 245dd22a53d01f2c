"""The retention job: deletes history older than `retention` once a day, one small
transaction at a time through the writer queue, and reports the size of the store.

Every replica asks hourly whether a run is due; the store's `retention` lease row
lets one of them run each day (store/retention.py, `claim_run`). The size of the
store (`itsmd_store_bytes`) is read by every replica every few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection

from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import Writer
from itsmd.store import retention
from itsmd.store.engine import StoreUnavailable
from itsmd.store.retention import FINISHED_STATES, Kind

log = logging.getLogger(__name__)
T = TypeVar("T")

RUN_EVERY = timedelta(days=1)
ASK_EVERY = timedelta(hours=1)  # how often each replica asks whether a run is due
FIRST_ASK = timedelta(minutes=1)  # after start: a run soon, not during start-up
SIZE_EVERY = timedelta(minutes=5)
# Per transaction: ingestion waits behind one of these at most (bench/RESULTS.md).
INCIDENT_BATCH = 20
ROW_CHUNK = 100
VACUUM_PAGES = 1000  # pages given back to the file system per transaction (about 10 ms)


@dataclass
class RunSummary:
    deleted: Counter[Kind] = field(default_factory=Counter)
    complete: bool = False  # False: cut short (store unavailable, shutdown)
    seconds: float = 0.0
    longest_s: float = 0.0  # the longest of its transactions: what an ingest waited at most
    store_bytes: int | None = None


class Retention:
    """One retention run at a time on this replica (`run` in tests, `start` in the daemon)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.longest_s = 0.0
        for kind in Kind:
            runtime.metrics.retention_deleted.labels(kind.value).inc(0)

    # ---- the daemon's schedule

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(FIRST_ASK, ASK_EVERY, self.run_if_due)),
            asyncio.create_task(self._every(timedelta(0), SIZE_EVERY, self.measure)),
        ]

    async def stop(self) -> None:
        """A run stops between two transactions: what it deleted stays deleted."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(
        self, first: timedelta, every: timedelta, job: Callable[[], Awaitable[object]]
    ) -> None:
        await asyncio.sleep(first.total_seconds())
        # The flag as well as the cancel: Python 3.11's wait_for (inside the writer's
        # wait) loses a cancel that lands as its inner task finishes.
        while not self._stopping:
            try:
                await job()
            except Exception:  # a faulty statement: logged, and the next round runs
                log.exception("retention job failed")
            if not self._stopping:
                await asyncio.sleep(every.total_seconds())

    async def run_if_due(self) -> RunSummary | None:
        """Run if no replica ran in the last RUN_EVERY; None when not due."""
        holder = self.holder
        try:
            due = await self._writer().run(
                lambda conn, now: retention.claim_run(conn, holder, now, RUN_EVERY)
            )
        except StoreUnavailable as exc:
            log.warning("retention: cannot tell whether a run is due: %s", exc)
            return None
        return await self.run() if due else None

    # ---- one run

    async def run(self) -> RunSummary:
        """Delete what is older than the horizons (from the app's clock now)."""
        settings, now = self.runtime.settings.retention, self.runtime.clock()
        summary, started = RunSummary(), time.monotonic()
        self.longest_s = 0.0
        try:
            await self._incidents(now - settings.incidents, summary.deleted)
            await self._loose_alerts(now - settings.incidents, summary.deleted)
            await self._notifications(now - settings.notifications, summary.deleted)
            horizon = now - settings.incidents
            gone = await self._write(partial(retention.delete_problems, horizon=horizon))
            self._count(summary.deleted, Kind.PROBLEMS, gone)
            await self._give_back()
            summary.complete = not self._stopping
        except StoreUnavailable as exc:
            log.warning("retention run cut short (again at the next run): %s", exc)
        summary.seconds = time.monotonic() - started
        summary.longest_s = self.longest_s
        summary.store_bytes = await self.measure()
        log.info(
            "retention: deleted %s in %.1f s (transactions of %.0f ms at most)%s",
            ", ".join(f"{summary.deleted[k]} {k}" for k in Kind),
            summary.seconds,
            summary.longest_s * 1000,
            "" if summary.store_bytes is None else f"; store {summary.store_bytes} bytes",
        )
        return summary

    async def _incidents(self, horizon: datetime, deleted: Counter[Kind]) -> None:
        db = self.runtime.db
        assert db is not None
        kept = await db.read(retention.kept_links)
        after = 0
        while not self._stopping:
            ids = await db.read(
                partial(
                    retention.old_incidents,
                    horizon=horizon,
                    after_id=after,
                    limit=INCIDENT_BATCH,
                    kept=kept,
                )
            )
            if not ids:
                return
            after = ids[-1]
            await self._delete_incidents(ids, horizon, deleted)

    async def _delete_incidents(
        self, ids: list[int], horizon: datetime, deleted: Counter[Kind]
    ) -> None:
        """One batch: its alerts, then its timeline, a chunk per transaction, then
        the incidents themselves (those that are still old and bare)."""
        for kind, step in (
            (Kind.ALERTS, retention.delete_alerts_of),
            (Kind.TIMELINE, retention.delete_timeline_of),
        ):
            while n := await self._write(partial(step, ids=ids, horizon=horizon, limit=ROW_CHUNK)):
                self._count(deleted, kind, n)
        gone = await self._write(partial(retention.delete_incidents, ids=ids, horizon=horizon))
        self._count(deleted, Kind.INCIDENTS, gone)

    async def _loose_alerts(self, horizon: datetime, deleted: Counter[Kind]) -> None:
        after = 0
        while not self._stopping:
            n, after = await self._write(
                partial(
                    retention.delete_loose_alerts, horizon=horizon, after_id=after, limit=ROW_CHUNK
                )
            )
            if not after:
                return
            self._count(deleted, Kind.ALERTS, n)

    async def _notifications(self, horizon: datetime, deleted: Counter[Kind]) -> None:
        for state in FINISHED_STATES:
            while not self._stopping and (
                n := await self._write(
                    partial(
                        retention.delete_notifications,
                        state=state,
                        horizon=horizon,
                        limit=ROW_CHUNK,
                    )
                )
            ):
                self._count(deleted, Kind.NOTIFICATIONS, n)

    async def _give_back(self) -> None:
        """SQLite: hand the freed pages back to the file system, a few at a time."""
        left = None
        while not self._stopping:
            now_left = await self._write(partial(retention.give_back, pages=VACUUM_PAGES))
            if not now_left or now_left == left:  # done, or no progress
                return
            left = now_left

    # ---- the size of the store

    async def measure(self) -> int | None:
        """Set `itsmd_store_bytes` and, from the store's lease row, when the last
        run (on any replica) began; None when the store did not answer."""
        db = self.runtime.db
        if db is None:
            return None
        path = db.sqlite_file

        def read(conn: Connection) -> tuple[int, datetime | None]:
            return retention.store_bytes(conn, path), retention.next_run(conn)

        try:
            size, due = await db.read(read)
        except StoreUnavailable as exc:
            log.debug("store size not measured: %s", exc)
            return None
        self.runtime.metrics.store_bytes.set(size)
        if due is not None:
            self.runtime.metrics.retention_last_run.set((due - RUN_EVERY).timestamp())
        return size

    # ----

    def _count(self, deleted: Counter[Kind], kind: Kind, n: int) -> None:
        if n:
            deleted[kind] += n
            self.runtime.metrics.retention_deleted.labels(kind.value).inc(n)

    async def _write(self, work: Callable[[Connection], T]) -> T:
        """One transaction through the writer queue, behind what ingestion queued;
        then a pause as long as it took, so that the run takes at most half of the
        writer's time however much it has to delete."""
        took = 0.0

        def unit(conn: Connection, _: datetime) -> T:
            nonlocal took
            started = time.perf_counter()
            try:
                return work(conn)
            finally:
                took = time.perf_counter() - started

        result = await self._writer().run(unit, timeout_s=60.0)
        self.longest_s = max(self.longest_s, took)
        await asyncio.sleep(took)
        return result

    def _writer(self) -> Writer:
        writer = self.runtime.writer
        if writer is None or not writer.running:
            raise StoreUnavailable("not accepting writes (starting or shutting down)")
        return writer
