"""Alembic environment: always run programmatically with a connection given by itsmd."""

from __future__ import annotations

from alembic import context

from itsmd.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `itsmd db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
