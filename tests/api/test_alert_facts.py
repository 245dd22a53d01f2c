"""The facts kept beside the alert rows (the label values of each incident's alerts and
the alerts per quarter hour, rule and alertname) are what the stored alerts say, on
both stores: written by triggers on PostgreSQL and by SQLite's writer once per batch
(store/alertfacts.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection

from itsmd.correlation.correlate import WorkingSet
from itsmd.correlation.fingerprint import fingerprint
from itsmd.models import Action, Alert, AlertStatus, Decision, StoredAlert
from itsmd.store import repo
from itsmd.store.alertfacts import quarter_of
from itsmd.store.engine import Database
from itsmd.store.migrate import upgrade
from itsmd.store.tables import LABEL_VALUE_MAX, alert_counts, alerts, incident_labels, incidents
from tests.api.api_support import MakeClient, downgrade, stored_incident

RULES = """\
incidents:
  - name: down
    match: '{alertname="Down"}'
    group_by: [service]
  - name: team
    match: '{team="db"}'
    group_by: [team]
"""

# 14:59:59.9999 and 15:00:00 fall in two quarter hours; the fraction is dropped.
LATE = datetime(2026, 3, 1, 14, 59, 59, 999900, tzinfo=UTC)
ON_TIME = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def alert(starts_at: datetime, **labels: str) -> Alert:
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus.FIRING,
        labels=labels,
        annotations={},
        starts_at=starts_at,
        ends_at=None,
        generator_url="",
        source="alertmanager",
        raw={"startsAt": "set"},
    )


def facts(conn: Connection) -> tuple[dict[tuple[int, str, str], int], set[tuple[str, int]]]:
    c = alert_counts.c
    counts = conn.execute(
        sa.select(c.quarter, c.rule, c.alertname, sa.func.sum(c.alerts)).group_by(
            c.quarter, c.rule, c.alertname
        )
    )
    values = conn.execute(sa.select(incident_labels.c.value, incident_labels.c.incident_id))
    return {(q, r, n): int(total) for q, r, n, total in counts}, {(v, i) for v, i in values}


def expected(conn: Connection) -> tuple[dict[tuple[int, str, str], int], set[tuple[str, int]]]:
    """From the alert rows, as migrations 0014 and 0017 define the facts."""
    counts: dict[tuple[int, str, str], int] = {}
    values: set[tuple[str, int]] = set()
    a = alerts.c
    for starts_at, rule, labels, incident_id in conn.execute(
        sa.select(a.starts_at, a.rule, a.labels, a.incident_id)
    ):
        key = (quarter_of(starts_at), rule or "", labels.get("alertname") or "")
        counts[key] = counts.get(key, 0) + 1
        if incident_id is not None:
            values |= {(v, incident_id) for v in labels.values() if len(v) <= LABEL_VALUE_MAX}
    return counts, values


async def test_the_facts_of_stored_alerts_agree_with_their_rows(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    writer, db = client.runtime.writer, client.runtime.db
    assert writer is not None
    assert db is not None
    longest, too_long = "v" * LABEL_VALUE_MAX, "w" * (LABEL_VALUE_MAX + 1)
    first = [
        *(alert(LATE, alertname="Down", service="api", instance=f"i{n}") for n in range(5)),
        alert(ON_TIME, alertname="Down", service="api", instance="i9", note=longest),
        alert(ON_TIME, alertname="Down", service="web", note=too_long),
        alert(LATE, team="db", instance="i1"),  # routed, no alertname
        alert(ON_TIME, alertname="Other", service="api"),  # unrouted: counted, no incident
    ]
    # The same alerts again (re-sends: counted once), and more of the same keys.
    second = [
        *first,
        *(alert(ON_TIME, alertname="Down", service="api", pod=f"p{n}") for n in range(3)),
    ]
    for batch in (first, second):
        await writer.ingest(batch)

    counted, values = await db.read(facts)
    assert (counted, values) == await db.read(expected)
    assert counted == {
        (quarter_of(LATE), "down", "Down"): 5,
        (quarter_of(ON_TIME), "down", "Down"): 5,
        (quarter_of(LATE), "team", ""): 1,
        (quarter_of(ON_TIME), "", "Other"): 1,
    }
    assert quarter_of(ON_TIME) - quarter_of(LATE) == 900
    assert {v for v, _ in values} >= {"Down", "api", "web", "db", "i0", "p2", longest}
    assert too_long not in {v for v, _ in values}
    assert "Other" not in {v for v, _ in values}


def test_a_quarter_drops_the_fraction_and_truncates_as_sql_does() -> None:
    assert quarter_of(datetime(1970, 1, 1, 0, 14, 59, 999999, tzinfo=UTC)) == 0
    assert quarter_of(datetime(1970, 1, 1, 0, 15, tzinfo=UTC)) == 900
    # Before 1970 SQL's integer division goes towards zero, not down.
    assert quarter_of(datetime(1969, 12, 31, 23, 50, tzinfo=UTC)) == 0
    assert quarter_of(datetime(1969, 12, 31, 23, 44, 59, 500000, tzinfo=UTC)) == -900
    assert quarter_of(ON_TIME.astimezone(timezone(timedelta(hours=2)))) == quarter_of(ON_TIME)


async def test_downgrading_0021_gives_the_inserts_back_to_the_triggers(sqlite_url: str) -> None:
    db = Database(sqlite_url, busy_timeout=timedelta(seconds=3))
    at = {"starts_at": ON_TIME, "first_received": ON_TIME, "last_received": ON_TIME}
    row = {**at, "status": "firing", "annotations": {}, "generator_url": "", "rule": "down"}
    row |= {"source": "alertmanager", "receive_count": 1, "action": "opened", "reason": "r"}

    def add(conn: Connection, fp: str) -> None:
        inc = stored_incident(fp, ON_TIME)
        query = sa.insert(incidents).values(repo.incident_values(inc)).returning(incidents.c.id)
        incident_id = conn.execute(query).scalar_one()
        labels = {"alertname": "Down", "pod": fp}
        values = {**row, "fingerprint": fp, "labels": labels, "incident_id": incident_id}
        conn.execute(sa.insert(alerts).values(values))

    try:
        await upgrade(db)
        await db.write(lambda conn: add(conn, "by-hand"))  # no trigger: nothing kept
        assert await db.read(facts) == ({}, set())
        await db.write(lambda conn: downgrade(conn, "0020"))
        await db.write(lambda conn: add(conn, "by-trigger"))
        counted, values = await db.read(facts)
        assert counted == {(quarter_of(ON_TIME), "down", "Down"): 1}
        assert {v for v, _ in values} == {"Down", "by-trigger"}
        await upgrade(db)
        await db.write(lambda conn: add(conn, "by-hand-again"))  # the triggers are gone again
        assert (await db.read(facts))[0] == {(quarter_of(ON_TIME), "down", "Down"): 1}
    finally:
        await db.dispose()


# Inputs at the edges of what the triggers computed: fractions of a second at a quarter's
# end, times before 1970 (SQL's division truncates), other offsets and a repeated local
# hour, values of 200 and 201 characters of several bytes each, alertnames that look
# like something else, no rule, no incident.
BERLIN = ZoneInfo("Europe/Berlin")
EDGES: list[tuple[datetime, dict[str, str], str | None, bool]] = [
    *(
        (at, {"alertname": "A"}, "r", True)
        for at in [
            datetime(2026, 3, 1, 14, 59, 59, 999999, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 44, 59, 999999, tzinfo=UTC),
            datetime(1, 1, 1, 0, 14, 59, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(
                2026, 3, 1, 20, 29, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))
            ),
            datetime(1969, 12, 31, 23, 59, tzinfo=timezone(timedelta(minutes=-1))),
            datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0),
            datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1),
        ]
    ),
    *((ON_TIME, {"alertname": name}, "r", True) for name in ["", "0", "null", '{"a":1}', "é😀"]),
    (ON_TIME, {"x": "no alertname"}, "r", True),
    (ON_TIME, {"alertname": "A"}, None, True),
    (ON_TIME, {"alertname": "A"}, "", True),
    (
        ON_TIME,
        {"alertname": "B", "v": "x" * 200, "w": "y" * 201, "e": "é" * 200, "f": "é" * 201},
        "r",
        True,
    ),
    (
        ON_TIME,
        {"alertname": "B", "g": "😀" * 200, "h": "😀" * 201, "m": "e\u0301" * 100},
        "r",
        True,
    ),
    (ON_TIME, {"alertname": "C", "q": "in no incident"}, "r", False),
    (ON_TIME, {"alertname": "C", "q": "unrouted"}, None, False),
]


async def test_the_writer_keeps_what_the_triggers_of_0020_kept(tmp_path: Path) -> None:
    """The same alert rows, inserted at 0020 (the triggers keep the facts) and at the
    head (the writer does), keep the same facts."""

    def insert(conn: Connection, triggers: bool) -> None:
        inc = stored_incident("k", ON_TIME)
        query = sa.insert(incidents).values(repo.incident_values(inc)).returning(incidents.c.id)
        incident_id = conn.execute(query).scalar_one()
        new = [
            StoredAlert(
                id=-n,
                fingerprint=f"f{n}",
                starts_at=at,
                status=AlertStatus.FIRING,
                ends_at=None,
                labels=labels,
                annotations={},
                generator_url="",
                source="alertmanager",
                first_received=ON_TIME,
                last_received=ON_TIME,
                receive_count=1,
                incident_id=incident_id if placed else None,
                decision=Decision(Action.OPENED, "r", rule=rule),
            )
            for n, (at, labels, rule, placed) in enumerate(EDGES, 1)
        ]
        if triggers:  # inserted as any client of the table would, the triggers add facts
            conn.execute(sa.insert(alerts), [repo.alert_values(a) for a in new])
            return
        ws = WorkingSet()  # the writer's own path
        for alert in new:
            ws.put_alert(alert)
        repo.flush(conn, ws)

    kept = []
    for revision in ("0020", "head"):
        db = Database(f"sqlite:///{tmp_path}/{revision}.db", busy_timeout=timedelta(seconds=3))
        try:
            await upgrade(db, revision)
            await db.write(lambda conn: insert(conn, revision == "0020"))  # noqa: B023
            kept.append(await db.read(facts))
        finally:
            await db.dispose()
    by_triggers, by_writer = kept
    assert by_writer == by_triggers
    counted, values = by_writer
    assert sum(counted.values()) == len(EDGES)
    assert ("x" * 200, 1) in values
    assert ("y" * 201, 1) not in values
