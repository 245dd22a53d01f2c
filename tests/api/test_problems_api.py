"""Problems: incidents that keep recurring open one problem, listed by the API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from itsmd.cli.main import main
from tests.api.api_support import ApiClient, MakeClient, alert, by_kind, resolved

RULES = """\
incidents:
  - name: disk
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    auto_resolve: 0s
problems:
  - name: recurring-disk-full
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    after: 3
    within: 7d
    title: 'Disk keeps filling on {{ labels.instance }}'
"""


async def _episode(client: ApiClient, instance: str = "db-1") -> None:
    """One incident: the alert fires, then resolves (auto_resolve 0s), a day apart."""
    firing = alert("DiskFull", instance=instance, starts_at=client.clock.now)
    await client.webhook(firing)
    client.clock.advance(timedelta(minutes=10))
    await client.webhook(resolved(firing, client.clock.now))
    client.clock.advance(timedelta(days=1))


async def test_the_third_incident_within_the_span_opens_a_problem(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    # Before any problem, the rule's series is there at 0: a rate over it reads 0.
    assert 'itsmd_problems_opened_total{rule="recurring-disk-full"} 0.0' in (
        await client.metrics_text()
    )
    await _episode(client)
    await _episode(client)
    await _episode(client, instance="db-2")  # another key: not counted
    assert (await (await client.get("/api/v1/problems")).json())["problems"] == []

    await _episode(client)

    body = await (await client.get("/api/v1/problems")).json()
    (problem,) = body["problems"]
    assert problem | {"opened_at": None} == {
        "id": "PRB-1",
        "status": "open",
        "title": "Disk keeps filling on db-1",
        "rule": "recurring-disk-full",
        "key": 'recurring-disk-full{instance="db-1"}',
        "opened_at": None,
        "resolved_at": None,
        "root_cause": None,
        "root_cause_by": None,
        "workaround": None,
        "workaround_by": None,
        "resolved_by": None,
        "incident_count": 3,
    }
    assert await client.metric("itsmd_problems_opened_total", rule="recurring-disk-full") == 1
    detail = await (await client.get("/api/v1/problems/PRB-1")).json()
    assert [i["id"] for i in detail["incidents"]] == ["INC-1", "INC-2", "INC-4"]
    inc = await client.incident("INC-4")
    assert inc["problem_id"] == "PRB-1"
    (entry,) = by_kind(inc["timeline"], "problem_linked")
    assert "3 incidents of key recurring-disk-full" in entry["message"]

    await _episode(client)  # a later incident joins the open problem

    detail = await (await client.get("/api/v1/problems/PRB-1")).json()
    assert detail["incident_count"] == 4
    assert (await client.incident("INC-5"))["problem_id"] == "PRB-1"


async def test_incidents_further_apart_than_within_open_no_problem(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES.replace("within: 7d", "within: 36h"))
    for _ in range(4):
        await _episode(client)  # a day apart: never 3 within 36h
    assert (await (await client.get("/api/v1/problems")).json())["problems"] == []


async def test_an_unknown_problem_is_404(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    assert (await client.get("/api/v1/problems/PRB-9")).status == 404
    assert (await client.get("/api/v1/problems/nope")).status == 404


async def _act(client: ApiClient, action: str, body: dict[str, str] | None = None) -> Any:
    return await client.post(f"/api/v1/problems/PRB-1/{action}", json=body or {})


async def test_a_known_error_problem_lends_its_workaround_then_resolves(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    for _ in range(3):
        await _episode(client)

    resp = await _act(client, "root_cause", {"text": "log rotation disabled", "actor": "ana"})
    body = await resp.json()
    assert (body["root_cause"], body["root_cause_by"]) == ("log rotation disabled", "ana")
    assert (await _act(client, "known_error")).status == 422
    resp = await _act(client, "known_error", {"workaround": "logrotate -f /etc/logrotate.conf"})
    body = await resp.json()
    assert (body["status"], body["workaround_by"]) == ("known_error", "anonymous")

    await _episode(client)  # INC-4 links to the known error

    inc = await client.incident("INC-4")
    assert inc["known_error"] == "logrotate -f /etc/logrotate.conf"
    (entry,) = by_kind(inc["timeline"], "known_error")
    assert entry["message"].startswith("known error PRB-1: workaround attached")

    resp = await _act(client, "resolve", {"actor": "bo"})
    body = await resp.json()
    assert (body["status"], body["resolved_at"] is not None) == ("resolved", True)
    assert (body["resolved_by"], body["root_cause_by"]) == ("bo", "ana")
    assert (await _act(client, "resolve")).status == 409
    assert (await client.post("/api/v1/problems/PRB-1/close", json={})).status == 404


async def test_the_command_line_lists_and_shows_problems(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    for _ in range(3):
        await _episode(client)
    url = str(client.make_url("/")).rstrip("/")
    capsys.readouterr()

    assert await asyncio.to_thread(main, ["problems", "list", "--url", url]) == 0
    listed = capsys.readouterr().out
    assert "PRB-1" in listed
    assert "Disk keeps filling on db-1" in listed
    assert await asyncio.to_thread(main, ["problems", "show", "PRB-1", "--url", url]) == 0
    shown = capsys.readouterr().out
    assert "INC-1" in shown
    assert "INC-3" in shown


async def test_incidents_opened_in_one_batch_are_linked_once(make_client: MakeClient) -> None:
    rules = RULES.replace(
        "    group_by: [instance]\n    after: 3", "    group_by: []\n    after: 3"
    )
    client = await make_client(rules)

    await client.webhook(*(alert("DiskFull", instance=f"db-{n}") for n in range(3)))

    (problem,) = (await (await client.get("/api/v1/problems")).json())["problems"]
    assert problem["incident_count"] == 3
    detail = await (await client.get(f"/api/v1/problems/{problem['id']}")).json()
    assert len(detail["incidents"]) == 3
