"""Schema migrations with Alembic, run over the daemon's own async engine."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine


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


async def schema_state(engine: AsyncEngine) -> tuple[SchemaState, str | None]:
    async with engine.connect() as conn:
        return await conn.run_sync(_state)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


__all__: list[Any] = ["SchemaState", "head_revision", "schema_state", "upgrade"]
