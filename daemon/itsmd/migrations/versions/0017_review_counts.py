"""the service review at scale: alert_counts, the alerts that started in each quarter
hour per rule and alertname, kept by triggers on alerts; incidents.reopens and
incidents.resolved_by, the timeline's marks on the incident row, kept by a trigger
on timeline

The review counts the alerts of a period per rule and alertname, and marks each
incident reopened or resolved automatically (docs/reports.md): without these it read
every alert of the period (their labels too) and the timeline of every incident.
A quarter hour is the largest span every local midnight falls on (the time zones
of today are whole quarter hours off UTC).

Each writer keeps counts of its own (`writer`: PostgreSQL's backend process id, 0 on
SQLite, whose writer is one): replicas on one PostgreSQL all count the same few
rows (every alert of a rule and alertname in a quarter hour), and one shared row
would make each replica's transaction conflict with every other's and retry. A
count goes down by a negative count in the writer's own row; readers add them up.

A later migration that rebuilds `alerts`, `incidents` or `timeline` on SQLite
(batch_alter_table copies the table) drops their triggers with it and must create
them again (but for alerts_counts_insert, which 0021 dropped on SQLite).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

QUARTER_S = 900

# ---- alert_counts: one row per (quarter, rule, alertname, writer) with alerts; '' for
# an alert of no rule (unrouted) or no alertname: key columns are never NULL.


def _key(r: str, sqlite: bool) -> tuple[str, str, str]:
    """quarter, rule, alertname of row `r` (NEW or OLD, or a table alias)."""
    if sqlite:
        # Whole seconds first: strftime rounds a fraction of .9995 s up to the next second.
        seconds = f"CAST(strftime('%s', substr({r}.starts_at, 1, 19)) AS INTEGER)"
        name = f"json_extract({r}.labels, '$.alertname')"
    else:
        seconds = f"floor(extract(epoch FROM {r}.starts_at))::bigint"
        name = f"({r}.labels ->> 'alertname')"
    return (
        f"{seconds} / {QUARTER_S} * {QUARTER_S}",
        f"coalesce({r}.rule, '')",
        f"coalesce({name}, '')",
    )


def _writer(sqlite: bool) -> str:
    return "0" if sqlite else "pg_backend_pid()"


def _add(r: str, sqlite: bool) -> str:
    return (
        "INSERT INTO alert_counts (quarter, rule, alertname, writer, alerts) "  # noqa: S608
        f"VALUES ({', '.join(_key(r, sqlite))}, {_writer(sqlite)}, 1) "
        "ON CONFLICT (quarter, rule, alertname, writer) "
        "DO UPDATE SET alerts = alert_counts.alerts + 1;"
    )


def _take(r: str, sqlite: bool) -> str:
    """Take row `r` away in this writer's count (it may go below 0: another writer
    counted the alert); a count that reaches 0 goes."""
    quarter, rule, name = _key(r, sqlite)
    key = (
        f"quarter = {quarter} AND rule = {rule} AND alertname = {name} "
        f"AND writer = {_writer(sqlite)}"
    )
    return (
        "INSERT INTO alert_counts (quarter, rule, alertname, writer, alerts) "  # noqa: S608
        f"VALUES ({quarter}, {rule}, {name}, {_writer(sqlite)}, -1) "
        "ON CONFLICT (quarter, rule, alertname, writer) "
        "DO UPDATE SET alerts = alert_counts.alerts - 1; "
        f"DELETE FROM alert_counts WHERE {key} AND alerts = 0;"
    )


# What an update can change of the key: the rule (an alert released from a
# maintenance window, say); the start time and the labels are the alert's identity.
_SQLITE_MOVED = (
    "OLD.rule IS NOT NEW.rule OR OLD.starts_at IS NOT NEW.starts_at "
    "OR json_extract(OLD.labels, '$.alertname') IS NOT json_extract(NEW.labels, '$.alertname')"
)
_PG_MOVED = (
    "OLD.rule IS DISTINCT FROM NEW.rule OR OLD.starts_at IS DISTINCT FROM NEW.starts_at "
    "OR (OLD.labels ->> 'alertname') IS DISTINCT FROM (NEW.labels ->> 'alertname')"
)


def _count_triggers(sqlite: bool) -> list[str]:
    if sqlite:
        return [
            f"CREATE TRIGGER alerts_counts_insert AFTER INSERT ON alerts BEGIN {_add('NEW', True)} END",
            "CREATE TRIGGER alerts_counts_update AFTER UPDATE OF rule, starts_at, labels ON alerts "
            f"WHEN {_SQLITE_MOVED} BEGIN {_take('OLD', True)} {_add('NEW', True)} END",
            f"CREATE TRIGGER alerts_counts_delete AFTER DELETE ON alerts BEGIN {_take('OLD', True)} END",
        ]
    return [
        "CREATE FUNCTION itsmd_alert_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {_add('NEW', False)} "
        f"ELSIF TG_OP = 'DELETE' THEN {_take('OLD', False)} "
        f"ELSIF {_PG_MOVED} THEN {_take('OLD', False)} {_add('NEW', False)} "
        "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER alerts_counts AFTER INSERT OR UPDATE OF rule, starts_at, labels OR DELETE "
        "ON alerts FOR EACH ROW EXECUTE FUNCTION itsmd_alert_counts()",
    ]


def _fill_counts(sqlite: bool) -> str:
    """The alerts stored before this revision."""
    key = ", ".join(_key("a", sqlite))
    return (
        "INSERT INTO alert_counts (quarter, rule, alertname, writer, alerts) "  # noqa: S608
        f"SELECT {key}, 0, count(*) FROM alerts AS a GROUP BY 1, 2, 3"
    )


# ---- the marks of the timeline on the incident row: how many times it was reopened,
# and who resolved it last (auto: the auto_resolve hold; manual: a person).

_MARKED = "('resolved', 'auto_resolved', 'reopened')"
_MARK = (
    "UPDATE incidents SET "
    "reopens = reopens + CASE WHEN NEW.kind = 'reopened' THEN 1 ELSE 0 END, "
    "resolved_by = CASE NEW.kind WHEN 'resolved' THEN 'manual' "
    "WHEN 'auto_resolved' THEN 'auto' ELSE resolved_by END "
    "WHERE id = NEW.incident_id;"
)


def _mark_triggers(sqlite: bool) -> list[str]:
    if sqlite:
        return [
            "CREATE TRIGGER timeline_incident_marks AFTER INSERT ON timeline "
            f"WHEN NEW.kind IN {_MARKED} BEGIN {_MARK} END"
        ]
    return [
        "CREATE FUNCTION itsmd_incident_marks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{_MARK} RETURN NULL; END $$",
        f"CREATE TRIGGER timeline_incident_marks AFTER INSERT ON timeline FOR EACH ROW "
        f"WHEN (NEW.kind IN {_MARKED}) EXECUTE FUNCTION itsmd_incident_marks()",
    ]


# From the timeline stored before this revision: the incidents it marks only.
_FILL_MARKS = f"""
UPDATE incidents SET
    reopens = (SELECT count(*) FROM timeline AS t
               WHERE t.incident_id = incidents.id AND t.kind = 'reopened'),
    resolved_by = (SELECT CASE t.kind WHEN 'auto_resolved' THEN 'auto' ELSE 'manual' END
                   FROM timeline AS t
                   WHERE t.incident_id = incidents.id AND t.kind IN ('resolved', 'auto_resolved')
                   ORDER BY t.id DESC LIMIT 1)
WHERE id IN (SELECT incident_id FROM timeline WHERE kind IN {_MARKED})
"""  # noqa: S608 - constants


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "alert_counts",
        sa.Column("quarter", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("alertname", sa.Text(), nullable=False),
        sa.Column("writer", sa.BigInteger(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "quarter", "rule", "alertname", "writer", name=op.f("pk_alert_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.execute(_fill_counts(sqlite))
    for statement in _count_triggers(sqlite):
        op.execute(statement)
    op.add_column(
        "incidents", sa.Column("reopens", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("incidents", sa.Column("resolved_by", sa.String(8), nullable=True))
    op.execute(_FILL_MARKS)
    for statement in _mark_triggers(sqlite):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in (
            "timeline_incident_marks",
            "alerts_counts_insert",
            "alerts_counts_update",
            "alerts_counts_delete",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
    else:
        op.execute("DROP TRIGGER timeline_incident_marks ON timeline")
        op.execute("DROP FUNCTION itsmd_incident_marks()")
        op.execute("DROP TRIGGER alerts_counts ON alerts")
        op.execute("DROP FUNCTION itsmd_alert_counts()")
    op.drop_column("incidents", "resolved_by")
    op.drop_column("incidents", "reopens")
    op.drop_table("alert_counts")
