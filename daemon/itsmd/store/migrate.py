"""Schema migrations with Alembic, run through the daemon's own Database."""

from __future__ import annotations

from enum import StrEnum

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from itsmd.store.engine import Database


class SchemaState(StrEnum):
    EMPTY = "empty"  # a new database: safe to create
    CURRENT = "current"
    OUTDATED = "outdated"
    UNKNOWN = "unknown"  # tables without itsmd's version, or a newer version


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "itsmd:migrations")
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _state(connection: Connection) -> tuple[SchemaState, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        tables = inspect(connection).get_table_names()
        return (SchemaState.UNKNOWN if tables else SchemaState.EMPTY), None
    script = ScriptDirectory.from_config(alembic_config())
    if current == script.get_current_head():
        return SchemaState.CURRENT, current
    known = {rev.revision for rev in script.walk_revisions()}
    return (SchemaState.OUTDATED if current in known else SchemaState.UNKNOWN), current


async def schema_state(db: Database) -> tuple[SchemaState, str | None]:
    return await db.read(_state)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    await db.migrate(lambda connection: _upgrade(connection, revision))
