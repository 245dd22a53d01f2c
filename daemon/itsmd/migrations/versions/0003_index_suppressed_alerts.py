"""index suppressed firing alerts

The sweep looks for alerts a maintenance window suppressed that still fire, every
second; a partial index keeps that lookup independent of how many alerts are stored.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WHERE = "action = 'suppressed' AND status = 'firing'"


def upgrade() -> None:
    op.create_index(
        "ix_alerts_suppressed_firing",
        "alerts",
        ["id"],
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_suppressed_firing", table_name="alerts")
