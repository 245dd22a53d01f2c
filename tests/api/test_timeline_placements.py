"""Placements the alert rows hold (correlation/joins.py): the timeline an incident
shows is the one correlation decided, entry for entry, in its order, whether a
placement was written as a row or is derived from its alert when read.

Each scenario records every entry correlation and the actions made (including the
placements no row is written for) as they are made, and compares each incident's
timeline from GET /api/v1/incidents/{id} with it: the timeline every earlier version
stored, a row per entry, in the order written. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from itsmd.correlation.correlate import WorkingSet
from itsmd.durations import parse_time
from itsmd.models import TimelineEntry, evolve
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.migrate import upgrade
from itsmd.store.tables import timeline
from tests.api.api_support import ApiClient, MakeClient, alert, downgrade, resolved

MINUTE = timedelta(minutes=1)
Entry = tuple[str, str, str, str, str | None]


@pytest.fixture
def make_client(make_client: MakeClient) -> MakeClient:
    """Decisions are recorded where they are made: batches run in this process, not in
    the ingest process (runtime/ingestproc.py), out of the recorder's reach."""

    async def create(*args: Any, **settings: Any) -> ApiClient:
        return await make_client(*args, ingest_process=False, **settings)

    return create


def _rules(**policy: str) -> str:
    lines = "".join(f"    {key}: {value}\n" for key, value in policy.items())
    return "incidents:\n  - name: svc\n    match: '{}'\n    group_by: [service]\n" + lines


class Decided:
    """Every timeline entry as decided, by incident, in the order decided."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[TimelineEntry] = []
        flush, add = repo.flush, repo.add_timeline

        def recording_flush(conn: Connection, ws: WorkingSet) -> dict[int, int]:
            ids = flush(conn, ws)
            self.entries += [
                evolve(e, incident_id=ids.get(e.incident_id, e.incident_id)) for e in ws.timeline
            ]
            return ids

        def recording_add(conn: Connection, entries: Sequence[TimelineEntry], **kw: Any) -> None:
            add(conn, entries, **kw)
            self.entries += entries

        monkeypatch.setattr(repo, "flush", recording_flush)
        monkeypatch.setattr(repo, "add_timeline", recording_add)

    def of(self, ref: str) -> list[Entry]:
        incident_id = int(ref.removeprefix("INC-"))
        return [_fields(e) for e in self.entries if e.incident_id == incident_id]


def _fields(e: TimelineEntry) -> Entry:
    return (e.kind.value, e.at.isoformat(), e.message, e.actor, e.rule)


async def _shown(client: ApiClient, ref: str) -> list[Entry]:
    detail = await client.incident(ref)
    return [
        (e["kind"], repo_time(e["at"]), e["message"], e["actor"], e["rule"])
        for e in detail["timeline"]
    ]


def repo_time(text: str) -> str:
    return parse_time(text).isoformat()


async def _all_agree(client: ApiClient, decided: Decided) -> int:
    refs = [i["id"] for i in await client.incidents()]
    for ref in refs:
        assert await _shown(client, ref) == decided.of(ref), ref
    return len(refs)


async def _rows(client: ApiClient) -> int:
    db = client.runtime.db
    assert db is not None
    count: int = await db.read(
        lambda c: c.execute(select(func.count()).select_from(timeline)).scalar_one()
    )
    return count


async def test_new_alerts_joining_write_no_timeline_rows_and_show_the_same(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(_rules())
    await client.webhook(*(alert("Down", service="api", instance=f"i{k}") for k in range(5)))
    client.clock.advance(MINUTE)
    await client.webhook(
        alert("Down", service="api", instance="i9", severity="critical"),  # raises priority
        alert("Slow", service="db"),
    )

    assert await _all_agree(client, decided) == 2
    assert await _rows(client) == 3  # opened twice, the priority raised: no placement rows


async def test_an_alert_that_fires_again_in_its_incident_keeps_its_first_placement(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="1h"))
    first, second = alert("Down", service="api", instance="a"), alert("Down", service="api")
    await client.webhook(first, second)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(first)  # fires again: its decision now says so
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(first)  # and again: the first placement is written once

    await _all_agree(client, decided)
    kinds = [e[0] for e in await _shown(client, "INC-1")]
    assert kinds.count("alert_joined") == 2
    assert kinds.count("alert_refired") == 2


async def test_joined_resolved_and_fired_again_in_one_request(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="1h"))
    first = alert("Down", service="api", instance="a")
    await client.webhook(
        first, alert("Down", service="api"), resolved(first, client.clock.now), first
    )

    # The first alert's placement, superseded in the request that made it, is a row.
    shown = await _shown(client, "INC-1")
    assert shown == decided.of("INC-1")
    kinds = [kind for kind, *_ in shown]
    assert kinds == ["opened", "alert_joined", "alert_joined", "alert_resolved", "alert_refired"]
    assert await _rows(client) == 4


async def test_a_join_after_a_resolve_and_its_hold_in_one_request_keeps_its_place(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="1h"))
    last = alert("Down", service="api", instance="y")
    await client.webhook(last)
    client.clock.advance(MINUTE)
    await client.webhook(
        resolved(last, client.clock.now), alert("Down", service="api", instance="x")
    )

    shown = await _shown(client, "INC-1")
    assert shown == decided.of("INC-1")
    assert [kind for kind, *_ in shown][2:] == [
        "alert_resolved",
        "hold_started",
        "hold_cancelled",
        "alert_joined",
    ]


async def test_a_placement_written_out_later_keeps_its_place(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Joined with what followed it in one request (a raised priority), then fired again:
    its placement, written out then, stays where it was made."""
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="1h"))  # urgency: auto, the default
    first = alert("Down", service="api", instance="a", severity="warning")
    await client.webhook(first, alert("Down", service="api", instance="b", severity="critical"))
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(first)

    shown = await _shown(client, "INC-1")
    assert shown == decided.of("INC-1")
    assert "priority_raised" in [kind for kind, *_ in shown]


