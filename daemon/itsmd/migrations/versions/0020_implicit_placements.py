"""implicit placements: the timeline of an incident is indexed by incident and alert,
so that the writer finds whether an alert's placement has a row of its own without
reading the incident's whole timeline

A new alert placed in an incident at its first receipt gets no timeline row any
more: its row holds the decision, and the timeline is derived from it when read
(correlation/joins.py). When such a placement is superseded (the alert fires again,
moves, is suppressed), the writer writes its entry out unless the incident already
has a placement row of the alert, as every alert stored before this revision has:
rows stored before it are kept as they are and never shown twice.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The pair serves every lookup by incident alone too.
    op.create_index(
        op.f("ix_timeline_incident_id_alert_id"), "timeline", ["incident_id", "alert_id"]
    )
    op.drop_index(op.f("ix_timeline_incident_id"), table_name="timeline")


def downgrade() -> None:
    """Writes the implicit placements out as rows first: the code of 0018 reads
    only rows."""
    op.execute(_WRITE_OUT[op.get_bind().dialect.name])
    op.create_index(op.f("ix_timeline_incident_id"), "timeline", ["incident_id"])
    op.drop_index(op.f("ix_timeline_incident_id_alert_id"), table_name="timeline")


_PLACEMENTS = "('alert_joined', 'symptom_attached', 'alert_refired')"
_PLACED = "('opened', 'joined', 'reopened', 'attached')"


def _write_out(alertname: str) -> str:
    return (
        "INSERT INTO timeline (incident_id, at, kind, message, actor, alert_id, rule) "  # noqa: S608
        "SELECT a.incident_id, a.first_received, "
        "CASE a.action WHEN 'attached' THEN 'symptom_attached' ELSE 'alert_joined' END, "
        f"'alert ' || coalesce({alertname}, a.fingerprint) || ' (' || a.fingerprint || '): ' "
        "|| a.reason, 'itsmd', a.id, a.rule "
        f"FROM alerts AS a WHERE a.incident_id IS NOT NULL AND a.action IN {_PLACED} "
        "AND NOT EXISTS (SELECT 1 FROM timeline AS t WHERE t.incident_id = a.incident_id "
        f"AND t.alert_id = a.id AND t.kind IN {_PLACEMENTS}) ORDER BY a.id"
    )


_WRITE_OUT = {
    "sqlite": _write_out("json_extract(a.labels, '$.alertname')"),
    "postgresql": _write_out("(a.labels ->> 'alertname')"),
}
