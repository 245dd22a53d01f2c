"""sla indexes: the SLA summary reads the incidents it counts one by one (the
unresolved ones by status, those of its first, partial day by time) from two
covering indexes instead of looking up each row. On 100,000 incidents its two
per-incident counts went from 11 and 5 ms to 5 and 4 ms (the whole summary, with
its statements built once, 21 -> 11 ms).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# What the summary reads of each incident, after the columns it searches by.
_FACTS = ["priority", "respond_due", "responded_at", "resolved_at", "resolve_due"]


def upgrade() -> None:
    op.create_index("ix_incidents_sla_unresolved", "incidents", ["status", "opened_at", *_FACTS])
    op.create_index("ix_incidents_sla_window", "incidents", ["opened_at", "status", *_FACTS])
    # The window index begins with opened_at: it serves every search by time.
    op.drop_index(op.f("ix_incidents_opened_at"), table_name="incidents")


def downgrade() -> None:
    op.create_index(op.f("ix_incidents_opened_at"), "incidents", ["opened_at"])
    op.drop_index("ix_incidents_sla_window", table_name="incidents")
    op.drop_index("ix_incidents_sla_unresolved", table_name="incidents")
