"""/api/v1/maintenance: windows created, ended and deleted by change managers, stored."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from sqlalchemy import Connection, insert

from itsmd.api import maintenance
from itsmd.config import Role, Settings, Token
from itsmd.correlation.lifecycle import Conflict
from itsmd.correlation.rules import parse_window
from itsmd.runtime.actions import NotFound
from itsmd.server.app import build_app
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.tables import maintenance_windows
from tests.api.api_support import T0, ApiClient, FakeClock, MakeClient, alert
from tests.api.conftest import rule_set

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
        "comment": None,
        "created_by": "anonymous",
        "active": True,
        "active_until": None,
        "state": "active",
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


END_PATH = "/api/v1/maintenance/{name}/end"


def with_end_route(app: web.Application) -> web.Application:
    """POST /api/v1/maintenance/{name}/end, unless server/app.py routes it already."""
    if not any(r.canonical == END_PATH for r in app.router.resources()):
        app.router.add_post(END_PATH, maintenance.end_window)
    return app


@pytest.fixture
def make_daemon(db_url: str, clock: FakeClock, aiohttp_client: AiohttpClient) -> MakeClient:
    """As `make_client`, with the route that ends a window."""

    async def create(rules_yaml: str = RULES, **settings: Any) -> ApiClient:
        app = build_app(
            Settings(**{"database": db_url, **settings}),
            clock=clock,
            rules=rule_set(rules_yaml),
            sweep_interval=timedelta(hours=1),
            run_checks=False,
        )
        client = await aiohttp_client(with_end_route(app))
        assert isinstance(client, ApiClient)
        client.clock = clock
        return client

    return create


async def _end(client: ApiClient, name: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(f"{PATH}/{name}/end", headers=headers)


async def test_an_ended_window_stops_at_once_and_stays_listed_as_ended(
    make_daemon: MakeClient,
) -> None:
    client = await make_daemon()
    assert (await _create(client, WINDOW)).status == 201
    assert (await client.webhook(alert("Down", service="db")))["incidents"] == []
    client.clock.advance(timedelta(minutes=20))

    resp = await _end(client, "db-upgrade")

    assert resp.status == 200, await resp.text()
    ended = await resp.json()
    assert (ended["start"], ended["end"]) == ("2026-11-28T03:00:00Z", "2026-11-28T03:20:00Z")
    assert (ended["active"], ended["state"]) == (False, "ended")
    assert (await _windows(client))["db-upgrade"] == ended
    result = await client.webhook(alert("Down", service="db", instance="b"))
    assert result["incidents"] == ["INC-1"]


async def test_ending_an_ended_window_a_rule_files_or_an_unknown_one_is_refused(
    make_daemon: MakeClient,
) -> None:
    client = await make_daemon()
    assert (await _create(client, WINDOW)).status == 201
    assert (await _end(client, "db-upgrade")).status == 200

    again = await _end(client, "db-upgrade")
    assert again.status == 409
    assert "ended at 2026-11-28T03:00:00Z" in (await again.json())["error"]
    from_rules = await _end(client, "from-rules")
    assert from_rules.status == 409
    assert "defined in test-rules.yml:6" in (await from_rules.json())["error"]
    assert (await _end(client, "nope")).status == 404
    # an ended window may still be deleted, which frees its name
    assert (await client.delete(f"{PATH}/db-upgrade")).status == 204
    assert (await _create(client, WINDOW)).status == 201


async def test_a_window_that_has_not_begun_can_be_called_off(make_daemon: MakeClient) -> None:
    client = await make_daemon()
    later = WINDOW | {"start": "2026-11-28T06:00:00Z", "end": "2026-11-28T08:00:00Z"}
    assert (await _create(client, later)).status == 201
    assert (await _windows(client))["db-upgrade"]["state"] == "scheduled"

    assert (await _end(client, "db-upgrade")).status == 200

    client.clock.advance(timedelta(hours=4))  # inside the window as it was planned
    assert (await _windows(client))["db-upgrade"]["state"] == "ended"
    assert (await client.webhook(alert("Down", service="db")))["incidents"] == ["INC-1"]


async def test_an_ended_recurring_window_never_comes_back(make_daemon: MakeClient) -> None:
    client = await make_daemon()
    nightly = {"name": "nightly", "match": "{}", "every": "0 3 * * *", "duration": "2h"}
    assert (await _create(client, nightly)).status == 201
    client.clock.advance(timedelta(minutes=30))
    assert (await _windows(client))["nightly"]["active_until"] == "2026-11-28T05:00:00Z"

    resp = await _end(client, "nightly")

    assert resp.status == 200
    assert (await resp.json())["end"] == "2026-11-28T03:30:00Z"
    client.clock.advance(timedelta(days=1))  # the next night's occurrence
    window = (await _windows(client))["nightly"]
    assert (window["active"], window["state"]) == (False, "ended")
    assert (await client.webhook(alert("Down", service="db")))["incidents"] == ["INC-1"]


async def test_only_admins_end_windows(make_daemon: MakeClient) -> None:
    tokens = (Token("oncall", Role.RESPOND, "s-respond"), Token("root", Role.ADMIN, "s-admin"))
    client = await make_daemon(tokens=tokens)
    assert (await _create(client, WINDOW, "s-admin")).status == 201

    assert (await _end(client, "db-upgrade", "s-respond")).status == 403
    assert (await _end(client, "db-upgrade", "s-admin")).status == 200


async def test_the_comment_and_who_created_it_are_kept(make_client: MakeClient) -> None:
    tokens = (Token("root", Role.ADMIN, "s-admin"),)
    client = await make_client(RULES, tokens=tokens)
    body = WINDOW | {"comment": "  pg 16 upgrade  ", "actor": "alice"}

    resp = await _create(client, body, "s-admin")

    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert (created["comment"], created["created_by"]) == ("pg 16 upgrade", "alice (token root)")
    again = await make_client(RULES, tokens=tokens)  # stored: a restart keeps them
    listed = await again.get(PATH, headers={"Authorization": "Bearer s-admin"})
    window = {w["name"]: w for w in (await listed.json())["maintenance"]}["db-upgrade"]
    assert (window["comment"], window["created_by"]) == ("pg 16 upgrade", "alice (token root)")
    assert window["source"] == "api"


async def test_without_tokens_the_actor_named_is_the_creator(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    resp = await _create(client, WINDOW | {"actor": "bob"})
    assert (await resp.json())["created_by"] == "bob"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"comment": 7}, "window.comment", None),
        ({"comment": ["a"]}, "window.comment", "expected a string"),
        ({"comment": "x" * 4001}, "window.comment", "at most 4000 characters, got 4001"),
        ({"actor": 7}, "actor", "expected a string, got int"),
    ],
)
async def test_a_bad_comment_or_actor_is_a_422(
    make_client: MakeClient, extra: dict[str, Any], field: str, message: str | None
) -> None:
    client = await make_client(RULES)
    resp = await _create(client, WINDOW | extra)
    if message is None:  # a number reads as its text, as elsewhere in rule files
        assert resp.status == 201
        assert (await resp.json())["comment"] == "7"
        return
    assert resp.status == 422
    body = await resp.json()
    assert body["detail"]["field"] == field
    assert message in body["error"]
    assert "db-upgrade" not in await _windows(client)


async def test_the_console_saves_and_ends_windows_without_a_request(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    runtime = client.runtime
    window = parse_window(
        '{"name": "w", "match": "{service=\\"db\\"}", '
        '"start": "2026-11-28T02:00:00Z", "end": "2026-11-28T04:00:00Z", '
        '"comment": "from the console"}'
    )

    await maintenance.save_window(runtime, window, "carol")

    assert (await _windows(client))["w"]["created_by"] == "carol"
    with pytest.raises(Conflict, match="exists"):
        await maintenance.save_window(runtime, window, "carol")
    with pytest.raises(Conflict, match=r"defined in test-rules\.yml:6"):
        await maintenance.save_window(
            runtime,
            parse_window(
                '{"name": "from-rules", "match": "{}", "every": "0 1 * * *", "duration": "1h"}'
            ),
            "carol",
        )
    ended = await maintenance.end_window_now(runtime, "w")
    assert (ended.end, ended.comment, ended.created_by) == (T0, "from the console", "carol")
    with pytest.raises(Conflict, match="ended at"):
        await maintenance.end_window_now(runtime, "w")
    with pytest.raises(NotFound):
        await maintenance.end_window_now(runtime, "nope")
