"""drop ix_alerts_fingerprint_status

The unique (fingerprint, starts_at) index already serves every lookup by
fingerprint (a fingerprint has few episodes); the second index only cost a
random page write per stored alert.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_fingerprint_status"))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_fingerprint_status"), ["fingerprint", "status"], unique=False
        )
