"""problems, and the recurrence key of each incident

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "problems",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opened_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("workaround", sa.Text(), nullable=True),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problems")),
    )
    op.create_index(op.f("ix_problems_key_status"), "problems", ["key", "status"])
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("problem_key", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_incidents_problem_key_opened_at"), ["problem_key", "opened_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_problem_key_opened_at"))
        batch_op.drop_column("problem_key")
    op.drop_index(op.f("ix_problems_key_status"), table_name="problems")
    op.drop_table("problems")
