"""retention: indexes of incident_labels by incident and of incidents by parent, so
that deleting an old incident deletes its label values, and checks that no incident
names it as its parent (the foreign key), without reading either whole table

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_incident_labels_incident_id"), "incident_labels", ["incident_id"])
    op.create_index(op.f("ix_incidents_parent_id"), "incidents", ["parent_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_parent_id"), table_name="incidents")
    op.drop_index(op.f("ix_incident_labels_incident_id"), table_name="incident_labels")
