"""SQLite's log folded back into the file off the writer's thread (store/checkpoints.py):
the writer keeps only a backstop checkpoint, the daemon's own thread copies the log,
and the writer then starts the log again, so that it does not grow."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from itsmd.config import Settings
from itsmd.server.app import build_app
from itsmd.server.serve import serve
from itsmd.store.checkpoints import BACKSTOP_PAGES, Checkpoints
from itsmd.store.engine import Database

TIMEOUT = timedelta(seconds=5)


def _fill(conn: Connection, rows: int = 200) -> None:
    conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 500}] * rows)


async def test_the_writer_checkpoints_only_as_a_backstop(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'itsmd.db'}", busy_timeout=TIMEOUT)
    try:
        pages = await db.write(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        assert pages == BACKSTOP_PAGES
    finally:
        await db.dispose()


async def test_a_checkpoint_copies_the_log_and_the_writer_starts_it_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "itsmd.db"
    db = Database(f"sqlite:///{path}", busy_timeout=TIMEOUT)
    checkpoints = Checkpoints(path, busy_timeout=TIMEOUT)
    try:
        await db.write(_fill)
        in_log, copied = checkpoints.run_once()
        assert in_log > 20  # 200 rows of 500 bytes: pages, far below the backstop
        assert copied == in_log
        await db.write(lambda conn: _fill(conn, rows=1))
        # The log began again at its start: it holds the last write's pages only.
        in_log_after, copied_after = checkpoints.run_once()
        assert 0 < in_log_after < in_log
        assert copied_after == in_log_after
    finally:
        checkpoints.stop()
        await db.dispose()


async def test_the_daemons_thread_runs_until_the_store_closes(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    db = Database(f"sqlite:///{path}", busy_timeout=TIMEOUT)
    await db.write(_fill)
    db.checkpoint_in_background()
    assert "itsmd-sqlite-checkpoint" in {t.name for t in threading.enumerate()}
    await db.dispose()
    assert "itsmd-sqlite-checkpoint" not in {t.name for t in threading.enumerate()}
    # Its connection closed before the store's: the last one folded the log in and
    # removed it, as SQLite does when no connection is left.
    assert not Path(f"{path}-wal").exists()


async def test_a_failing_checkpoint_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_database = tmp_path / "itsmd.db"
    not_a_database.write_bytes(b"not SQLite" * 1000)
    checkpoints = Checkpoints(not_a_database, busy_timeout=TIMEOUT, every=timedelta(milliseconds=1))
    with caplog.at_level(logging.WARNING, logger="itsmd.store.checkpoints"):
        checkpoints.start()
        for _ in range(500):  # until several attempts have failed
            await asyncio.sleep(0.002)
            if checkpoints.failures >= 3:
                break
        checkpoints.stop()
    assert checkpoints.failures >= 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "checkpoint of the SQLite log failed" in warnings[0]


def test_a_checkpoint_never_makes_a_store_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "gone.db"
    checkpoints = Checkpoints(missing, busy_timeout=TIMEOUT)
    with pytest.raises(sqlite3.OperationalError):
        checkpoints.run_once()
    assert not missing.exists()


async def test_a_start_up_that_fails_after_the_store_opened_closes_it(tmp_path: Path) -> None:
    """Nothing of the store is left running (its checkpoint thread, say) to keep the
    process from exiting."""
    path = tmp_path / "itsmd.db"
    app = build_app(
        Settings(database=f"sqlite+aiosqlite:///{path}"), migrate=True, run_checks=False
    )

    async def later_step(_app: object) -> AsyncIterator[None]:
        raise RuntimeError("a later start-up step failed")
        yield  # pragma: no cover

    app.cleanup_ctx.append(later_step)
    with pytest.raises(RuntimeError, match="later start-up step"):
        await serve(app, "127.0.0.1", 0)
    assert "itsmd-sqlite-checkpoint" not in {t.name for t in threading.enumerate()}
    assert path.exists()
    assert not Path(f"{path}-wal").exists()  # the store was closed
