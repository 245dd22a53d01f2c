"""Console forms act through the same use cases as the API: what they change shows in
the API's JSON afterwards, recorded under the person who acted (docs/console.md)."""

from __future__ import annotations

import getpass
import json
from typing import Any

import pytest

from tests.api.api_support import alert, by_kind, webhook_body
from tests.console.conftest import SECRETS, TOKENS, ConsoleClient, MakeConsole, text_of


@pytest.fixture
async def client(make_console: MakeConsole) -> ConsoleClient:
    c = await make_console(tokens=TOKENS)
    await _fire(c, alert("Down", service="db"))
    await c.login_as("oncall")
    return c


async def _fire(client: ConsoleClient, *alerts: dict[str, Any]) -> None:
    resp = await client.post(
        "/api/v1/webhooks/alertmanager",
        json=webhook_body(*alerts),
        headers={"Authorization": f"Bearer {SECRETS['alertmanager']}"}
        if client.runtime.settings.tokens
        else None,
    )
    assert resp.status == 200, await resp.text()


async def test_acknowledge_then_assign_comment_resolve_and_reopen(client: ConsoleClient) -> None:
    page = "/incidents/INC-1"
    steps = [
        ("ack", {"note": "looking"}, "acknowledged"),
        ("assign", {"assignee": "alice", "note": "db owner"}, "acknowledged"),
        ("comment", {"text": "restarted the primary"}, "acknowledged"),
        ("resolve", {"note": "fixed"}, "resolved"),
        ("reopen", {"note": "back again"}, "open"),
    ]
    for action, fields, status in steps:
        resp = await client.submit(f"{page}/{action}", fields, on=page)
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == page
        assert (await client.api_incident("INC-1"))["status"] == status
    detail = await client.api_incident("INC-1")
    assert detail["assignee"] == "alice"
    for kind in ("acknowledged", "assigned", "commented", "resolved", "reopened"):
        (entry,) = by_kind(detail["timeline"], kind)
        assert entry["actor"] == "oncall", kind
    assert "restarted the primary" in by_kind(detail["timeline"], "commented")[0]["message"]


async def test_the_page_after_an_action_says_what_was_done(client: ConsoleClient) -> None:
    await client.submit("/incidents/INC-1/ack", {}, on="/incidents/INC-1")
    html = await client.page("/incidents/INC-1")
    assert 'id="flash"' in html
    assert "Acknowledged INC-1" in text_of(html)
    assert 'id="flash"' not in await client.page("/incidents/INC-1")  # once


async def test_an_action_that_does_not_fit_the_state_is_409_with_the_page(
    client: ConsoleClient,
) -> None:
    await client.submit("/incidents/INC-1/ack", {}, on="/incidents/INC-1")
    resp = await client.submit("/incidents/INC-1/ack", {}, on="/incidents/INC-1")
    assert resp.status == 409
    html = await resp.text()
    assert 'id="error"' in html
    assert 'data-incident-id="INC-1"' in html  # the incident's page, with the error on it


async def test_an_empty_comment_is_422_and_stores_nothing(client: ConsoleClient) -> None:
    resp = await client.submit("/incidents/INC-1/comment", {"text": "  "}, on="/incidents/INC-1")
    assert resp.status == 422
    assert by_kind((await client.api_incident("INC-1"))["timeline"], "commented") == []


async def test_an_unknown_incident_or_action_is_a_404_page(client: ConsoleClient) -> None:
    for path in ("/incidents/INC-99/ack", "/incidents/INC-1/explode", "/incidents/nope/ack"):
        resp = await client.submit(path, {}, on="/incidents/INC-1")
        assert resp.status == 404, path
        assert "text/html" in resp.headers["Content-Type"]


async def test_a_form_that_is_not_a_form_is_400(client: ConsoleClient) -> None:
    token = await client.csrf("/incidents/INC-1")
    resp = await client.post("/incidents/INC-1/ack", json={"csrf": token}, allow_redirects=False)
    assert resp.status == 400
    assert (await client.api_incident("INC-1"))["status"] == "open"


async def test_without_tokens_actions_are_recorded_under_the_local_user(
    make_console: MakeConsole,
) -> None:
    client = await make_console()
    await _fire(client, alert("Down", service="db"))
    await client.submit("/incidents/INC-1/ack", {}, on="/incidents/INC-1")
    (entry,) = by_kind((await client.api_incident("INC-1"))["timeline"], "acknowledged")
    assert entry["actor"] == getpass.getuser()

    resp = await client.sign_in({"name": "Dana <on call>"})
    assert resp.status == 303
    assert "Dana &lt;on call&gt;" in await client.page("/incidents")
    await client.submit("/incidents/INC-1/comment", {"text": "hi"}, on="/incidents/INC-1")
    (entry,) = by_kind((await client.api_incident("INC-1"))["timeline"], "commented")
    assert entry["actor"] == "Dana <on call>"


