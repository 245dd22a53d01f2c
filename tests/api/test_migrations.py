"""The migrations build exactly the schema the code declares, on both stores, and
downgrade cleanly (so a new table or index cannot be forgotten in a migration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect

from itsmd.models import Incident, IncidentStatus, Level, Policy, Priority
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.migrate import alembic_config, upgrade
from itsmd.store.tables import alerts, incidents, metadata, timeline


def _differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


def _downgrade(conn: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.downgrade(config, revision)


async def test_migrated_schema_equals_the_declared_one(db_url: str) -> None:
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    try:
        await upgrade(db)
        assert await db.read(_differences) == []
        await db.write(lambda conn: _downgrade(conn, "0005"))
        tables = set(await db.read(lambda conn: inspect(conn).get_table_names()))
        assert "notifications" not in tables
        assert "problems" in tables
        await upgrade(db)
        assert await db.read(_differences) == []
    finally:
        await db.dispose()


async def test_suppressed_alerts_of_earlier_versions_keep_naming_their_window(
    db_url: str,
) -> None:
    """0011 moves the window's name out of the decision's prose into its own field."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    reason = (
        "matched rule db {}; key db/x; suppressed by maintenance window pg-upgrade "
        "(suppress, change CHG-1) until 2026-03-01T04:00:00Z"
    )
    received = {"first_received": t0, "last_received": t0, "receive_count": 1}
    row = {"fingerprint": "f1", "starts_at": t0, "status": "firing", **received}
    row |= {"labels": {}, "annotations": {}, "generator_url": "", "source": "alertmanager"}
    try:
        await upgrade(db, "0010")

        def old_rows(conn: Connection) -> None:
            conn.execute(alerts.insert().values(**row, action="suppressed", reason=reason))
            other = {**row, "fingerprint": "f2"}
            conn.execute(alerts.insert().values(**other, action="joined", reason="joined"))

        await db.write(old_rows)
        await upgrade(db)
        found = await db.read(
            lambda conn: conn.execute(
                sa.text(
                    'SELECT fingerprint, suppressed_by, "change" FROM alerts ORDER BY fingerprint'
                )
            ).all()
        )
        assert [tuple(r) for r in found] == [("f1", "pg-upgrade", "CHG-1"), ("f2", None, None)]
    finally:
        await db.dispose()


async def test_earlier_incidents_get_the_first_response_of_a_person(db_url: str) -> None:
    """0012 finds each incident's first human response in its timeline: not the
    daemon's own entries, not a comment after it resolved."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)

    def incident(key: str, resolved_at: datetime | None) -> dict[str, object]:
        inc = Incident(
            id=None,
            rule="r",
            key=key,
            status=IncidentStatus.OPEN,
            title="t",
            description="",
            priority=Priority.P1,
            impact=Level.HIGH,
            urgency=Level.HIGH,
            service=None,
            assignee=None,
            labels={},
            opened_at=t0,
            acknowledged_at=None,
            resolved_at=resolved_at,
            alert_count=0,
            firing_count=0,
            policy=Policy(window=minute, auto_resolve=minute, reopen=minute),
        )
        values = repo.incident_values(inc)
        del values["responded_at"]
        return values

    def entry(incident_id: int, at: datetime, kind: str, actor: str) -> dict[str, object]:
        return {"incident_id": incident_id, "at": at, "kind": kind, "message": "m", "actor": actor}

    def old_rows(conn: Connection) -> None:
        ids = [
            conn.execute(
                insert(incidents).values(incident(k, r)).returning(incidents.c.id)
            ).scalar_one()
            for k, r in (("a", None), ("b", t0 + 2 * minute), ("c", None))
        ]
        rows = [
            entry(ids[0], t0 + 3 * minute, "commented", "alice"),
            entry(ids[0], t0 + 5 * minute, "acknowledged", "bob"),
            entry(ids[1], t0 + 2 * minute, "auto_resolved", "itsmd"),
            entry(ids[1], t0 + 4 * minute, "commented", "alice"),  # after it resolved
            entry(ids[2], t0 + minute, "priority_raised", "itsmd"),
        ]
        conn.execute(insert(timeline), rows)

    try:
        await upgrade(db, "0011")
        await db.write(old_rows)
        await upgrade(db)
        found = await db.read(
            lambda conn: conn.execute(
                sa.select(incidents.c.key, incidents.c.responded_at).order_by(incidents.c.key)
            ).all()
        )
        assert [tuple(r) for r in found] == [("a", t0 + 3 * minute), ("b", None), ("c", None)]
    finally:
        await db.dispose()
