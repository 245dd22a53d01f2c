"""Availability history and leader leases in the store (SQLite and PostgreSQL): changes
roll up into daily aggregates, old changes are pruned without losing the state at the
cutoff, long windows read the aggregates, and one holder at a time gets a lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from itsmd.checks.availability import State, Uptime
from itsmd.store import checkstore
from itsmd.store.engine import Database

DAY = timedelta(days=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_changes_roll_up_into_days_and_old_changes_are_pruned(db: Database) -> None:
    subject = "check:api"

    def history(conn: Connection) -> None:
        # Up from T0; down 6 h every day at noon, for 60 days.
        checkstore.record_change(conn, subject, T0, State.UP)
        for day in range(60):
            noon = T0 + day * DAY + timedelta(hours=12)
            checkstore.record_change(conn, subject, noon, State.DOWN)
            checkstore.record_change(conn, subject, noon + timedelta(hours=6), State.UP)

    await db.write(history)
    now = T0 + 60 * DAY + timedelta(hours=1)
    written = await db.write(lambda conn: checkstore.roll_up(conn, now))
    assert written == checkstore.RAW_DAYS - 1  # the finished days still in raw history
    assert await db.write(lambda conn: checkstore.roll_up(conn, now)) == 0  # once only

    first = (now - (checkstore.RAW_DAYS - 1) * DAY).date()
    days = await db.read(lambda conn: checkstore.daily(conn, [subject], first, now.date()))
    assert days[subject] == Uptime(
        up_s=18 * 3600 * written, down_s=6 * 3600 * written, maintenance_s=0, unknown_s=0
    )
    # Raw changes older than RAW_DAYS are gone, but the state at the cutoff is kept.
    cutoff = now - checkstore.RAW_DAYS * DAY
    kept = await db.read(lambda conn: checkstore.changes(conn, [subject], cutoff))
    assert kept[subject][0].at <= cutoff
    before = await db.read(lambda conn: checkstore.changes(conn, [subject], T0))
    assert before[subject][0].at > T0 + DAY  # the first month was pruned


async def test_record_change_skips_a_repeat_of_the_current_state(db: Database) -> None:
    def work(conn: Connection) -> list[bool]:
        return [
            checkstore.record_change(conn, "check:x", T0, State.UP),
            checkstore.record_change(conn, "check:x", T0 + DAY, State.UP),
            checkstore.record_change(conn, "check:x", T0 + 2 * DAY, State.DOWN),
        ]

    assert await db.write(work) == [True, False, True]


async def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(db: Database) -> None:
    ttl = timedelta(seconds=15)
    Lease = checkstore.Lease

    async def hold(holder: str, at: datetime) -> checkstore.Lease:
        lease: checkstore.Lease = await db.write(
            lambda conn: checkstore.hold_lease(conn, "checks", holder, at, ttl)
        )
        return lease

    assert await hold("a", T0) is Lease.TAKEN
    assert await hold("b", T0 + timedelta(seconds=5)) is Lease.LOST
    assert await hold("a", T0 + timedelta(seconds=10)) is Lease.RENEWED  # until T0 + 25 s
    assert await hold("b", T0 + timedelta(seconds=20)) is Lease.LOST
    assert await hold("b", T0 + timedelta(seconds=26)) is Lease.TAKEN  # a stopped renewing
    assert await hold("a", T0 + timedelta(seconds=27)) is Lease.LOST
    assert await hold("b", T0 + timedelta(seconds=45)) is Lease.TAKEN  # its own, lapsed


async def test_a_released_lease_is_taken_at_once_and_only_its_holder_releases_it(
    db: Database,
) -> None:
    ttl = timedelta(seconds=15)

    async def hold(holder: str, at: datetime) -> checkstore.Lease:
        lease: checkstore.Lease = await db.write(
            lambda conn: checkstore.hold_lease(conn, "checks", holder, at, ttl)
        )
        return lease

    async def release(holder: str, at: datetime) -> bool:
        done: bool = await db.write(
            lambda conn: checkstore.release_lease(conn, "checks", holder, at)
        )
        return done

    assert await hold("a", T0) is checkstore.Lease.TAKEN
    assert await release("b", T0 + timedelta(seconds=1)) is False  # not b's to give
    assert await hold("b", T0 + timedelta(seconds=2)) is checkstore.Lease.LOST
    assert await release("a", T0 + timedelta(seconds=3)) is True
    assert await hold("b", T0 + timedelta(seconds=3)) is checkstore.Lease.TAKEN


async def test_a_long_window_joins_the_aggregates_and_the_raw_history_at_midnight(
    db: Database,
) -> None:
    from tests.api.conftest import rule_set

    rules = rule_set("checks:\n  - {name: api, type: tcp, target: '127.0.0.1:1'}\n")
    subject = "check:api"

    def history(conn: Connection) -> None:
        # Up from T0; down 6 h every day at noon, for 61 days.
        checkstore.record_change(conn, subject, T0, State.UP)
        for day in range(61):
            noon = T0 + day * DAY + timedelta(hours=12)
            checkstore.record_change(conn, subject, noon, State.DOWN)
            checkstore.record_change(conn, subject, noon + timedelta(hours=6), State.UP)

    await db.write(history)
    for day in range(1, 61):  # the roll-up runs every hour; once a day is enough here
        await db.write(lambda conn, d=day: checkstore.roll_up(conn, T0 + d * DAY))
    now = T0 + 60 * DAY + timedelta(hours=20)  # the raw part starts mid-day, at 20:00
    window = timedelta(days=60)
    body = await db.read(
        lambda conn: checkstore.availability_report(conn, rules, now, [window], window)
    )
    (doc,) = body["checks"]
    # Whole days 0..59 (down 6 h each), then day 60 until 20:00 (down 6 h, up 14 h).
    down, up = 61 * 6 * 3600, (60 * 18 + 14) * 3600
    assert doc["downtime_s"]["60d"] == down
    assert doc["availability"]["60d"] == pytest.approx(up / (up + down))


async def test_a_long_window_says_how_much_of_it_the_history_covers(db: Database) -> None:
    from tests.api.conftest import rule_set

    rules = rule_set("checks:\n  - {name: api, type: tcp, target: '127.0.0.1:1'}\n")
    subject, began = "check:api", T0 + 20 * DAY + timedelta(hours=6)

    def history(conn: Connection) -> None:
        # Up from day 20, 06:00; down 6 h every day at noon until day 60.
        checkstore.record_change(conn, subject, began, State.UP)
        for day in range(20, 61):
            noon = T0 + day * DAY + timedelta(hours=12)
            checkstore.record_change(conn, subject, noon, State.DOWN)
            checkstore.record_change(conn, subject, noon + timedelta(hours=6), State.UP)

    await db.write(history)
    for day in range(21, 61):
        await db.write(lambda conn, d=day: checkstore.roll_up(conn, T0 + d * DAY))
    now = T0 + 60 * DAY + timedelta(hours=20)
    window = timedelta(days=60)
    body = await db.read(
        lambda conn: checkstore.availability_report(conn, rules, now, [window], window)
    )
    (doc,) = body["checks"]
    # The window runs from T0 (whole UTC days): 60 d 20 h, known from day 20, 06:00.
    assert doc["coverage"]["60d"] == pytest.approx((40 * 24 + 14) / (60 * 24 + 20))
    # Raw changes before day 25 are pruned: the aggregates know the first day.
    assert doc["measured_since"] == "2026-01-21T00:00:00Z"
