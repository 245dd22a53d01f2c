"""Which database errors mean "the store cannot serve now" (503, retry, a skipped
job) and which mean a faulty statement (500, logged as a bug), on real SQLite and
PostgreSQL errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from itsmd.store.engine import Database, StoreUnavailable
from tests.api.api_support import MakeClient
from tests.conftest import get_free_port


def missing_table(conn: Connection) -> object:
    return conn.execute(text("SELECT * FROM no_such_table")).all()


async def test_a_faulty_statement_is_a_bug_not_an_outage(db: Database) -> None:
    with pytest.raises(SQLAlchemyError, match="no_such_table") as raised:
        await db.read(missing_table)
    assert not isinstance(raised.value, StoreUnavailable)


async def test_an_unreachable_server_is_an_outage() -> None:
    db = Database(
        f"postgresql+asyncpg://itsmd@127.0.0.1:{get_free_port()}/none",
        busy_timeout=timedelta(seconds=1),
    )
    try:
        with pytest.raises(StoreUnavailable):
            await db.read(lambda conn: conn.execute(text("SELECT 1")).all())
    finally:
        await db.dispose()


async def test_a_file_that_is_no_database_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    path.write_bytes(b"not a database, but garbage " * 200)
    db = Database(f"sqlite:///{path}", busy_timeout=timedelta(seconds=1))
    try:
        with pytest.raises(StoreUnavailable, match="file is not a database"):
            await db.read(lambda conn: conn.execute(text("SELECT * FROM alerts")).all())
    finally:
        await db.dispose()


async def test_postgres_timeouts_and_killed_sessions_are_outages(postgres_url: str) -> None:
    db = Database(postgres_url, busy_timeout=timedelta(seconds=1))

    def slow(conn: Connection) -> object:
        conn.execute(text("SET LOCAL statement_timeout = 50"))
        return conn.execute(text("SELECT pg_sleep(1)")).all()

    def killed(conn: Connection) -> object:
        return conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())")).all()

    try:
        with pytest.raises(StoreUnavailable, match="statement timeout"):
            await db.read(slow)
        with pytest.raises(StoreUnavailable):
            await db.read(killed)
        assert await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()) == 1
    finally:
        await db.dispose()


async def test_the_writer_passes_a_faulty_unit_on_and_counts_it(make_client: MakeClient) -> None:
    client = await make_client("incidents: []\n")
    writer = client.runtime.writer
    assert writer is not None
    with pytest.raises(SQLAlchemyError, match="no_such_table") as raised:
        await writer.run(lambda conn, _now: missing_table(conn))
    assert not isinstance(raised.value, StoreUnavailable)
    assert await client.metric("itsmd_store_errors_total", operation="action") == 1
