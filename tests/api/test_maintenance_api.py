"""/api/v1/maintenance: windows created and deleted by change managers, stored."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert

from itsmd.config import Role, Token
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.tables import maintenance_windows
from tests.api.api_support import T0, ApiClient, MakeClient, alert

PATH = "/api/v1/maintenance"
RULES = """\
incidents:
  - name: svc
    match: '{}'
    group_by: [service]
maintenance:
  - name: from-rules
    match: '{service="legacy"}'
    every: '0 3 * * *'
    duration: 1h
"""
WINDOW = {
    "name": "db-upgrade",
    "match": '{service="db"}',
    "start": "2026-11-28T03:00:00Z",
    "end": "2026-11-28T05:00:00Z",
    "change": "CHG-42",
}


async def _create(client: ApiClient, body: Any, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(PATH, json=body, headers=headers)


async def _windows(client: ApiClient) -> dict[str, dict[str, Any]]:
    resp = await client.get(PATH)
    assert resp.status == 200
    return {w["name"]: w for w in (await resp.json())["maintenance"]}


async def test_a_created_window_suppresses_until_it_is_deleted(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    resp = await _create(client, WINDOW)
    assert resp.status == 201, await resp.text()

    windows = await _windows(client)
    assert windows["db-upgrade"] | {"active_until": None} == {
        "name": "db-upgrade",
        "source": "api",
        "match": ['{service="db"}'],
        "action": "suppress",
        "start": "2026-11-28T03:00:00Z",
        "end": "2026-11-28T05:00:00Z",
        "every": None,
        "duration": None,
        "timezone": "UTC",
        "change": "CHG-42",
        "active": True,
        "active_until": None,
    }
    assert windows["from-rules"]["source"].endswith("rules.yml:6")
    result = await client.webhook(alert("Down", service="db"))
    assert result["incidents"] == []

    assert (await client.delete(f"{PATH}/db-upgrade")).status == 204
    result = await client.webhook(alert("Down", service="db", instance="b"))
    assert result["incidents"] == ["INC-1"]
    assert (await client.delete(f"{PATH}/db-upgrade")).status == 404


async def test_windows_are_stored_and_survive_a_restart(make_client: MakeClient) -> None:
    first = await make_client(RULES)
    assert (await _create(first, WINDOW)).status == 201

    again = await make_client(RULES)

    assert "db-upgrade" in await _windows(again)
    result = await again.webhook(alert("Down", service="db"))
    assert result["incidents"] == []


async def test_a_bad_window_is_refused_with_the_reason_and_nothing_is_stored(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    cases = [
        (WINDOW | {"end": "2026-11-28T01:00:00Z"}, 422, "must be after start"),
        ({"name": "x", "match": "{}"}, 422, "needs start and end"),
        (WINDOW | {"match": "{service=db}"}, 422, "invalid matcher"),
        (WINDOW | {"name": "from-rules"}, 409, "defined in test-rules.yml:6"),
    ]
    for body, status, message in cases:
        resp = await _create(client, body)
        assert resp.status == status, body
        assert message in (await resp.json())["error"], body
    resp = await client.post(PATH, data=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert set(await _windows(client)) == {"from-rules"}


async def test_a_regex_re2_refuses_is_a_422_naming_the_field(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    resp = await _create(client, WINDOW | {"match": '{service=~"(a)\\\\1"}'})
    assert resp.status == 422
    body = await resp.json()
    assert "RE2" in body["error"]
    assert body["detail"]["field"] == "window.match"
    assert set(await _windows(client)) == {"from-rules"}

    assert (await _create(client, WINDOW)).status == 201
    resp = await _create(client, WINDOW)
    assert resp.status == 409
    assert "exists" in (await resp.json())["error"]


async def test_only_admins_change_windows(make_client: MakeClient) -> None:
    tokens = (Token("oncall", Role.RESPOND, "s-respond"), Token("root", Role.ADMIN, "s-admin"))
    client = await make_client(RULES, tokens=tokens)

    assert (await _create(client, WINDOW, "s-respond")).status == 403
    assert (await _create(client, WINDOW, "s-admin")).status == 201
    resp = await client.get(PATH, headers={"Authorization": "Bearer s-respond"})
    assert resp.status == 200


async def test_a_recurring_window_reports_when_it_is_on(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    body = {
        "name": "nightly",
        "match": "{}",
        "every": "0 3 * * *",
        "duration": "2h",
        "timezone": "UTC",
        "action": "annotate",
    }
    assert (await _create(client, body)).status == 201

    nightly = (await _windows(client))["nightly"]
    assert (nightly["active"], nightly["active_until"]) == (True, "2026-11-28T05:00:00Z")
    client.clock.advance(timedelta(hours=3))
    assert (await _windows(client))["nightly"]["active"] is False
    assert T0.hour == 3


async def test_a_stored_window_re2_refuses_is_left_out_not_fatal(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows stored before matchers were RE2 may hold a backreference: the daemon
    starts without them and says which to delete."""
    row = {
        "action": "suppress",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
        "duration_s": 3600.0,
        "timezone": "UTC",
        "created_at": T0,
        "created_by": "alice",
    }

    def store(conn: Connection) -> None:
        conn.execute(
            insert(maintenance_windows),
            [
                row | {"name": "old", "match": ['{service=~"(a)\\\\1"}']},
                row | {"name": "good", "match": ['{service="db"}']},
            ],
        )

    await db.write(store)
    with caplog.at_level(logging.WARNING):
        windows = await db.read(repo.api_windows)
    assert [w.name for w in windows] == ["good"]
    assert "maintenance window old is not in force" in caplog.text
