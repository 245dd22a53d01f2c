"""A stop of the check jobs logs no error, also for a job the scheduler had handed to
its executor but that had not started yet (docs/operations.md: a clean stop)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import cast

import pytest

from itsmd.checks.jobs import CheckJobs
from itsmd.checks.runner import CheckRunner
from itsmd.runtime.state import Runtime


async def test_a_job_queued_at_the_stop_is_cut_off_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = CheckJobs(cast(Runtime, None), cast(CheckRunner, None), sole_writer=True)
    started = asyncio.Event()

    async def renew() -> None:  # a lease renewal waiting for the store
        started.set()
        await asyncio.sleep(60)

    jobs.scheduler.add_job(jobs._job(renew), "date", run_date=datetime.now(UTC), id="lease")
    jobs.scheduler.start(paused=True)
    jobs.scheduler.resume()
    # What the scheduler does when the job is due: the executor creates its task, which
    # has not run a single step when the stop comes in the same turn of the loop.
    jobs.scheduler._process_jobs()
    with caplog.at_level(logging.DEBUG):
        await jobs.stop()
        await asyncio.sleep(0.05)  # the executor's callbacks of cancelled tasks
    assert started.is_set(), "the queued job got its first step before the stop cut it off"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
