"""`storage.busy_timeout` on SQLite writes (docs/configuration.md, `storage`): a write
waits for a lock another process holds, up to the timeout, then answers 503.

Another process (a backup tool, `sqlite3` at a prompt) holds SQLite's write lock
with `BEGIN IMMEDIATE`. These tests hold it for real, from a second connection on
its own thread, so the waits are real ones: the lock is the point.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from itsmd.store.engine import Database, is_unavailable
from tests.api.api_support import WEBHOOK, MakeClient, alert, webhook_body

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@asynccontextmanager
async def write_lock_held(db_url: str, hold_s: float) -> AsyncIterator[None]:
    """Another connection holds the write lock (BEGIN IMMEDIATE) for `hold_s` seconds
    from the moment the block is entered, or until the block ends, then commits."""
    path = db_url.split(":///", 1)[1]
    taken, release, error = threading.Event(), threading.Event(), []

    def hold() -> None:
        lite = sqlite3.connect(path, isolation_level=None, timeout=5)  # past a daemon write
        try:
            lite.execute("BEGIN IMMEDIATE")
            taken.set()
            release.wait(hold_s)
            lite.execute("COMMIT")
        except sqlite3.Error as exc:  # pragma: no cover - shown by the assertion below
            error.append(exc)
            taken.set()
        finally:
            lite.close()

    holder = threading.Thread(target=hold, name="test-lock-holder")
    holder.start()
    await asyncio.to_thread(taken.wait)
    assert not error, error
    try:
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


async def test_a_write_waits_for_a_lock_held_within_busy_timeout(
    make_client: MakeClient, db_url: str
) -> None:
    client = await make_client(busy_timeout=timedelta(seconds=3))
    await client.webhook(alert("Warm", service="api"))  # the unit reads before it writes

    async with write_lock_held(db_url, hold_s=1.0):
        started = time.monotonic()
        resp = await client.post_raw(WEBHOOK, _body("Disk"))
        waited = time.monotonic() - started

    assert resp.status == 200, await resp.text()
    assert waited >= 0.8, f"answered after {waited:.3f}s: it did not wait for the lock"
    assert len(await client.stored_alerts()) == 2


async def test_an_action_waits_for_the_lock_too(make_client: MakeClient, db_url: str) -> None:
    client = await make_client(busy_timeout=timedelta(seconds=3))
    await client.webhook(alert("Down", service="api"))

    async with write_lock_held(db_url, hold_s=1.0):
        started = time.monotonic()
        resp = await client.act("INC-1", "ack")
        waited = time.monotonic() - started

    assert resp.status == 200, await resp.text()
    assert waited >= 0.8
    assert (await client.incident("INC-1"))["status"] == "acknowledged"


async def test_a_lock_held_past_busy_timeout_is_a_503_after_about_busy_timeout(
    make_client: MakeClient, db_url: str
) -> None:
    client = await make_client(busy_timeout=timedelta(seconds=1))
    await client.webhook(alert("Warm", service="api"))

    async with write_lock_held(db_url, hold_s=10):
        started = time.monotonic()
        resp = await client.post_raw(WEBHOOK, _body("Disk"))
        waited = time.monotonic() - started
        body = await resp.json()

    assert resp.status == 503, body
    assert resp.headers.get("Retry-After")
    assert "locked" in body["error"]
    # A background write queued first (a sweep) may wait its own busy_timeout too.
    assert 0.8 <= waited < 2.5, f"answered after {waited:.3f}s, busy_timeout is 1s"
    assert len(await client.stored_alerts()) == 1, "nothing of the refused request"


async def test_the_store_waits_to_write_while_its_readers_never_wait(
    db_url: str, db: Database
) -> None:
    store = Database(db_url, busy_timeout=timedelta(milliseconds=500))

    def read_then_write(conn: Connection) -> None:
        conn.execute(text("SELECT count(*) FROM incidents")).scalar()
        conn.execute(text("DELETE FROM heartbeats WHERE name = 'none'"))

    def count(conn: Connection) -> object:
        return conn.execute(text("SELECT count(*) FROM incidents")).scalar()

    try:
        async with write_lock_held(db_url, hold_s=10):
            started = time.monotonic()
            assert await store.read(count) == 0
            assert time.monotonic() - started < 0.3, "a reader waited for the writer"
            started = time.monotonic()
            with pytest.raises(OperationalError, match="locked") as raised:
                await store.write(read_then_write)
            waited = time.monotonic() - started
        assert is_unavailable(raised.value)
        assert 0.4 <= waited < 1.4, f"gave up after {waited:.3f}s, busy_timeout is 0.5s"
        await store.write(read_then_write)  # the lock is gone
    finally:
        await store.dispose()


def _body(alertname: str) -> bytes:
    return json.dumps(webhook_body(alert(alertname, service="api"))).encode()
