"""SLA breaches, marked once per incident and target

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import itsmd.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_breaches",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("marked_at", itsmd.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_sla_breaches_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("incident_id", "kind", name=op.f("pk_sla_breaches")),
    )
    op.create_index(op.f("ix_incidents_respond_due"), "incidents", ["respond_due"])
    op.create_index(op.f("ix_incidents_resolve_due"), "incidents", ["resolve_due"])


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_resolve_due"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_respond_due"), table_name="incidents")
    op.drop_table("sla_breaches")
