"""The migrations build exactly the schema the code declares, on both stores, and
downgrade cleanly (so a new table or index cannot be forgotten in a migration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect

from itsmd.correlation.sla import summarize
from itsmd.models import IncidentStatus, Level, Priority
from itsmd.store import repo, slaclock
from itsmd.store.engine import Database
from itsmd.store.migrate import upgrade
from itsmd.store.tables import (
    QUARTER_S,
    alert_counts,
    alerts,
    incidents,
    metadata,
    sla_days,
    timeline,
)
from tests.api.api_support import downgrade, stored_incident


def _declared(name: str | None, kind: str, parent: object) -> bool:
    """What the metadata declares: not the text index of incidents (0015), a SQLite
    FTS5 virtual table and its shadow tables, made and used by SQL of its own."""
    return not (kind == "table" and name is not None and name.startswith("incidents_text"))


def _differences(conn: Connection) -> list[object]:
    opts = {"compare_type": False, "include_name": _declared}
    context = MigrationContext.configure(conn, opts=opts)
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_equals_the_declared_one(db_url: str) -> None:
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    try:
        await upgrade(db)
        assert await db.read(_differences) == []
        await db.write(lambda conn: downgrade(conn, "0005"))
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
        inc = stored_incident(
            key, t0, priority=Priority.P1, impact=Level.HIGH, urgency=Level.HIGH,
            resolved_at=resolved_at, status=IncidentStatus.OPEN, alert_count=0, firing_count=0,
        )  # fmt: skip
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


def triggers_alone(db_url: str) -> str:
    """The newest revision whose triggers keep incident_labels and alert_counts for every
    alert row inserted: from 0021 SQLite's writer adds those of the alerts it inserts
    (tests/api/test_alert_facts.py); PostgreSQL's triggers still do at the head."""
    return "0020" if db_url.startswith("sqlite") else "head"


async def test_alerts_stored_before_0014_are_found_by_their_label_values(db_url: str) -> None:
    """0014 indexes the label values of the alerts already stored; later alerts are
    indexed as they are written, and as they move to another incident."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    received = {"first_received": t0, "last_received": t0, "receive_count": 1}
    base = {"starts_at": t0, "status": "firing", **received, "annotations": {}}
    base |= {"generator_url": "", "source": "alertmanager", "action": "joined", "reason": "r"}

    def add_incident(conn: Connection, key: str) -> int:
        inc = stored_incident(key, t0)
        query = insert(incidents).values(repo.incident_values(inc)).returning(incidents.c.id)
        incident_id: int = conn.execute(query).scalar_one()
        return incident_id

    def add_alert(conn: Connection, fp: str, incident_id: int | None, **labels: str) -> None:
        values = {**base, "fingerprint": fp, "labels": labels, "incident_id": incident_id}
        conn.execute(alerts.insert().values(values))

    def old_rows(conn: Connection) -> None:
        first = add_incident(conn, "a")
        add_alert(conn, "f1", first, pod="web-7", env="prod")
        add_alert(conn, "f2", None, pod="orphan-1")  # in no incident: found by none

    def new_rows(conn: Connection) -> None:
        second = add_incident(conn, "b")
        add_alert(conn, "f3", second, pod="web-8", env="prod")
        add_alert(conn, "f4", None, pod="web-9")
        conn.execute(alerts.update().where(alerts.c.fingerprint == "f4").values(incident_id=2))

    def search(q: str) -> Any:
        return lambda conn: [i.key for i in repo.list_incidents(conn, repo.IncidentFilter(q=q), 10)]

    try:
        await upgrade(db, "0013")
        await db.write(old_rows)
        await upgrade(db, triggers_alone(db_url))
        await db.write(new_rows)
        for q, keys in [
            ("web-7", ["a"]),
            ("prod", ["b", "a"]),
            ("web-8", ["b"]),
            ("web-9", ["b"]),
            ("orphan-1", []),
        ]:
            assert await db.read(search(q)) == keys, q
        await db.write(lambda conn: downgrade(conn, "0013"))
        tables = set(await db.read(lambda conn: inspect(conn).get_table_names()))
        assert "incident_labels" not in tables
        await db.write(lambda conn: add_alert(conn, "f5", 1, pod="web-10"))  # no trigger left
    finally:
        await db.dispose()


async def test_incidents_resolved_before_0014_count_in_the_sla_summary(db_url: str) -> None:
    """0014 sums the SLA facts of the incidents already resolved per day: the summary
    read from those sums equals the one counted incident by incident."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)
    now = t0 + timedelta(days=5)

    def old_rows(conn: Connection) -> None:
        rows = []
        for n in range(40):
            opened = t0 + n * 173 * minute
            resolved = opened + (n % 4) * 20 * minute if n % 5 else None
            responded = opened + (n % 3) * 9 * minute if n % 2 else None
            inc = stored_incident(
                f"k{n}",
                opened,
                priority=(Priority.P1, Priority.P3, Priority.P5)[n % 3],
                impact=Level.HIGH,
                urgency=Level.HIGH,
                responded_at=responded,
                resolved_at=resolved,
                respond_due=opened + 15 * minute if n % 3 != 2 else None,
                resolve_due=opened + 50 * minute if n % 3 == 0 else None,
            )
            rows.append(repo.incident_values(inc))
        conn.execute(insert(incidents), rows)

    try:
        await upgrade(db, "0013")
        await db.write(old_rows)
        await upgrade(db)
        since = t0 + 7 * 60 * minute
        counted = await db.read(lambda conn: slaclock.sla_summary(conn, since, now))
        clocked = await db.read(lambda conn: slaclock.clocked_since(conn, since))
        expected = summarize(clocked, now)
        for row in expected:
            for key in ("mtta_s", "mttr_s"):
                row[key] = None if row[key] is None else round(float(str(row[key])), 3)
        assert counted == expected
        days = await db.read(
            lambda conn: conn.execute(sa.select(sa.func.count()).select_from(sla_days)).scalar_one()
        )
        assert days > 3
    finally:
        await db.dispose()


