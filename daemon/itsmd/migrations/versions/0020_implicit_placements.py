"""implicit placements: a new alert placed in an incident at its first receipt gets
no timeline row; its row holds the decision, and `alerts.placed_after` the place of
its entry in the timeline (the id of the row written just before it). A placement
written out later (the alert fired again, moved) keeps that place in
`timeline.placed_after` (correlation/joins.py). Rows stored before stay as they are.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("placed_after", sa.Integer(), nullable=True))
    op.add_column("timeline", sa.Column("placed_after", sa.Integer(), nullable=True))


def downgrade() -> None:
    """The implicit placements are written out as rows first (the code before this
    revision reads only rows), in their order; they come after the rows of their
    moment that were written before them, as `placed_after` no longer orders them."""
    op.execute(_WRITE_OUT[op.get_bind().dialect.name])
    # In place (SQLite 3.35 and later): a copy of `alerts` would lose its triggers.
    op.execute("ALTER TABLE timeline DROP COLUMN placed_after")
    op.execute("ALTER TABLE alerts DROP COLUMN placed_after")


def _write_out(alertname: str) -> str:
    return (
        "INSERT INTO timeline (incident_id, at, kind, message, actor, alert_id, rule) "  # noqa: S608
        "SELECT a.incident_id, a.first_received, "
        "CASE a.action WHEN 'attached' THEN 'symptom_attached' ELSE 'alert_joined' END, "
        f"'alert ' || coalesce({alertname}, a.fingerprint) || ' (' || a.fingerprint || '): ' "
        "|| a.reason, 'itsmd', a.id, a.rule "
        "FROM alerts AS a WHERE a.placed_after IS NOT NULL AND a.incident_id IS NOT NULL "
        "ORDER BY a.placed_after, a.id"
    )


_WRITE_OUT = {
    "sqlite": _write_out("json_extract(a.labels, '$.alertname')"),
    "postgresql": _write_out("(a.labels ->> 'alertname')"),
}