async def test_without_tokens_forms_still_need_the_csrf_token(make_console: MakeConsole) -> None:
    client = await make_console()
    await _fire(client, alert("Down", service="db"))
    resp = await client.submit("/incidents/INC-1/ack", {}, on="", csrf="")
    assert resp.status == 403
    assert (await client.api_incident("INC-1"))["status"] == "open"


PROBLEM_RULES = """\
incidents:
  - name: disk
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    auto_resolve: 0s
problems:
  - name: recurring-disk-full
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    after: 2
    within: 7d
    title: 'Disk keeps filling on {{ labels.instance }}'
"""


async def _problem(make_console: MakeConsole) -> ConsoleClient:
    from datetime import timedelta

    from tests.api.api_support import resolved

    client = await make_console(PROBLEM_RULES, tokens=TOKENS)
    for _ in range(2):
        firing = alert("DiskFull", instance="db-1", starts_at=client.clock.now)
        await _fire(client, firing)
        client.clock.advance(timedelta(minutes=10))
        await _fire(client, resolved(firing, client.clock.now))
        client.clock.advance(timedelta(hours=1))
    return client


async def test_problem_actions_set_root_cause_and_known_error_then_resolve(
    make_console: MakeConsole,
) -> None:
    client = await _problem(make_console)
    await client.login_as("oncall")
    page = "/problems/PRB-1"
    assert "Disk keeps filling on db-1" in await client.page(page)
    for action, fields in (
        ("root_cause", {"text": "log rotation off"}),
        ("known_error", {"workaround": "run logrotate -f"}),
    ):
        resp = await client.submit(f"{page}/{action}", fields, on=page)
        assert resp.status == 303, await resp.text()
    headers = {"Authorization": f"Bearer {SECRETS['viewer']}"}
    body = await (await client.get("/api/v1/problems/PRB-1", headers=headers)).json()
    assert (body["status"], body["root_cause"], body["workaround"]) == (
        "known_error",
        "log rotation off",
        "run logrotate -f",
    )
    html = await client.page(page)
    assert html.index('id="known-error"') < html.index('id="actions"')
    assert (await client.submit(f"{page}/known_error", {"workaround": ""}, on=page)).status == 422
    assert (await client.submit(f"{page}/resolve", {}, on=page)).status == 303
    body = await (await client.get("/api/v1/problems/PRB-1", headers=headers)).json()
    assert body["status"] == "resolved"
    # Recorded under the signed-in token's name, and shown on the page.
    assert (body["root_cause_by"], body["workaround_by"], body["resolved_by"]) == ("oncall",) * 3
    html = await client.page(page)
    assert 'id="actions"' not in html
    assert "(set by oncall)" in html
    assert '<span class="by" id="resolved-by">by oncall</span>' in html


async def test_an_admin_creates_and_ends_a_maintenance_window(make_console: MakeConsole) -> None:
    client = await make_console(tokens=TOKENS)
    await client.login_as("root")
    fields = {
        "name": "db-upgrade",
        "match": '{service="db"}',
        "duration": "2h",
        "comment": "CHG-42 <b>upgrade</b>",
    }
    resp = await client.submit("/maintenance", fields, on="/maintenance")
    assert resp.status == 303, await resp.text()
    headers = {"Authorization": f"Bearer {SECRETS['root']}"}
    listed = await (await client.get("/api/v1/maintenance", headers=headers)).json()
    (window,) = listed["maintenance"]
    assert window["name"] == "db-upgrade"
    assert window["active"] is True
    html = await client.page("/maintenance")
    assert "CHG-42 &lt;b&gt;upgrade&lt;/b&gt;" in html
    assert "created by root" in text_of(html)

    # An alert of the window is suppressed, and shows as such in the alert search.
    await _fire(client, alert("Down", service="db"))
    assert "suppressed" in await client.page("/alerts?state=suppressed")

    resp = await client.submit("/maintenance/db-upgrade/end", {}, on="/maintenance")
    assert resp.status == 303, await resp.text()
    listed = await (await client.get("/api/v1/maintenance", headers=headers)).json()
    assert listed["maintenance"][0]["active"] is False
    again = await client.submit("/maintenance/db-upgrade/end", {}, on="/maintenance")
    assert again.status == 409


async def test_an_invalid_window_is_422_and_keeps_what_was_typed(
    make_console: MakeConsole,
) -> None:
    client = await make_console(tokens=TOKENS)
    await client.login_as("root")
    fields = {"name": "bad", "match": '{service=~"("}', "duration": "2h", "comment": "keep me"}
    resp = await client.submit("/maintenance", fields, on="/maintenance")
    assert resp.status == 422
    html = await resp.text()
    assert 'id="error"' in html
    assert "keep me" in html
    headers = {"Authorization": f"Bearer {SECRETS['root']}"}
    listed = await (await client.get("/api/v1/maintenance", headers=headers)).json()
    assert listed["maintenance"] == []
    resp = await client.submit(
        "/maintenance", {"name": "x", "match": '{a="b"}', "duration": "soon"}, on="/maintenance"
    )
    assert resp.status == 422
    assert "duration" in json.dumps(text_of(await resp.text()))
