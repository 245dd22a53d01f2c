"""The scheduled side of checks: one job per check, the leader lease, the
availability gauges and the daily roll-up of availability history.

Checks run on their own scheduler so that a reload can replace their jobs
without touching the daemon's other jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection

from itsmd.checks.report import WINDOWS
from itsmd.checks.runner import CheckRunner, schedule_args
from itsmd.checks.spec import CheckSpec
from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import Writer
from itsmd.store import checkstore
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)
LEASE_TTL = timedelta(seconds=15)
LEASE_EVERY = timedelta(seconds=5)
GAUGES_EVERY = timedelta(seconds=60)
ROLL_UP_EVERY = timedelta(hours=1)
STOP_GRACE_S = 2.0  # running jobs get this long at a stop; the whole stop stays under 10 s


class CheckJobs:
    def __init__(
        self, runtime: Runtime, runner: CheckRunner, *, sole_writer: bool, run_checks: bool = True
    ) -> None:
        """`run_checks=False` schedules no check (tests run them one by one)."""
        self.runtime, self.runner, self.sole_writer = runtime, runner, sole_writer
        self.run_checks = run_checks
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._reloads: set[asyncio.Task[None]] = set()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held_until: datetime | None = None  # of the lease as this replica last got it
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Replicas contend for the lease before the first check is due."""
        s, every = self.scheduler, self._every
        if not self.sole_writer:
            await self.hold_lease()
            s.add_job(self._job(self.hold_lease), id="lease", **every(LEASE_EVERY))
        s.add_job(self._job(self.update_gauges), id="availability", **every(GAUGES_EVERY))
        s.add_job(
            self._job(self.roll_up), id="roll-up", next_run_time=_soon(), **every(ROLL_UP_EVERY)
        )
        self._schedule(self.runner.specs)
        self.runtime.metrics.leader.labels("checks").set(1 if self.runner.leader else 0)
        s.start()

    async def stop(self) -> None:
        """Start nothing new, give running jobs a moment, then cut off the rest (a
        check may wait for its target up to its timeout) without reporting them."""
        self._stopping = True
        self.scheduler.pause()
        if self._running:
            await asyncio.wait(self._running, timeout=STOP_GRACE_S)
        self.scheduler.shutdown(wait=False)
        if self._reloads:
            await asyncio.wait(self._reloads, timeout=5)
        if not self.sole_writer and self.runner.leader:
            await self._release_lease()

    async def _release_lease(self) -> None:
        """A clean stop hands the lead over at once, not when the lease runs out."""
        holder = self.holder
        try:
            await asyncio.wait_for(
                self._writer().run(
                    lambda conn, now: checkstore.release_lease(conn, "checks", holder, now)
                ),
                STOP_GRACE_S,  # a stop never waits long for a store out of reach
            )
        except (StoreUnavailable, TimeoutError) as exc:
            why = exc or f"no answer within {STOP_GRACE_S:g}s"
            log.warning("checks lease not released (it runs out by itself): %s", why)
            return
        self.runner.leader = False
        self.runtime.metrics.leader.labels("checks").set(0)
        log.info("checks: lead released for another replica")

    def _job(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
        """A scheduled job that the stop may cut off quietly: the scheduler cancels
        what still runs at shutdown and would log it as a failure."""

        async def run(*args: Any) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await fn(*args)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                log.debug("%s cut off by the stop", getattr(fn, "__name__", fn))
            finally:
                self._running.discard(task)

        return run

    def reloaded(self) -> None:
        """A reload hook: apply the new rule set's checks (runs as a task)."""
        task = asyncio.create_task(self._apply(self.runtime.rules.checks))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _apply(self, specs: Sequence[CheckSpec]) -> None:
        changed, removed = await self.runner.apply(specs)
        for name in removed:
            if self.scheduler.get_job(f"check:{name}") is not None:
                self.scheduler.remove_job(f"check:{name}")
        self._schedule([s for s in specs if s.name in changed])
        if changed or removed:
            log.info("checks: %d added or changed, %d removed", len(changed), len(removed))

    def _schedule(self, specs: Sequence[CheckSpec]) -> None:
        now = datetime.now(UTC)  # the scheduler's own time, whatever clock the app has
        for spec in specs if self.run_checks else ():
            self.scheduler.add_job(
                self._job(self.runner.run),
                "interval",
                args=[spec.name],
                id=f"check:{spec.name}",
                replace_existing=True,
                **schedule_args(spec, now),
            )

    # ---- jobs

    async def hold_lease(self) -> None:
        """Several replicas on one PostgreSQL: one runs the checks, another takes over
        within LEASE_TTL when it dies. A store outage keeps the lead until the lease
        this replica last got runs out (nobody else can take it before), and a lease
        renewed without a gap keeps the state of the checks as it is."""
        holder, started = self.holder, self._now()
        lease: checkstore.Lease | None  # None: unknown, the store is out of reach
        try:
            lease = await self._writer().run(
                lambda conn, now: checkstore.hold_lease(conn, "checks", holder, now, LEASE_TTL)
            )
        except StoreUnavailable as exc:
            log.warning("checks lease not renewed: %s", exc)
            lapsed = self._held_until is None or started >= self._held_until
            lease = checkstore.Lease.LOST if lapsed else None
        if lease is checkstore.Lease.RENEWED or lease is checkstore.Lease.TAKEN:
            self._held_until = started + LEASE_TTL
        taking = lease is checkstore.Lease.TAKEN or (
            lease is checkstore.Lease.RENEWED and not self.runner.leader
        )
        if taking and not await self._take_over():
            lease = checkstore.Lease.LOST  # it runs out unrenewed; some replica takes it then
            taking = False
        held = self.runner.leader if lease is None else lease is not checkstore.Lease.LOST
        if held != self.runner.leader:
            log.info("checks: this replica %s", "leads" if held else "stands by")
        self.runner.leader = held
        self.runtime.metrics.leader.labels("checks").set(1 if held else 0)
        if taking:
            await self.runner.retire_removed()

    async def _take_over(self) -> bool:
        """Taking the lead: start from what the store says the checks fire now (the
        last leader's alerts), not from what this replica knew when it last led."""
        assert self.runtime.db is not None
        try:
            firing = await self.runtime.db.read(checkstore.firing_check_alerts)
        except StoreUnavailable as exc:
            log.warning("checks: cannot take the lead: %s", exc)
            return False
        await self.runner.load(self.runtime.rules.checks, firing)
        return True

    async def update_gauges(self) -> None:
        """`itsmd_availability_ratio{service,window}` for the services with checks."""
        rules, now = self.runtime.rules, self._now()
        windows = list(WINDOWS)

        def read(conn: Connection) -> dict[str, Any]:
            return checkstore.availability_report(conn, rules, now, windows, windows[-1])

        assert self.runtime.db is not None
        try:
            body = await self.runtime.db.read(read)
        except StoreUnavailable as exc:
            log.warning("availability gauges not updated: %s", exc)
            return
        gauge = self.runtime.metrics.availability_ratio
        for doc in body["services"]:
            for window, ratio in doc["availability"].items():
                if ratio is not None:
                    gauge.labels(doc["service"], window).set(ratio)

    async def roll_up(self) -> None:
        try:
            days = await self._writer().run(checkstore.roll_up)
        except StoreUnavailable as exc:
            log.warning("availability roll-up skipped: %s", exc)
            return
        if days:
            log.info("availability: %d subject-days aggregated", days)

    def _now(self) -> datetime:
        return self.runtime.clock()

    def _writer(self) -> Writer:
        assert self.runtime.writer is not None
        return self.runtime.writer

    @staticmethod
    def _every(delta: timedelta) -> dict[str, object]:
        return {
            "trigger": "interval",
            "seconds": delta.total_seconds(),
            "max_instances": 1,
            "coalesce": True,
        }


def _soon() -> datetime:
    return datetime.now(UTC)
