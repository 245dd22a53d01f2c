"""alerts.suppressed_by and alerts.change: the maintenance window that suppressed an
alert, as fields

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# How earlier versions named the window in a suppressed alert's reason.
_DESCRIBED = re.compile(r"suppressed by maintenance window (\S+) \(suppress(?:, change (.+?))?\)")


def upgrade() -> None:
    op.add_column("alerts", sa.Column("suppressed_by", sa.String(length=200), nullable=True))
    op.add_column("alerts", sa.Column("change", sa.String(length=200), nullable=True))
    alerts = sa.table(
        "alerts",
        sa.column("id"),
        sa.column("action"),
        sa.column("reason"),
        sa.column("suppressed_by"),
        sa.column("change"),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(alerts.c.id, alerts.c.reason).where(alerts.c.action == "suppressed")
    ).all()
    for row in rows:
        found = _DESCRIBED.search(row.reason)
        if found is not None:
            window = {"suppressed_by": found[1], "change": found[2]}
            conn.execute(alerts.update().where(alerts.c.id == row.id).values(**window))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("change")
        batch.drop_column("suppressed_by")
