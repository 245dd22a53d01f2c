"""incidents.responded_at: the first response of a person, which meets the SLA
respond target (an incident that resolved by itself first needed none)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Timeline entries of a person's acts; "itsmd" is the daemon's own actor.
_RESPONSES = ("acknowledged", "assigned", "commented", "resolved")


def upgrade() -> None:
    column: sa.Column[object] = sa.Column(
        "responded_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=True
    )
    op.add_column("incidents", column)
    incidents = sa.table(
        "incidents", sa.column("id"), sa.column("resolved_at"), sa.column("responded_at")
    )
    timeline = sa.table(
        "timeline", sa.column("incident_id"), sa.column("at"), sa.column("kind"), sa.column("actor")
    )
    first = (
        sa.select(sa.func.min(timeline.c.at))
        .where(
            timeline.c.incident_id == incidents.c.id,
            timeline.c.kind.in_(_RESPONSES),
            timeline.c.actor != "itsmd",
            sa.or_(incidents.c.resolved_at.is_(None), timeline.c.at <= incidents.c.resolved_at),
        )
        .scalar_subquery()
    )
    op.get_bind().execute(incidents.update().values(responded_at=first))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("responded_at")
