"""Plain `sqlite3` connections to a store file that exists, beside the engine's pool:
backups and restores, and the daemon's checkpoint thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, mode: str, timeout_s: float) -> sqlite3.Connection:
    """`mode` is SQLite's URI mode, `ro` or `rw`: neither makes a missing file. The
    connection may be used from any thread, one at a time."""
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    return sqlite3.connect(
        uri, uri=True, timeout=timeout_s, isolation_level=None, check_same_thread=False
    )
