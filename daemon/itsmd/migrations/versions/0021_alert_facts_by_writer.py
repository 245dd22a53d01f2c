"""the SQLite writer keeps incident_labels and alert_counts for the alerts it inserts,
one statement per table and batch (store/alertfacts.py), instead of triggers that
ran for every inserted row: they cost about a fifth of the writer's CPU. The
triggers on updates and deletes of alerts stay, and PostgreSQL keeps all of its
triggers. Nothing stored changes.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# As migrations 0014 and 0017 created them, to the character.
_TRIGGERS = {
    "alerts_incident_labels_insert": (
        "CREATE TRIGGER alerts_incident_labels_insert AFTER INSERT ON alerts "
        "WHEN NEW.incident_id IS NOT NULL BEGIN"
        """
    INSERT OR IGNORE INTO incident_labels (value, incident_id)
    SELECT value, NEW.incident_id FROM json_each(NEW.labels) WHERE length(value) <= 200;
"""
        "END"
    ),
    "alerts_counts_insert": (
        "CREATE TRIGGER alerts_counts_insert AFTER INSERT ON alerts BEGIN "
        "INSERT INTO alert_counts (quarter, rule, alertname, writer, alerts) VALUES ("
        "CAST(strftime('%s', substr(NEW.starts_at, 1, 19)) AS INTEGER) / 900 * 900, "
        "coalesce(NEW.rule, ''), coalesce(json_extract(NEW.labels, '$.alertname'), ''), 0, 1) "
        "ON CONFLICT (quarter, rule, alertname, writer) "
        "DO UPDATE SET alerts = alert_counts.alerts + 1; "
        "END"
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in _TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _TRIGGERS.values():
            op.execute(statement)
