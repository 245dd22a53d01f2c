"""The migrations build exactly the schema the code declares, on both stores, and
downgrade cleanly (so a new table or index cannot be forgotten in a migration)."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from itsmd.store.engine import Database
from itsmd.store.migrate import alembic_config, upgrade
from itsmd.store.tables import metadata


def _differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


def _downgrade(conn: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.downgrade(config, revision)


async def test_migrated_schema_equals_the_declared_one(db_url: str) -> None:
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    try:
        await upgrade(db)
        assert await db.read(_differences) == []
        await db.write(lambda conn: _downgrade(conn, "0005"))
        tables = set(await db.read(lambda conn: inspect(conn).get_table_names()))
        assert "notifications" not in tables
        assert "problems" in tables
        await upgrade(db)
        assert await db.read(_differences) == []
    finally:
        await db.dispose()
