"""The incidents API (docs/api.md): list filters, cursor paging, detail, lifecycle actions."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from tests.api.api_support import INCIDENTS, T0, ApiClient, MakeClient, alert, rfc3339

# One incident per service; impact from a label so tests choose the priority.
RULES = """\
incidents:
  - name: svc
    match: '{}'
    group_by: [service]
    title: '{{ labels.alertname }} on {{ labels.service }}'
    impact: '{{ labels.impact }}'
    auto_resolve: never
"""


async def _open(
    client: ApiClient,
    service: str,
    *,
    alertname: str = "Down",
    impact: str = "medium",
    severity: str = "warning",
) -> str:
    result = await client.webhook(
        alert(alertname, service=service, impact=impact, severity=severity)
    )
    (ref,) = result["incidents"]
    return str(ref)


async def _ok(client: ApiClient, ref: str, action: str, body: Any = None) -> dict[str, Any]:
    resp = await client.act(ref, action, body)
    answer: dict[str, Any] = await resp.json()
    assert resp.status == 200, answer
    return answer


async def _error(
    client: ApiClient, status: int, method: str, path: str, **kwargs: Any
) -> dict[str, Any]:
    resp = await client.request(method, path, **kwargs)
    answer: dict[str, Any] = await resp.json()
    assert resp.status == status, answer
    assert set(answer) == {"error", "detail"}
    assert answer["error"]
    return answer


def _ids(incidents: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in incidents]


# ---- list and filters


@pytest.fixture
async def populated(make_client: MakeClient) -> ApiClient:
    """INC-1 api P1 open (03:00), INC-2 db P3 acknowledged (03:10),
    INC-3 web P4 resolved (03:20, title 'HighLatency on web'), INC-4 db-replica P3 open."""
    client = await make_client(RULES)
    await _open(client, "api", impact="high", severity="critical")
    client.clock.advance(timedelta(minutes=10))
    await _ok(client, await _open(client, "db"), "ack")
    client.clock.advance(timedelta(minutes=10))
    web = await _open(client, "web", alertname="HighLatency", impact="low")
    await _ok(client, web, "resolve")
    client.clock.advance(timedelta(minutes=10))
    await _open(client, "db-replica")
    return client


FILTERS: list[tuple[dict[str, str], list[str]]] = [
    ({}, ["INC-4", "INC-3", "INC-2", "INC-1"]),
    ({"status": "open"}, ["INC-4", "INC-1"]),
    ({"status": "acknowledged,resolved"}, ["INC-3", "INC-2"]),
    ({"priority": "P1"}, ["INC-1"]),
    ({"priority": "P3,P4"}, ["INC-4", "INC-3", "INC-2"]),
    ({"service": "db"}, ["INC-2"]),
    ({"q": "latency"}, ["INC-3"]),  # case-insensitive, in the title
    ({"q": 'service="db'}, ["INC-4", "INC-2"]),  # in the correlation key
    ({"since": "2026-11-28T03:10:00Z"}, ["INC-4", "INC-3", "INC-2"]),
    ({"since": "2026-11-28T04:15:00+01:00"}, ["INC-4", "INC-3"]),
    ({"since": "15m"}, ["INC-4", "INC-3"]),  # the last 15 minutes of the app's clock
    ({"status": "open", "priority": "P3"}, ["INC-4"]),
    ({"service": "nope"}, []),
]


async def test_list_filters(populated: ApiClient) -> None:
    for params, expected in FILTERS:
        assert _ids(await populated.incidents(**params)) == expected, params


async def test_repeated_filter_parameters_combine(populated: ApiClient) -> None:
    page = await populated.get_json(INCIDENTS, [("status", "open"), ("status", "resolved")])
    assert _ids(page["incidents"]) == ["INC-4", "INC-3", "INC-1"]


async def test_q_is_a_literal_substring(populated: ApiClient) -> None:
    """`%` and `_` are characters to find, not LIKE wildcards."""
    for q in ("%", "_", "Down%api", "on_api"):
        assert await populated.incidents(q=q) == [], q


async def test_cursor_paging_has_no_duplicates_or_gaps(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n in range(7):
        ref = await _open(client, f"s{n}")
        if n % 3 == 0:
            await _ok(client, ref, "resolve")

    for params, expected in [
        ({}, [f"INC-{n}" for n in range(7, 0, -1)]),
        ({"status": "open"}, ["INC-6", "INC-5", "INC-3", "INC-2"]),
    ]:
        seen: list[str] = []
        pages = 0
        query = {"limit": "2", **params}
        while True:
            page = await client.get_json(INCIDENTS, query)
            pages += 1
            assert len(page["incidents"]) <= 2
            seen += _ids(page["incidents"])
            if page["next"] is None:
                break
            query["cursor"] = page["next"]
        assert seen == expected, params
        assert pages == (len(expected) + 1) // 2


async def test_the_last_full_page_ends_the_list(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n in range(2):
        await _open(client, f"s{n}")
    page = await client.get_json(INCIDENTS, {"limit": "2"})
    assert len(page["incidents"]) == 2
    assert page["next"] is None


async def _pages(client: ApiClient, params: dict[str, str], limit: int) -> list[str]:
    """Every page of a list, following `next`; the pages are at most `limit` long."""
    seen: list[str] = []
    query = {"limit": str(limit), **params}
    while True:
        page = await client.get_json(INCIDENTS, query)
        assert len(page["incidents"]) <= limit
        seen += _ids(page["incidents"])
        if page["next"] is None:
            return seen
        query["cursor"] = page["next"]


# (impact, severity, then) for each incident, oldest first: ties in priority and status
URGENCY = [
    ("high", "critical", "resolve"),
    ("medium", "warning", None),
    ("high", "critical", None),
    ("low", "warning", "ack"),
    ("medium", "warning", "resolve"),
    ("high", "critical", "ack"),
    ("medium", "warning", None),
    ("low", "warning", "resolve"),
    ("high", "critical", None),
    ("medium", "warning", "ack"),
    ("high", "critical", "resolve"),
]


async def test_urgent_order_pages_without_gaps_or_repeats(make_client: MakeClient) -> None:
    """Open and acknowledged before resolved, then P1 first, then newest; every page
    size gives the same list."""
    client = await make_client(RULES)
    for n, (impact, severity, then) in enumerate(URGENCY):
        ref = await _open(client, f"s{n}", impact=impact, severity=severity)
        if then is not None:
            await _ok(client, ref, then)
    everything = await client.incidents()
    assert {i["priority"] for i in everything} == {"P1", "P3", "P4"}

    def urgent(incidents: list[dict[str, Any]]) -> list[str]:
        def rank(i: dict[str, Any]) -> tuple[bool, str, int]:
            return i["status"] == "resolved", i["priority"], -int(i["id"][4:])

        return _ids(sorted(incidents, key=rank))

    for params in [
        {},
        {"status": "open,acknowledged"},
        {"status": "resolved"},
        {"priority": "P1,P4"},
        {"status": "acknowledged,resolved", "priority": "P3"},
    ]:
        wanted = await client.incidents(**params)
        expected = urgent(wanted)
        for limit in (1, 2, 3, 500):
            got = await _pages(client, {**params, "order": "urgent"}, limit)
            assert got == expected, (params, limit)
        assert await _pages(client, {**params, "order": "newest"}, 2) == _ids(wanted)


async def test_assignee_filter(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    refs = [await _open(client, f"s{n}") for n in range(3)]
    await _ok(client, refs[0], "assign", {"assignee": "alice"})
    await _ok(client, refs[2], "assign", {"assignee": "alice"})
    await _ok(client, refs[1], "assign", {"assignee": "bob"})

    assert _ids(await client.incidents(assignee="alice")) == ["INC-3", "INC-1"]
    assert _ids(await client.incidents(assignee="alice", order="urgent")) == ["INC-3", "INC-1"]
    assert await client.incidents(assignee="ali") == []  # the whole name


async def test_q_finds_incidents_by_the_label_values_of_their_alerts(
    make_client: MakeClient,
) -> None:
    """An alert's label value, whole and as written, finds the incident it joined."""
    client = await make_client(RULES)
    await client.webhook(alert("Down", service="web", pod="web-7", impact="low"))
    await client.webhook(alert("Down", service="api", pod="api-1", impact="low"))
    client.clock.advance(timedelta(minutes=1))
    await client.webhook(alert("Slow", service="web", pod="web-12", impact="low"))
    await client.webhook(alert("Down", service="db", node="web-7", impact="low"))

    assert _ids(await client.incidents(q="web-7")) == ["INC-3", "INC-1"]
    assert _ids(await client.incidents(q="web-12")) == ["INC-1"]  # a later alert's
    assert _ids(await client.incidents(q="api-1", order="urgent")) == ["INC-2"]
    for q in ("web-", "eb-7", "WEB-7", "web-77"):  # not a part, nor another case
        assert await client.incidents(q=q) == [], q
    assert _ids(await client.incidents(q="down on api")) == ["INC-2"]  # the title still
    assert await client.incidents(q="x" * 300) == []  # longer than any indexed value