async def test_incidents_stored_before_0015_are_found_by_the_text_index(db_url: str) -> None:
    """0015 indexes the titles and keys already stored (SQLite); later incidents are
    indexed as they are written, and again when their title changes."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def add(conn: Connection, key: str, title: str) -> None:
        inc = stored_incident(key, t0, title=title)
        conn.execute(insert(incidents).values(repo.incident_values(inc)))

    def named(q: str) -> Any:
        return lambda conn: repo.text_lookup(conn, q)

    def keys(q: str) -> Any:
        return lambda conn: [i.key for i in repo.list_incidents(conn, repo.IncidentFilter(q=q), 10)]

    sqlite = db_url.startswith("sqlite")
    try:
        await upgrade(db, "0014")
        await db.write(lambda conn: add(conn, "a", "Disk full on db-1"))
        await upgrade(db)
        await db.write(lambda conn: add(conn, "b", "Latency of api"))
        await db.write(
            lambda conn: conn.execute(
                incidents.update().where(incidents.c.key == "a").values(title="Disk FULL on db-2")
            )
        )
        assert await db.read(named("disk full")) == ([1] if sqlite else None)
        assert await db.read(named("db-1")) == ([] if sqlite else None)  # the old title left
        assert await db.read(named("latency")) == ([2] if sqlite else None)
        for q, found in [("disk full", ["a"]), ("db-1", []), ("db-2", ["a"]), ("API", ["b"])]:
            assert await db.read(keys(q)) == found, q
        await db.write(lambda conn: downgrade(conn, "0014"))
        tables = set(await db.read(lambda conn: inspect(conn).get_table_names()))
        assert not {t for t in tables if t.startswith("incidents_text")}
        await db.write(lambda conn: add(conn, "c", "after the downgrade"))  # no trigger left
        await upgrade(db)  # (the store reads the columns of later revisions too)
        assert await db.read(keys("after the")) == ["c"]
    finally:
        await db.dispose()


def _scanned_counts(conn: Connection) -> dict[tuple[int, str, str], int]:
    """What alert_counts should hold: the stored alerts counted per quarter hour,
    rule and alertname, in Python."""
    out: dict[tuple[int, str, str], int] = {}
    for starts_at, rule, labels in conn.execute(
        sa.select(alerts.c.starts_at, alerts.c.rule, alerts.c.labels)
    ):
        quarter = int(starts_at.timestamp()) // QUARTER_S * QUARTER_S
        key = (quarter, rule or "", labels.get("alertname") or "")
        out[key] = out.get(key, 0) + 1
    return out


def _counts(conn: Connection) -> dict[tuple[int, str, str], int]:
    """The counts as the review reads them: summed over writers, none that sum to 0."""
    c = alert_counts.c
    rows = conn.execute(
        sa.select(c.quarter, c.rule, c.alertname, sa.func.sum(c.alerts)).group_by(
            c.quarter, c.rule, c.alertname
        )
    )
    return {(q, r, n): int(count) for q, r, n, count in rows if count}


def _marks(conn: Connection) -> dict[str, tuple[int, str | None]]:
    c = incidents.c
    rows = conn.execute(sa.select(c.key, c.reopens, c.resolved_by))
    return {key: (reopens, by) for key, reopens, by in rows}


async def test_alerts_and_timelines_before_0017_are_counted_and_marked(db_url: str) -> None:
    """0017 counts the alerts already stored per quarter hour, rule and alertname, and
    marks the incidents their timelines reopened or resolved; triggers then keep both
    as alerts are written, re-routed and deleted and as timelines grow."""
    db = Database(db_url, busy_timeout=timedelta(seconds=3))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    received = {"first_received": t0, "last_received": t0, "receive_count": 1}
    base = {"status": "firing", **received, "annotations": {}, "generator_url": ""}
    base |= {"source": "alertmanager", "action": "joined", "reason": "r"}
    # The last instant of a quarter hour, and the first of the next.
    edge = t0 + timedelta(minutes=14, seconds=59, microseconds=999_999)

    def alert(fp: str, starts_at: datetime, rule: str | None, **labels: str) -> dict[str, Any]:
        return {**base, "fingerprint": fp, "starts_at": starts_at, "rule": rule, "labels": labels}

    def entry(incident_id: int, kind: str) -> dict[str, object]:
        return {"incident_id": incident_id, "at": t0, "kind": kind, "message": "m", "actor": "a"}

    def add_incident(conn: Connection, key: str) -> int:
        inc = stored_incident(key, t0)
        query = insert(incidents).values(repo.incident_values(inc)).returning(incidents.c.id)
        incident_id: int = conn.execute(query).scalar_one()
        return incident_id

    def old_rows(conn: Connection) -> None:
        conn.execute(
            alerts.insert(),
            [
                alert("a1", t0, "db", alertname="Down"),
                alert("a2", t0 + timedelta(minutes=3), "db", alertname="Down"),
                alert("a3", edge, "db", alertname="Down"),
                alert("a4", edge + timedelta(microseconds=1), "db", alertname="Down"),
                alert("a5", t0, None, alertname="Down"),  # unrouted
                alert("a6", t0, "db"),  # no alertname
            ],
        )
        a, b, c = (add_incident(conn, k) for k in "abc")
        conn.execute(
            insert(timeline),
            [
                entry(a, "resolved"),
                entry(a, "reopened"),
                entry(a, "auto_resolved"),
                entry(b, "auto_resolved"),
                entry(b, "reopened"),
                entry(b, "reopened"),
                entry(b, "resolved"),
                entry(c, "commented"),
            ],
        )

    def new_rows(conn: Connection) -> None:
        conn.execute(alerts.insert(), [alert("a7", t0, "db", alertname="Down")])
        conn.execute(alerts.update().where(alerts.c.fingerprint == "a5").values(rule="web"))
        conn.execute(alerts.update().where(alerts.c.fingerprint == "a1").values(status="resolved"))
        conn.execute(alerts.delete().where(alerts.c.fingerprint.in_(["a2", "a6"])))
        ids = {key: id_ for key, id_ in conn.execute(sa.select(incidents.c.key, incidents.c.id))}
        conn.execute(insert(timeline), [entry(ids["a"], "reopened"), entry(ids["c"], "resolved")])

    quarter = int(t0.timestamp())
    try:
        await upgrade(db, "0016")
        await db.write(old_rows)
        await upgrade(db, triggers_alone(db_url))
        assert await db.read(_counts) == {
            (quarter, "db", "Down"): 3,
            (quarter + QUARTER_S, "db", "Down"): 1,
            (quarter, "", "Down"): 1,
            (quarter, "db", ""): 1,
        }
        assert await db.read(_marks) == {"a": (1, "auto"), "b": (2, "manual"), "c": (0, None)}
        await db.write(new_rows)
        assert await db.read(_counts) == {
            (quarter, "db", "Down"): 3,
            (quarter + QUARTER_S, "db", "Down"): 1,
            (quarter, "web", "Down"): 1,
        }
        assert await db.read(_counts) == await db.read(_scanned_counts)
        assert await db.read(_marks) == {"a": (2, "auto"), "b": (2, "manual"), "c": (0, "manual")}
    finally:
        await db.dispose()
