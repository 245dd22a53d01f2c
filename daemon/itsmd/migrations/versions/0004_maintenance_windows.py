"""maintenance windows created through the API

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("starts_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("every", sa.String(length=200), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=200), nullable=True),
        sa.Column("created_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
        sa.UniqueConstraint("name", name=op.f("uq_maintenance_windows_name")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_windows")
