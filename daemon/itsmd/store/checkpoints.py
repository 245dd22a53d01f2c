"""SQLite's write-ahead log folded back into the database file off the writer's thread.

SQLite checkpoints (copies the log's pages into the database file) inside the commit
that takes the log past `wal_autocheckpoint` pages: on the writer's thread, in the
commit every ingest request of the batch waits for. The daemon checkpoints from a
thread of its own instead, every `every`, with PASSIVE checkpoints: they copy what no
reader still needs and neither wait for nor block the writer, whose next write then
starts the log again from its beginning once all of it is copied. The writer's own
checkpoint stays as a backstop at BACKSTOP_PAGES, should this thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from itsmd.store.sqlitefile import connect

log = logging.getLogger(__name__)

# About 40 MB of log at 4 KiB pages before the writer checkpoints itself.
BACKSTOP_PAGES = 10_000
EVERY = timedelta(milliseconds=100)


class Checkpoints:
    def __init__(self, path: Path, *, busy_timeout: timedelta, every: timedelta = EVERY) -> None:
        self._path, self._busy_timeout, self._every = path, busy_timeout, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.failures = 0  # checkpoints that failed, in all

    def start(self) -> None:
        # A daemon thread: should the store never be closed (a start-up that failed
        # half-way), it must not keep the process from exiting.
        self._thread = threading.Thread(
            target=self._run, name="itsmd-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its connection (before the store's own close, whose
        last connection checkpoints the rest and removes the log)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_once(self) -> tuple[int, int]:
        """One PASSIVE checkpoint: (pages in the log, pages of it in the database file)."""
        if self._conn is None:
            self._conn = connect(self._path, "rw", self._busy_timeout.total_seconds())
        try:
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            self._conn.close()  # the next one connects again (a file put back, say)
            self._conn = None
            raise
        _busy, in_log, copied = row
        return int(in_log), int(copied)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._every.total_seconds()):
            try:
                self.run_once()
            # Whatever fails, the thread goes on; the writer's backstop covers meanwhile.
            except Exception as exc:  # noqa: BLE001
                self.failures += 1
                if not failing:
                    log.warning("checkpoint of the SQLite log failed (will retry): %s", exc)
                failing = True
            else:
                if failing:
                    log.info("checkpoints of the SQLite log work again")
                failing = False
