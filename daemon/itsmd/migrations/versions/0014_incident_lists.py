"""incident lists and the SLA summary at scale: (status, priority, id) and
(service, id) indexes that page without sorting; incident_labels, the label values of
each incident's alerts for the search `q`, kept by triggers on alerts; sla_days, the
SLA facts of resolved incidents per day and priority, kept by triggers on incidents

A later migration that rebuilds `alerts` or `incidents` on SQLite (batch_alter_table
copies the table) drops their triggers with it and must create them again (but for
alerts_incident_labels_insert, which 0021 dropped on SQLite).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Values longer than 200 characters (tables.LABEL_VALUE_MAX) are not indexed.
VALUE_MAX = 200

# One row per (value, incident); an alert that joins an incident, or moves to another,
# adds the values of its labels. Values are never removed: an alert's labels are its
# identity and do not change.
# (Label values are text: ingestion refuses anything else. DISTINCT or a type test
# here cost ingestion about 10%.)
_SQLITE_ROWS = """
    INSERT OR IGNORE INTO incident_labels (value, incident_id)
    SELECT value, NEW.incident_id FROM json_each(NEW.labels) WHERE length(value) <= 200;
"""
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER alerts_incident_labels_insert AFTER INSERT ON alerts "
    "WHEN NEW.incident_id IS NOT NULL BEGIN" + _SQLITE_ROWS + "END",
    "CREATE TRIGGER alerts_incident_labels_update AFTER UPDATE OF incident_id ON alerts "
    "WHEN NEW.incident_id IS NOT NULL BEGIN" + _SQLITE_ROWS + "END",
]
_PG_FUNCTION = """
CREATE FUNCTION itsmd_incident_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.incident_id IS NOT NULL THEN
        INSERT INTO incident_labels (value, incident_id)
        SELECT value, NEW.incident_id FROM json_each_text(NEW.labels)
        WHERE length(value) <= 200
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$"""
_PG_TRIGGER = """CREATE TRIGGER alerts_incident_labels
    AFTER INSERT OR UPDATE OF incident_id ON alerts
    FOR EACH ROW EXECUTE FUNCTION itsmd_incident_labels()"""


# ---- sla_days: what correlation.sla.respond_verdict/resolve_verdict decide for a
# resolved incident (final: `now` no longer matters), as one row's contribution.

_SLA_COLUMNS = [
    "incidents",
    "respond_met",
    "respond_breached",
    "respond_not_needed",
    "resolve_met",
    "resolve_breached",
    "acks",
    "ack_s",
    "fixes",
    "fix_s",
]
_SLA_UPDATED = "status, priority, opened_at, responded_at, resolved_at, respond_due, resolve_due"


def _day(row: str, sqlite: bool) -> str:
    if sqlite:
        return f"substr({row}.opened_at, 1, 10)"  # fixed-width UTC text
    return f"to_char({row}.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _seconds(later: str, earlier: str, sqlite: bool) -> str:
    if sqlite:
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


def _contribution(r: str, sign: str, sqlite: bool) -> list[str]:
    """The values of _SLA_COLUMNS for row `r` (NEW, OLD, a table alias), times `sign`."""
    answered = (
        f"({r}.responded_at IS NOT NULL AND "
        f"({r}.resolved_at IS NULL OR {r}.responded_at <= {r}.resolved_at))"
    )

    def when(condition: str, value: str = "1") -> str:
        return f"CASE WHEN {condition} THEN {sign} * {value} ELSE 0 END"

    respond, resolve = f"{r}.respond_due IS NOT NULL", f"{r}.resolve_due IS NOT NULL"
    return [
        sign,
        when(f"{respond} AND {answered} AND {r}.responded_at <= {r}.respond_due"),
        when(
            f"{respond} AND (({answered} AND {r}.responded_at > {r}.respond_due) OR "
            f"(NOT {answered} AND {r}.resolved_at > {r}.respond_due))"
        ),
        when(f"{respond} AND NOT {answered} AND {r}.resolved_at <= {r}.respond_due"),
        when(f"{resolve} AND {r}.resolved_at <= {r}.resolve_due"),
        when(f"{resolve} AND {r}.resolved_at > {r}.resolve_due"),
        when(answered),
        when(answered, _seconds(f"{r}.responded_at", f"{r}.opened_at", sqlite)),
        sign,
        f"{sign} * {_seconds(f'{r}.resolved_at', f'{r}.opened_at', sqlite)}",
    ]


def _add_to_days(r: str, sign: str, sqlite: bool) -> str:
    """Add (or with sign -1, take away) the contribution of row `r` if it is resolved."""
    values = ", ".join(_contribution(r, sign, sqlite))
    sums = ", ".join(f"{c} = sla_days.{c} + excluded.{c}" for c in _SLA_COLUMNS)
    return (
        f"INSERT INTO sla_days (day, priority, {', '.join(_SLA_COLUMNS)}) "
        f"SELECT {_day(r, sqlite)}, {r}.priority, {values} "
        f"WHERE {r}.status = 'resolved' "
        f"ON CONFLICT (day, priority) DO UPDATE SET {sums};"
    )


def _sla_triggers(sqlite: bool) -> list[str]:
    if sqlite:
        return [
            "CREATE TRIGGER incidents_sla_days_insert AFTER INSERT ON incidents "
            f"BEGIN {_add_to_days('NEW', '1', sqlite)} END",
            f"CREATE TRIGGER incidents_sla_days_update AFTER UPDATE OF {_SLA_UPDATED} "
            f"ON incidents BEGIN {_add_to_days('OLD', '-1', sqlite)} "
            f"{_add_to_days('NEW', '1', sqlite)} END",
        ]
    return [
        "CREATE FUNCTION itsmd_sla_days() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'UPDATE' THEN {_add_to_days('OLD', '-1', sqlite)} END IF; "
        f"{_add_to_days('NEW', '1', sqlite)} RETURN NULL; END $$",
        f"CREATE TRIGGER incidents_sla_days AFTER INSERT OR UPDATE OF {_SLA_UPDATED} "
        "ON incidents FOR EACH ROW EXECUTE FUNCTION itsmd_sla_days()",
    ]


def _fill_days(sqlite: bool) -> str:
    sums = ", ".join(f"sum({v})" for v in _contribution("i", "1", sqlite))
    day = _day("i", sqlite)
    columns = ", ".join(_SLA_COLUMNS)
    select = f"SELECT {day}, i.priority, {sums} FROM incidents AS i"  # noqa: S608 - constants
    return (
        f"INSERT INTO sla_days (day, priority, {columns}) {select} "
        f"WHERE i.status = 'resolved' GROUP BY {day}, i.priority"
    )


def upgrade() -> None:
    op.drop_index("ix_incidents_status_priority", table_name="incidents")
    op.create_index(
        op.f("ix_incidents_status_priority_id"), "incidents", ["status", "priority", "id"]
    )
    op.drop_index("ix_incidents_service", table_name="incidents")
    op.create_index(op.f("ix_incidents_service_id"), "incidents", ["service", "id"])
    op.create_table(
        "incident_labels",
        sa.Column("value", sa.String(VALUE_MAX), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", "incident_id", name=op.f("pk_incident_labels")),
        sqlite_with_rowid=False,
    )
    _create_triggers()
    _fill()
    op.create_index(op.f("ix_incidents_opened_at"), "incidents", ["opened_at"])
    op.create_table(
        "sla_days",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in _SLA_COLUMNS if not c.endswith("_s")),
        sa.Column("ack_s", sa.Float(), nullable=False),
        sa.Column("fix_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "priority", name=op.f("pk_sla_days")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(_fill_days(sqlite))
    for statement in _sla_triggers(sqlite):
        op.execute(statement)


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)


def _fill() -> None:
    """The values of the alerts stored before this revision."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO incident_labels (value, incident_id) "
            "SELECT DISTINCT l.value, a.incident_id FROM alerts AS a, json_each(a.labels) AS l "
            "WHERE l.type = 'text' AND a.incident_id IS NOT NULL AND length(l.value) <= 200"
        )
    else:
        op.execute(
            "INSERT INTO incident_labels (value, incident_id) "
            "SELECT DISTINCT l.value, a.incident_id FROM alerts AS a, "
            "json_each_text(a.labels) AS l "
            "WHERE a.incident_id IS NOT NULL AND length(l.value) <= 200"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in (
            "incidents_sla_days_insert",
            "incidents_sla_days_update",
            "alerts_incident_labels_insert",
            "alerts_incident_labels_update",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
    else:
        op.execute("DROP TRIGGER incidents_sla_days ON incidents")
        op.execute("DROP FUNCTION itsmd_sla_days()")
        op.execute("DROP TRIGGER alerts_incident_labels ON alerts")
        op.execute("DROP FUNCTION itsmd_incident_labels()")
    op.drop_table("sla_days")
    op.drop_index(op.f("ix_incidents_opened_at"), table_name="incidents")
    op.drop_table("incident_labels")
    op.drop_index(op.f("ix_incidents_service_id"), table_name="incidents")
    op.create_index("ix_incidents_service", "incidents", ["service"])
    op.drop_index(op.f("ix_incidents_status_priority_id"), table_name="incidents")
    op.create_index("ix_incidents_status_priority", "incidents", ["status", "priority"])
