"""Engine creation and the mapping of database failures to one domain error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class StoreUnavailable(Exception):
    """The store cannot commit right now (HTTP 503: the sender should retry)."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, busy_timeout: timedelta, synchronous: str = "NORMAL") -> AsyncEngine:
    """An async engine; SQLite gets WAL so readers never block the writer."""
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": busy_timeout.total_seconds()})
        _sqlite_pragmas(engine, busy_timeout, synchronous)
        return engine
    timeout_ms = int(busy_timeout.total_seconds() * 1000)
    return create_async_engine(
        url,
        pool_pre_ping=True,
        connect_args={
            "timeout": max(busy_timeout.total_seconds(), 1.0),
            "server_settings": {"lock_timeout": str(timeout_ms), "application_name": "itsmd"},
        },
    )


def _sqlite_pragmas(engine: AsyncEngine, busy_timeout: timedelta, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; FULL also survives power loss.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout.total_seconds() * 1000)}")
        cursor.close()
        # Take transaction control from the driver so that BEGIN covers the reads of a
        # unit of work too (the driver would only begin at the first write).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
