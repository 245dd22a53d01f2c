"""actors: who set a problem's root cause, recorded its known error and resolved it,
and who sent a dead notification again

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_PROBLEM_ACTORS = ("root_cause_by", "workaround_by", "resolved_by")


def upgrade() -> None:
    for name in _PROBLEM_ACTORS:
        op.add_column("problems", sa.Column(name, sa.String(200), nullable=True))
    op.add_column("notifications", sa.Column("retried_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("retried_by")
    with op.batch_alter_table("problems") as batch:
        for name in _PROBLEM_ACTORS:
            batch.drop_column(name)
