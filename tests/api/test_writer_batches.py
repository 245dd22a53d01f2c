"""Group commit keeps one sender's mistake its own: when a merged batch fails for a
reason that is not an outage, each request runs alone and only the faulty one fails
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import SQLAlchemyError

from itsmd.correlation.correlate import WorkingSet
from itsmd.correlation.fingerprint import fingerprint
from itsmd.models import Action, Alert, AlertStatus, Decision, StoredAlert
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.migrate import upgrade
from itsmd.store.tables import alerts
from tests.api.api_support import T0, MakeClient

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
"""


def domain_alert(service: str, annotations: Any = None) -> Alert:
    labels = {"alertname": "Down", "service": service}
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus.FIRING,
        labels=labels,
        annotations=annotations if annotations is not None else {"summary": "down"},
        starts_at=T0,
        ends_at=None,
        generator_url="",
        source="alertmanager",
        raw={"startsAt": "set"},
    )


async def test_a_request_that_breaks_the_batch_fails_alone(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    writer = client.runtime.writer
    assert writer is not None
    # A value the store cannot serialize stands for anything that makes a statement
    # fail on one request's data (not an outage).
    broken = domain_alert("db", annotations={"summary": {"not", "json"}})
    good, bad, other = await asyncio.gather(
        writer.ingest([domain_alert("api")]),
        writer.ingest([broken]),
        writer.ingest([domain_alert("web")]),
        return_exceptions=True,
    )
    assert isinstance(bad, SQLAlchemyError)
    assert "not JSON serializable" in str(bad)
    for result in (good, other):
        assert not isinstance(result, BaseException)
        assert len(result.incidents) == 1
    assert sorted(i["service"] for i in await client.incidents()) == ["api", "web"]
    stored = {a["labels"]["service"] for a in await client.stored_alerts()}
    assert stored == {"api", "web"}
    assert await client.metric("itsmd_store_errors_total", operation="ingest") == 1


@pytest.mark.parametrize("requests", [1, 3])
async def test_good_requests_merged_into_one_batch_are_stored_together(
    make_client: MakeClient, requests: int
) -> None:
    client = await make_client(RULES)
    writer = client.runtime.writer
    assert writer is not None
    services = [f"s{n}" for n in range(requests)]
    await asyncio.gather(*(writer.ingest([domain_alert(s)]) for s in services))
    assert sorted(i["service"] for i in await client.incidents()) == services


async def test_new_alert_rows_on_sqlite_store_what_the_table_types_bind(sqlite_url: str) -> None:
    """SQLite takes new alert rows as plain tuples (repo._insert_alerts_sqlite); each
    column must hold what SQLAlchemy's insert through the table's types would."""
    database = Database(sqlite_url, busy_timeout=timedelta(seconds=1))
    await upgrade(database)
    later = T0 + timedelta(minutes=5, microseconds=7)
    kinds = [
        (None, Decision(Action.UNROUTED, "no incident rule matched; stored only"), None),
        (later, Decision(Action.SUPPRESSED, "suppressed", "r", "k", "night", "CHG-1"), None),
        (None, Decision(Action.OPENED, "opened one", "r", 'k="ä"'), 41),
    ]
    stored = [
        StoredAlert(
            id=-n - 1,
            fingerprint=f"{n:016x}",
            starts_at=T0.astimezone(timezone(timedelta(hours=2))),  # stored as UTC
            status=AlertStatus.RESOLVED if ends_at else AlertStatus.FIRING,
            ends_at=ends_at,
            labels={"alertname": "Down", "ü": '\u2603 "quoted"'},
            annotations={"summary": "x" * 300},
            generator_url="http://prometheus/graph?g0.expr=up",
            source="alertmanager",
            first_received=T0,
            last_received=later,
            receive_count=n + 1,
            incident_id=None,
            decision=decision,
            placed_after=placed_after,
        )
        for n, (ends_at, decision, placed_after) in enumerate(kinds)
    ]
    columns = ", ".join(f'"{c.name}"' for c in alerts.columns if c.name != "id")

    def store_both(conn: Connection, now: datetime) -> tuple[list[Any], list[Any]]:
        ws = WorkingSet()
        for alert in stored:
            ws.put_alert(alert)
        repo.flush(conn, ws)
        fast = conn.exec_driver_sql(f"SELECT {columns} FROM alerts ORDER BY id").all()
        conn.execute(delete(alerts))
        conn.execute(insert(alerts), [repo.alert_values(a) for a in stored])
        typed = conn.exec_driver_sql(f"SELECT {columns} FROM alerts ORDER BY id").all()
        conn.execute(delete(alerts))
        return fast, typed

    try:
        fast, typed = await database.write(lambda conn: store_both(conn, T0))
    finally:
        await database.dispose()
    assert len(fast) == len(stored)
    assert fast == typed