BAD_PARAMETERS = [
    ("order", "oldest"),
    ("status", "closed"),
    ("priority", "P9"),
    ("since", "yesterday"),
    ("limit", "0"),
    ("limit", "501"),
    ("limit", "ten"),
    ("cursor", "garbage!"),
    ("cursor", base64.urlsafe_b64encode(b"id:x").decode()),
    ("cursor", base64.urlsafe_b64encode(b"urgent:2:P1:5").decode()),
    ("cursor", base64.urlsafe_b64encode(b"urgent:0:P9:5").decode()),
    ("cursor", base64.urlsafe_b64encode(b"id:99999999999").decode()),
]


async def test_a_cursor_of_another_order_is_400(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n in range(3):
        await _open(client, f"s{n}")
    newest = await client.get_json(INCIDENTS, {"limit": "1"})
    urgent = await client.get_json(INCIDENTS, {"limit": "1", "order": "urgent"})
    for order, cursor in (("urgent", newest["next"]), ("newest", urgent["next"])):
        params = {"order": order, "cursor": cursor}
        answer = await _error(client, 400, "GET", INCIDENTS, params=params)
        assert answer["error"].startswith("cursor:"), answer


async def test_bad_list_parameters_are_400_naming_the_parameter(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for name, value in BAD_PARAMETERS:
        answer = await _error(client, 400, "GET", INCIDENTS, params={name: value})
        assert answer["error"].startswith(f"{name}:"), (name, value, answer)


# ---- one incident


async def test_show_gives_the_incident_with_alerts_timeline_and_sla(
    make_client: MakeClient,
) -> None:
    sla = {Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=4))}
    client = await make_client(RULES, sla=sla)
    ref = await _open(client, "api", impact="high", severity="critical")
    client.clock.advance(timedelta(minutes=1))
    await client.webhook(alert("Slow", service="api", impact="high", severity="critical"))

    detail = await client.incident(ref)

    assert detail["id"] == ref == "INC-1"
    expected = {
        "status": "open",
        "title": "Down on api",
        "priority": "P1",
        "impact": "high",
        "urgency": "high",
        "service": "api",
        "rule": "svc",
        "key": 'svc{service="api"}',
        "assignee": None,
        "opened_at": "2026-11-28T03:00:00Z",
        "acknowledged_at": None,
        "resolved_at": None,
        "alert_count": 2,
        "firing_count": 2,
        "problem_id": None,
        "parent_id": None,
        "labels": {"service": "api"},
        "known_error": None,
    }
    assert {key: detail[key] for key in expected} == expected
    assert "description" in detail
    assert detail["sla"]["respond_due"] == "2026-11-28T03:15:00Z"
    assert detail["sla"]["resolve_due"] == "2026-11-28T07:00:00Z"
    assert detail["sla"]["breached"] is False
    assert [a["labels"]["alertname"] for a in detail["alerts"]] == ["Down", "Slow"]
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "alert_joined", "alert_joined"]
    assert detail["timeline"][2]["at"] == "2026-11-28T03:01:00Z"

    client.clock.advance(timedelta(minutes=15))  # 03:16, not acknowledged
    assert (await client.incident(ref))["sla"]["breached"] is True


