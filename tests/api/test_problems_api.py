"""Problems: incidents that keep recurring open one problem, listed by the API."""

from __future__ import annotations

from datetime import timedelta

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
    await _episode(client)
    await _episode(client)
    await _episode(client, instance="db-2")  # another key: not counted
    assert (await (await client.get("/api/v1/problems")).json())["problems"] == []

    await _episode(client)

    body = await (await client.get("/api/v1/problems")).json()
    (problem,) = body["problems"]
    assert problem | {"opened_at": None} == {
        "id": "PRB-1", "status": "open", "title": "Disk keeps filling on db-1",
        "rule": "recurring-disk-full", "key": 'recurring-disk-full{instance="db-1"}',
        "opened_at": None, "resolved_at": None, "root_cause": None, "workaround": None,
        "incident_count": 3,
    }  # fmt: skip
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