async def test_an_alert_that_moves_leaves_its_placement_and_the_move(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="0s", reopen="2m"))
    episode, other = alert("Down", service="api"), alert("Down", service="api", instance="b")
    await client.webhook(episode, other)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(episode, client.clock.now), resolved(other, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(other)  # within reopen: reopens INC-1
    client.clock.advance(MINUTE)
    await client.webhook(resolved(other, client.clock.now))
    client.clock.advance(10 * MINUTE)
    await client.webhook(episode)  # after reopen: moves to INC-2

    assert await _all_agree(client, decided) == 2
    assert "alert_moved" in [e[0] for e in await _shown(client, "INC-1")]


async def test_a_symptom_keeps_its_attachment_when_it_fires_again(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    rules = (
        _rules(auto_resolve="1h")
        + "    attach_to_upstream: true\n"
        + "services:\n"
        + "  - {name: checkout, depends_on: [postgres]}\n"
        + "  - {name: postgres}\n"
    )
    client = await make_client(rules)
    await client.webhook(alert("Down", service="postgres"))
    client.clock.advance(MINUTE)
    symptom = alert("Slow", service="checkout", severity="critical")
    await client.webhook(symptom)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(symptom, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(symptom)

    await _all_agree(client, decided)
    kinds = [e[0] for e in await _shown(client, "INC-1")]
    assert kinds.count("symptom_attached") == 1


async def test_an_alert_released_by_a_window_and_known_errors(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = Decided(monkeypatch)
    client = await make_client(
        _rules(auto_resolve="1h")
        + "known_errors:\n"
        + "  - name: disk\n"
        + "    match: '{alertname=\"DiskFull\"}'\n"
        + "    workaround: 'rotate logs'\n"
    )
    now = client.clock.now
    window = {
        "name": "db-upgrade",
        "match": ['{service="db"}'],
        "start": now.isoformat(),
        "end": (now + 10 * MINUTE).isoformat(),
        "change": "CHG-7",
    }
    resp = await client.post("/api/v1/maintenance", json=window)
    assert resp.status in (200, 201), await resp.text()
    await client.webhook(alert("Down", service="db"), alert("DiskFull", service="web"))
    client.clock.advance(MINUTE)
    await client.webhook(alert("Down", service="web", instance="x"))
    client.clock.advance(20 * MINUTE)
    await client.sweep()  # the window ended: the suppressed alert is placed now
    client.clock.advance(MINUTE)
    await client.webhook(alert("Down", service="db", instance="late"))

    assert await _all_agree(client, decided) == 2
    messages = [m for ref in ("INC-1", "INC-2") for _, _, m, _, _ in await _shown(client, ref)]
    assert any("until it ended" in m for m in messages)
    assert any(m.startswith("known error disk") for m in messages)


async def test_placements_stored_as_rows_before_0020_are_shown_once(
    make_client: MakeClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of 0019 has a row for every placement (the downgrade writes the implicit
    ones out, as the code before 0020 wrote them): upgraded, each is shown once, and an
    alert that fires again does not write its placement a second time."""
    decided = Decided(monkeypatch)
    client = await make_client(_rules(auto_resolve="1h"))
    first = alert("Down", service="api", instance="a")
    await client.webhook(first, alert("Down", service="api"), alert("Slow", service="api"))
    assert await _rows(client) == 1

    await db.write(lambda conn: downgrade(conn, "0019"))
    assert await _rows(client) == 4
    await upgrade(db)
    await _all_agree(client, decided)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(MINUTE)
    await client.webhook(first)

    await _all_agree(client, decided)
    assert await _rows(client) == 6  # the resolve and the refire