async def test_unknown_incident_is_404(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    await _open(client, "api")
    for ref in ("INC-999", "999", "bogus", "INC-"):
        await _error(client, 404, "GET", f"{INCIDENTS}/{ref}")
        await _error(client, 404, "POST", f"{INCIDENTS}/{ref}/ack", json={})


async def test_numeric_id_shows_the_same_incident(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    await _open(client, "api")
    assert (await client.incident("1"))["id"] == "INC-1"


# ---- actions


async def test_ack_assign_comment_resolve_reopen(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    ref = await _open(client, "api")
    client.clock.advance(timedelta(minutes=2))

    acked = await _ok(client, ref, "ack", {"actor": "alice", "note": "looking"})
    assert acked["status"] == "acknowledged"
    assert acked["acknowledged_at"] == "2026-11-28T03:02:00Z"

    assigned = await _ok(client, ref, "assign", {"assignee": "bob", "note": "db expert"})
    assert assigned["assignee"] == "bob"

    await _ok(client, ref, "comment", {"text": "restarted the pod", "actor": "bob"})

    client.clock.advance(timedelta(minutes=3))
    done = await _ok(client, ref, "resolve", {"note": "pod restarted"})
    assert (done["status"], done["resolved_at"]) == ("resolved", "2026-11-28T03:05:00Z")
    assert await client.metric("itsmd_incidents_resolved_total", how="manual") == 1

    again = await _ok(client, ref, "reopen", {"note": "came back"})
    assert again["status"] == "open"
    assert (again["resolved_at"], again["acknowledged_at"]) == (None, None)
    assert again["assignee"] == "bob"

    timeline = (await client.incident(ref))["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert kinds[-5:] == ["acknowledged", "assigned", "commented", "resolved", "reopened"]
    ack, assign, comment, resolve, reopen = timeline[-5:]
    assert ack["actor"] == "alice"
    assert ack["message"] == "acknowledged by alice: looking"
    assert assign["message"].endswith("to bob (was nobody) by anonymous: db expert")
    assert (comment["message"], comment["actor"]) == ("restarted the pod", "bob")
    assert "pod restarted" in resolve["message"]
    assert resolve["at"] == "2026-11-28T03:05:00Z"
    assert "came back" in reopen["message"]

    shown = await client.incident(ref)
    assert (shown["status"], shown["assignee"]) == ("open", "bob"), "actions were stored"


CONFLICTS = [
    (["resolve"], "ack"),
    (["resolve"], "resolve"),
    ([], "reopen"),
    (["ack"], "ack"),
    (["ack"], "reopen"),
]


async def test_action_that_does_not_fit_the_state_is_409(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n, (setup, action) in enumerate(CONFLICTS):
        ref = await _open(client, f"s{n}")
        for step in setup:
            await _ok(client, ref, step)
        before = await client.incident(ref)

        answer = await _error(client, 409, "POST", f"{INCIDENTS}/{ref}/{action}", json={})

        assert ref in answer["error"]
        assert await client.incident(ref) == before, f"{setup} then {action} changed nothing"


INVALID_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("comment", {}, "text"),
    ("comment", {"text": "   "}, "text"),
    ("comment", {"text": 42}, "text"),
    ("assign", {}, "assignee"),
    ("assign", {"assignee": ""}, "assignee"),
]


async def test_action_with_an_invalid_body_is_422(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    ref = await _open(client, "api")
    before = await client.incident(ref)
    for action, body, field in INVALID_BODIES:
        answer = await _error(client, 422, "POST", f"{INCIDENTS}/{ref}/{action}", json=body)
        assert answer["error"].startswith(field), (action, body, answer)
    assert await client.incident(ref) == before


async def test_action_body_that_is_not_a_json_object_is_400(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    ref = await _open(client, "api")
    await _error(
        client,
        400,
        "POST",
        f"{INCIDENTS}/{ref}/comment",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    await _error(client, 400, "POST", f"{INCIDENTS}/{ref}/comment", json=["text"])


async def test_unknown_action_is_404(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    ref = await _open(client, "api")
    await _error(client, 404, "POST", f"{INCIDENTS}/{ref}/escalate", json={})


async def test_acknowledging_stops_the_respond_clock(make_client: MakeClient) -> None:
    sla = {Priority.P3: SlaTarget(respond=timedelta(minutes=30), resolve=None)}
    client = await make_client(RULES, sla=sla)
    ref = await _open(client, "api")
    client.clock.advance(timedelta(minutes=10))
    await _ok(client, ref, "ack")
    client.clock.advance(timedelta(hours=2))

    sla_now = (await client.incident(ref))["sla"]

    assert sla_now["respond_due"] == rfc3339(T0 + timedelta(minutes=30)).replace(".000", "")
    assert sla_now["breached"] is False
