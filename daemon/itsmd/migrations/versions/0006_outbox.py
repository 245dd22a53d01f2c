"""the notification outbox and what sinks answered per incident

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("sink", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("unless", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notifications_event_id")),
    )
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["subject", "sink", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(op.f("ix_notifications_state_id"), "notifications", ["state", "id"])
    op.create_table(
        "sink_refs",
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("sink", sa.String(length=200), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "sink", name=op.f("pk_sink_refs")),
    )


def downgrade() -> None:
    op.drop_table("sink_refs")
    op.drop_index(op.f("ix_notifications_state_id"), table_name="notifications")
    op.drop_index("ix_notifications_pending", table_name="notifications")
    op.drop_table("notifications")
