"""indexes for the claim: earlier pending rows (a full index SQLite's planner
uses) and pending escalations

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_notifications_pending", table_name="notifications")
    op.create_index(
        op.f("ix_notifications_state_subject_sink_id"),
        "notifications",
        ["state", "subject", "sink", "id"],
    )
    op.create_index(op.f("ix_notifications_state_unless"), "notifications", ["state", "unless"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_state_unless"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_state_subject_sink_id"), table_name="notifications")
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["subject", "sink", "id"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
