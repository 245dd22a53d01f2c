"""Retention: a run deletes the history older than `retention` and nothing that is
still in use (docs/operations.md, Retention), on SQLite and on PostgreSQL.

History is made through the API at the fake clock's T0; the clock then moves past
the horizon and the test runs the job's function itself, as its daily schedule would.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select

from itsmd.config import Retention as RetentionSettings
from itsmd.runtime.retention import Retention
from itsmd.server.app import RETENTION
from itsmd.store.tables import incident_labels, notifications, sla_breaches, timeline
from tests.api.api_support import ApiClient, MakeClient, alert, resolved

RULES = """\
incidents:
  - name: disk
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    auto_resolve: 0s
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
    auto_resolve: 0s
problems:
  - name: recurring-disk-full
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    after: 2
    within: 7d
"""
DAY = timedelta(days=1)
PAST_HORIZON = timedelta(days=401)


async def _episode(client: ApiClient, **labels: str) -> None:
    """One incident: an alert fires, then resolves (auto_resolve 0s)."""
    name = labels.pop("alertname", "DiskFull")
    firing = alert(name, starts_at=client.clock.now, **labels)
    await client.webhook(firing)
    client.clock.advance(timedelta(minutes=10))
    await client.webhook(resolved(firing, client.clock.now))
    client.clock.advance(timedelta(hours=1))


async def _status(client: ApiClient, path: str) -> int:
    return (await client.get(path)).status


async def _count(client: ApiClient, query: Any) -> int:
    db = client.runtime.db
    assert db is not None
    return int(await db.read(lambda conn: conn.execute(query).scalar_one()))


def _outbox_row(n: int, state: str, created_at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "event": "opened",
        "subject": "INC-1",
        "incident_id": 1,
        "route": "r",
        "sink": "s",
        "state": state,
        "payload": {},
        "created_at": created_at,
        # A pending row is not due for long: the delivery worker leaves it alone.
        "due_at": created_at + (1000 * DAY if state == "pending" else timedelta(0)),
        "attempts": 1,
    }


async def _history(client: ApiClient) -> None:
    """At T0: INC-1, INC-2 of db-1 and PRB-1 linking them, resolved; INC-3, INC-4 of
    db-2 and PRB-2, still open; INC-5 open, its alert firing; INC-6 resolved;
    INC-7 resolved by a person while its alert goes on firing; an unrouted alert;
    outbox rows in every state."""
    await _episode(client, instance="db-1")
    await _episode(client, instance="db-1")
    assert (await client.post("/api/v1/problems/PRB-1/resolve", json={})).status == 200
    await _episode(client, instance="db-2")
    await _episode(client, instance="db-2")
    await client.webhook(alert("Down", service="web", starts_at=client.clock.now))
    await _episode(client, alertname="Down", service="api")
    still = alert("Down", service="flap", starts_at=client.clock.now)
    await client.webhook(still)
    assert (await client.act("INC-7", "resolve")).status == 200
    await client.webhook(alert("Unrouted", starts_at=client.clock.now))
    rows = [_outbox_row(n, s, client.clock.now) for n, s in enumerate(("sent", "dead", "pending"))]
    rows.append(_outbox_row(3, "cancelled", client.clock.now))
    db = client.runtime.db
    assert db is not None
    await db.write(lambda conn: conn.execute(insert(notifications), rows))


async def test_a_run_deletes_old_history_and_keeps_what_is_in_use(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    await _history(client)
    client.clock.advance(PAST_HORIZON)
    # Later: the alert of INC-7 is sent again (it still fires), a new incident and
    # an unrouted alert, a recent notification.
    await client.webhook(alert("Down", service="flap", starts_at=client.clock.now - PAST_HORIZON))
    await client.webhook(alert("Down", service="new", starts_at=client.clock.now))
    await client.webhook(alert("Unrouted", starts_at=client.clock.now))
    db = client.runtime.db
    assert db is not None
    await db.write(
        lambda conn: conn.execute(insert(notifications), [_outbox_row(9, "sent", client.clock.now)])
    )
    labels_before = await _count(client, select(func.count()).select_from(incident_labels))
    entries = await _count(
        client, select(func.count()).where(timeline.c.incident_id.in_([1, 2, 6]))
    )
    assert entries > 0

    summary = await client.app[RETENTION].run_if_due()

    assert summary is not None
    assert summary.complete
    assert {str(k): n for k, n in summary.deleted.items()} == {
        "incidents": 3,  # INC-1, INC-2 (their problem resolved), INC-6
        "alerts": 4,  # theirs and the old unrouted one
        "timeline": entries,
        "notifications": 3,  # old sent, dead, cancelled
        "problems": 1,  # PRB-1: resolved, no incident left
    }
    gone = ["INC-1", "INC-2", "INC-6"]
    kept = ["INC-3", "INC-4", "INC-5", "INC-7", "INC-8"]
    for ref in gone:
        assert await _status(client, f"/api/v1/incidents/{ref}") == 404, ref
    for ref in kept:
        assert await _status(client, f"/api/v1/incidents/{ref}") == 200, ref
    assert await _status(client, "/api/v1/problems/PRB-1") == 404
    problem = await (await client.get("/api/v1/problems/PRB-2")).json()
    assert [i["id"] for i in problem["incidents"]] == ["INC-3", "INC-4"]
    web = await client.incident("INC-5")
    assert [a["status"] for a in web["alerts"]] == ["firing"]  # open: its old alert stays
    stored = await client.stored_alerts()
    assert [a["incident_id"] for a in stored if a["incident_id"] is None] == [None]  # the new
    assert {a["incident_id"] for a in stored} == {3, 4, 5, 7, 8, None}
    for table in (timeline, incident_labels, sla_breaches):
        rows = await _count(client, select(func.count()).where(table.c.incident_id.in_([1, 2, 6])))
        assert rows == 0, table.name
    assert await _count(client, select(func.count()).select_from(incident_labels)) < labels_before
    states = await db.read(
        lambda conn: sorted(conn.execute(select(notifications.c.event_id)).scalars())
    )
    assert states == ["e2", "e9"]  # the pending row and the recent one

    assert await client.metric("itsmd_retention_deleted_total", kind="incidents") == 3
    assert await client.metric("itsmd_retention_deleted_total", kind="alerts") == 4
    assert await client.metric("itsmd_retention_deleted_total", kind="timeline") == entries
    assert await client.metric("itsmd_retention_deleted_total", kind="notifications") == 3
    assert await client.metric("itsmd_retention_deleted_total", kind="problems") == 1
    assert await client.metric("itsmd_store_bytes") > 0
    began = client.clock.now.timestamp()
    assert await client.metric("itsmd_retention_last_run_timestamp_seconds") == began

    again = await client.app[RETENTION].run()  # nothing more is old
    assert sum(again.deleted.values()) == 0


async def test_nothing_younger_than_the_horizon_is_deleted(make_client: MakeClient) -> None:
    client = await make_client(RULES, retention=RetentionSettings(incidents=30 * DAY))
    await _history(client)
    client.clock.advance(29 * DAY)

    summary = await client.app[RETENTION].run()

    assert dict(summary.deleted) == {}
    assert await _status(client, "/api/v1/incidents/INC-1") == 200
    client.clock.advance(2 * DAY)  # the horizon is the setting: 30 days, not 400
    assert (await client.app[RETENTION].run()).deleted["incidents"] == 3


async def test_one_replica_runs_a_day(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    first, second = client.app[RETENTION], Retention(client.runtime)

    assert await first.run_if_due() is not None
    assert await second.run_if_due() is None  # the other replica ran today
    assert await first.run_if_due() is None  # and so did this one
    client.clock.advance(DAY)
    assert await second.run_if_due() is not None
    assert await first.run_if_due() is None


def _pragma(conn: Connection, name: str) -> int:
    return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())


# SQLite only: PostgreSQL's autovacuum makes the space of deleted rows reusable.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sqlite_gives_the_freed_space_back(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    db = client.runtime.db
    assert db is not None
    assert await db.read(lambda conn: _pragma(conn, "auto_vacuum")) == 2  # incremental
    big = {"summary": "x" * 2000}
    for n in range(300):
        await client.webhook(
            alert("Unrouted", n=str(n), annotations=big, starts_at=client.clock.now)
        )
    client.clock.advance(PAST_HORIZON)

    summary = await client.app[RETENTION].run()

    assert summary.deleted["alerts"] == 300
    assert await db.read(lambda conn: _pragma(conn, "freelist_count")) == 0
