"""availability history, check status and leader leases

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_TIME = itsmd.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "check_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=220), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_changes")),
    )
    op.create_index(op.f("ix_check_changes_subject_at"), "check_changes", ["subject", "at"])
    op.create_table(
        "check_daily",
        sa.Column("subject", sa.String(length=220), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("up_s", sa.Float(), nullable=False),
        sa.Column("down_s", sa.Float(), nullable=False),
        sa.Column("maintenance_s", sa.Float(), nullable=False),
        sa.Column("unknown_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "day", name=op.f("pk_check_daily")),
    )
    op.create_table(
        "check_status",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("up", sa.Integer(), nullable=True),
        sa.Column("last_run", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("capacity", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_check_status")),
    )
    op.create_table(
        "leases",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("until", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("check_status")
    op.drop_table("check_daily")
    op.drop_index(op.f("ix_check_changes_subject_at"), table_name="check_changes")
    op.drop_table("check_changes")
