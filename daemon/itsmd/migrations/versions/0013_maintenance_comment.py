"""maintenance_windows.comment: why a window was created, as amtool's silences say

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("maintenance_windows", sa.Column("comment", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("maintenance_windows", "comment")
