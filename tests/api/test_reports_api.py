"""The service review and the post-incident review over a history built through the
API with a controlled clock; every expected figure is worked out by hand below
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itsmd.checks.availability import State
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from itsmd.store import checkstore
from tests.api.api_support import ApiClient, FakeClock, MakeClient, alert, resolved

REVIEW = "/api/v1/reports/review"
RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
    auto_resolve: 5m
    reopen: 1h
  - name: tickets
    match: '{severity="warning"}'
    group_by: [service]
    priority: P3
    auto_resolve: never
  - name: unused
    match: '{severity="none-such"}'
    group_by: [service]
services:
  - name: api
    slo: 99.9
checks:
  - name: api-beat
    type: heartbeat
    service: api
    match: '{alertname="Watchdog"}'
    interval: 5m
"""
SLA = {
    Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=4)),
    Priority.P3: SlaTarget(respond=timedelta(hours=1), resolve=timedelta(days=1)),
}
M = timedelta(minutes=1)
H = timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def ok(client: ApiClient, ref: str, action: str) -> None:
    resp = await client.act(ref, action, {"actor": "alice"})
    assert resp.status == 200, await resp.text()


async def history(make_client: MakeClient) -> ApiClient:
    """October: INC-1. November: INC-2 .. INC-5, all of service api (see the test)."""
    clock = FakeClock(at("2026-10-20 08:00"))
    client = await make_client(RULES, clock=clock, sla=SLA)

    # INC-1 (paging, P1), October: acknowledged after 20m (late), resolved after 2h.
    await client.webhook(alert("Down", severity="critical", service="api", starts_at=clock.now))
    clock.advance(20 * M)
    await ok(client, "INC-1", "ack")
    clock.advance(100 * M)
    await ok(client, "INC-1", "resolve")

    # INC-2 (paging, P1): acknowledged after 6m; its alert resolves at 20m; the 5m
    # hold resolves it automatically at 25m.
    clock.now = at("2026-11-02 10:00")
    down = alert("Down", severity="critical", service="api", starts_at=clock.now)
    await client.webhook(down)
    clock.advance(6 * M)
    await ok(client, "INC-2", "ack")
    clock.advance(14 * M)
    await client.webhook(resolved(down, clock.now))
    clock.advance(5 * M)
    assert await client.sweep() == 1

    # INC-3 (paging, P1): nobody answers; resolved by itself at 15m; a new alert at
    # 40m reopens it (reopen: 1h); a person resolves it at 60m.
    clock.now = at("2026-11-09 10:00")
    down = alert("Down", severity="critical", service="api", starts_at=clock.now)
    await client.webhook(down)
    clock.advance(10 * M)
    await client.webhook(resolved(down, clock.now))
    clock.advance(5 * M)
    assert await client.sweep() == 1
    clock.advance(25 * M)
    await client.webhook(
        alert("Down", severity="critical", service="api", pod="b", starts_at=clock.now)
    )
    assert (await client.incident("INC-3"))["status"] == "open"
    clock.advance(20 * M)
    await ok(client, "INC-3", "resolve")

    # INC-4 (tickets, P3): two DiskFull alerts; acknowledged at 30m, resolved at 3h.
    clock.now = at("2026-11-16 12:00")
    await client.webhook(
        alert("DiskFull", severity="warning", service="api", pod="a", starts_at=clock.now),
        alert("DiskFull", severity="warning", service="api", pod="b", starts_at=clock.now),
    )
    clock.advance(30 * M)
    await ok(client, "INC-4", "ack")
    clock.advance(150 * M)
    await ok(client, "INC-4", "resolve")

    # INC-5 (tickets, P3), the period's last hour: nobody answers.
    clock.now = at("2026-11-30 23:00")
    await client.webhook(alert("Slow", severity="warning", service="api", starts_at=clock.now))
    clock.now = at("2026-12-01 01:00")  # the review is written after the month

    # The service's availability history as the check runner records it: up from
    # November 1st but for three hours down on the 10th.
    db = client.runtime.db
    assert db is not None

    def record(conn: Any) -> None:
        for moment, state in (
            (at("2026-11-01 00:00"), State.UP),
            (at("2026-11-10 00:00"), State.DOWN),
            (at("2026-11-10 03:00"), State.UP),
        ):
            checkstore.record_change(conn, "service:api", moment, state)

    await db.write(record)
    return client


async def test_alerts_per_incident_are_each_incidents_own_alerts(
    make_client: MakeClient,
) -> None:
    """An alert that started before the period opened an incident in it: the period
    has no alert of that rule, and the incident still has its alert."""
    client = await make_client(RULES, sla=SLA)
    client.clock.now = at("2026-11-01 00:10")
    await client.webhook(
        alert("Down", severity="critical", service="api", starts_at=at("2026-10-31 23:50"))
    )
    client.clock.now = at("2026-12-01 01:00")

    doc = await client.get_json(REVIEW, {"from": "2026-11-01", "to": "2026-12-01"})

    paging = {r["rule"]: r for r in doc["rules"]}["paging"]
    assert paging["alerts"]["value"] == 0  # it started in October
    assert paging["incidents"]["value"] == 1
    assert paging["alerts_per_incident"]["value"] == 1.0
    assert doc["totals"]["alerts_per_incident"]["value"] == 1.0


def fig(value: Any, previous: Any, change: Any) -> dict[str, Any]:
    return {"value": value, "previous": previous, "change": change}


async def test_the_review_of_a_month_has_the_figures_worked_out_by_hand(
    make_client: MakeClient,
) -> None:
    client = await history(make_client)
    doc = await client.get_json(REVIEW, {"from": "2026-11-01", "to": "2026-12-01"})

    assert doc["period"]["from"] == "2026-11-01T00:00:00Z"
    assert doc["period"]["to"] == "2026-12-01T00:00:00Z"
    assert doc["period"]["days"] == 30
    # The previous period of a whole month is the month before: October, 31 days.
    assert doc["previous_period"]["from"] == "2026-10-01T00:00:00Z"
    assert doc["previous_period"]["days"] == 31

    t = doc["totals"]
    assert t["incidents"] == fig(4, 1, 3)
    # Alerts that started in November: INC-2 1, INC-3 2 (the one that reopened it),
    # INC-4 2, INC-5 1 = 6; October 1.
    assert t["alerts"] == fig(6, 1, 5)
    assert t["alerts_per_incident"] == fig(1.5, 1.0, 0.5)
    # MTTA: INC-2 6m = 360 s, INC-3 60m = 3600 s (its first response is the person's
    # resolve), INC-4 30m = 1800 s; INC-5 has none. Sorted 360, 1800, 3600: median
    # 1800; p90 by nearest rank: rank ceil(0.9 * 3) = 3, 3600. October: 20m = 1200 s.
    assert t["mtta_s"]["median"] == fig(1800, 1200, 600)
    assert t["mtta_s"]["p90"] == fig(3600, 1200, 2400)
    assert t["mtta_s"]["count"] == fig(3, 1, 2)
    # MTTR: INC-2 25m = 1500 s, INC-3 60m = 3600 s, INC-4 3h = 10800 s. Median 3600,
    # p90 10800. October: 2h = 7200 s.
    assert t["mttr_s"]["median"] == fig(3600, 7200, -3600)
    assert t["mttr_s"]["p90"] == fig(10800, 7200, 3600)

    (api,) = doc["services"]
    assert api["service"] == "api"
    assert api["by_priority"]["P1"] == fig(2, 1, 1)
    assert api["by_priority"]["P3"] == fig(2, 0, 2)
    # P1 respond (15m): INC-2 met (6m), INC-3 breached (answered at 60m); October
    # INC-1 breached (20m). Resolve (4h): both met; October met.
    p1 = api["sla"]["P1"]
    assert p1["respond"]["met"] == fig(1, 0, 1)
    assert p1["respond"]["breached"] == fig(1, 1, 0)
    assert p1["respond"]["not_needed"] == fig(0, 0, 0)
    assert p1["resolve"]["met"] == fig(2, 1, 1)
    # P3 respond (1h): INC-4 met (30m); INC-5 breached (due 00:00, now 01:00).
    # Resolve (1d): INC-4 met, INC-5 pending (due 2026-12-01 23:00).
    p3 = api["sla"]["P3"]
    assert p3["respond"]["met"]["value"] == 1
    assert p3["respond"]["breached"]["value"] == 1
    assert p3["resolve"]["met"]["value"] == 1
    assert p3["resolve"]["pending"]["value"] == 1

    # Availability: November is 30 days = 2,592,000 s, all measured, 3h = 10,800 s
    # down: 2,581,200 / 2,592,000 = 0.9958333...; the budget of 99.9 % is 0.1 % of
    # the period, 2,592 s: 10,800 / 2,592 = 4.1666... budgets used. October: nothing
    # measured.
    avail = api["availability"]
    assert avail["ratio"]["value"] == pytest.approx(2_581_200 / 2_592_000)
    assert avail["ratio"]["previous"] is None
    assert avail["coverage"]["value"] == pytest.approx(1.0)
    assert avail["error_budget_used"]["value"] == pytest.approx(10_800 / 2_592)
    assert avail["downtime_s"]["value"] == pytest.approx(10_800)
    assert avail["meets_slo"] is False

    rules = {r["rule"]: r for r in doc["rules"]}
    paging, tickets, unused = rules["paging"], rules["tickets"], rules["unused"]
    assert paging["alerts"] == fig(3, 1, 2)
    assert paging["incidents"] == fig(2, 1, 1)
    assert paging["alerts_per_incident"] == fig(1.5, 1.0, 0.5)
    # INC-2 ended by its hold; INC-3's last resolution was a person's: 1 of 2.
    assert paging["auto_resolved"] == fig(0.5, 0.0, 0.5)
    assert paging["reopened"] == fig(0.5, 0.0, 0.5)  # INC-3
    assert tickets["alerts"] == fig(3, 0, 3)
    assert tickets["auto_resolved"]["value"] == 0.0
    assert unused["alerts"] == fig(0, 0, 0)
    assert doc["unmatched_rules"] == ["unused"]

    noisy = [(n["alertname"], n["alerts"]["value"], n["share"]) for n in doc["noisy_alertnames"]]
    assert noisy == [("Down", 3, 0.5), ("DiskFull", 2, pytest.approx(2 / 6)), ("Slow", 1, 1 / 6)]

    # November 2026 starts on a Sunday: weeks from Mondays, cut at the period's ends.
    weeks = [(w["week"], w["incidents"]) for w in doc["weeks"]]
    assert weeks == [
        ("2026-W44", 0),
        ("2026-W45", 1),
        ("2026-W46", 1),
        ("2026-W47", 1),
        ("2026-W48", 0),
        ("2026-W49", 1),
    ]

    kinds = {(s["kind"], s["subject"]) for s in doc["suggestions"]}
    assert kinds == {
        ("rule_never_matched", "unused"),
        ("rule_reopens", "paging"),
        ("below_slo", "api"),
    }


async def test_the_review_agrees_with_the_availability_endpoint(make_client: MakeClient) -> None:
    client = await history(make_client)
    now = client.clock.now
    start = (now - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    end = now.isoformat().replace("+00:00", "Z")
    doc = await client.get_json(REVIEW, {"from": start, "to": end, "service": "api"})
    levels = await client.get_json("/api/v1/availability")
    (level,) = [s for s in levels["services"] if s["service"] == "api"]
    avail = doc["services"][0]["availability"]
    assert avail["ratio"]["value"] == pytest.approx(level["availability"]["30d"])
    assert avail["coverage"]["value"] == pytest.approx(level["coverage"]["30d"])
    assert avail["error_budget_used"]["value"] == pytest.approx(1 - level["error_budget_left"])


async def test_a_month_with_a_clock_change_counts_its_hours_in_its_time_zone(
    make_client: MakeClient,
) -> None:
    clock = FakeClock(at("2026-09-30 22:30"))  # 00:30 on October 1st in Berlin
    client = await make_client(RULES, clock=clock, sla=SLA)
    await client.webhook(alert("Down", severity="critical", service="api", starts_at=clock.now))
    clock.now = at("2026-10-31 23:30")  # 00:30 on November 1st in Berlin
    await client.webhook(alert("Slow", severity="warning", service="api", starts_at=clock.now))
    clock.now = at("2026-11-02 00:00")

    berlin = await client.get_json(
        REVIEW, {"from": "2026-10-01", "to": "2026-11-01", "tz": "Europe/Berlin"}
    )
    p = berlin["period"]
    assert (p["from"], p["to"]) == ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z")
    # October has 31 days, and in Berlin one hour more: winter time from the 25th.
    assert (p["days"], p["hours"]) == (31, 745)
    assert berlin["totals"]["incidents"]["value"] == 1  # INC-1 only
    assert sum(w["days"] for w in berlin["weeks"]) == 31

    utc = await client.get_json(REVIEW, {"from": "2026-10-01", "to": "2026-11-01"})
    assert (utc["period"]["days"], utc["period"]["hours"]) == (31, 744)
    assert utc["totals"]["incidents"]["value"] == 1  # INC-2 only
    assert utc["rules"][1]["incidents"]["value"] == 1  # tickets


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"to": "2026-12-01"}, "from: required"),
        ({"from": "2026-11-01"}, "to: required"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "from: must be before to"),
        ({"from": "2026-11-01", "to": "2026-11-01"}, "from: must be before to"),
        ({"from": "November", "to": "2026-12-01"}, "from: expected a date"),
        ({"from": "2026-11-01", "to": "2026-12-01", "tz": "Mars/Olympus"}, "tz: unknown"),
        ({"from": "2026-11-01", "to": "2026-12-01", "service": "nope"}, "service: no service"),
        ({"from": "2026-11-01", "to": "2026-12-01", "format": "pdf"}, "format: expected"),
        ({"from": "2024-01-01", "to": "2026-12-01"}, "to: a period is at most 400 days"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    make_client: MakeClient, params: dict[str, str], error: str
) -> None:
    client = await make_client(RULES)
    resp = await client.get(REVIEW, params=params)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(error)


async def test_the_review_as_markdown_and_html(make_client: MakeClient) -> None:
    client = await history(make_client)
    params = {"from": "2026-11-01", "to": "2026-12-01"}
    resp = await client.get(REVIEW, params={**params, "format": "md"})
    assert resp.status == 200
    assert resp.content_type == "text/markdown"
    text = await resp.text()
    assert text.startswith("# Service review: 2026-11-01 to 2026-12-01\n")
    assert "| MTTA median | 30m 0s | 20m 0s | +10m 0s |" in text
    assert "Rule unused matched no alert in the period" in text
    resp = await client.get(REVIEW, params={**params, "format": "html"})
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") >= 3  # weeks, trend, availability (and compression)
    assert "<script" not in page


async def test_the_post_incident_review_has_every_fact_and_empty_sections(
    make_client: MakeClient,
) -> None:
    client = await history(make_client)
    doc = await client.get_json("/api/v1/reports/incidents/INC-3")
    assert doc["incident"]["id"] == "INC-3"
    # From the first alert's start to the last one's end: the second still fires.
    assert doc["impact"] == {
        "from": "2026-11-09T10:00:00Z",
        "to": None,
        "duration_s": None,
        "ongoing": True,
    }
    assert doc["services"] == ["api"]
    assert [a["startsAt"] for a in doc["alerts"]] == [
        "2026-11-09T10:00:00Z",
        "2026-11-09T10:40:00Z",
    ]
    assert doc["common_labels"] == {"alertname": "Down", "service": "api", "severity": "critical"}
    assert [a["labels"] for a in doc["alerts"]] == [{}, {"pod": "b"}]
    kinds = [e["kind"] for e in doc["timeline"]]
    assert kinds[0] == "opened"
    assert {"auto_resolved", "reopened", "resolved"} <= set(kinds)
    people = [e for e in doc["timeline"] if e["by_person"]]
    assert [e["kind"] for e in people] == ["resolved"]
    assert doc["sla"]["respond"]["verdict"] == "breached"
    assert doc["sla"]["resolve"]["verdict"] == "met"
    assert doc["sections"] == {
        "root_cause": "",
        "what_went_well": "",
        "what_did_not": "",
        "follow_ups": [],
    }
    resp = await client.get("/api/v1/reports/incidents/INC-3", params={"format": "md"})
    text = await resp.text()
    assert text.startswith("# Post-incident review: INC-3 ")
    for section in ("## Timeline", "## Root cause", "## Follow-up actions", "## Alerts"):
        assert section in text
    assert '`{pod="b"}`' in text
    # Times for a reader, to the second (the JSON keeps them exact).
    assert "- **Impact window**: 2026-11-09 10:00:00 UTC to ongoing" in text
    assert "| 2026-11-09 10:40:00 UTC | firing |" in text


@pytest.mark.parametrize("ref", ["INC-99", "INC-x", "PRB-1"])
async def test_an_unknown_incident_is_404(make_client: MakeClient, ref: str) -> None:
    client = await make_client(RULES)
    resp = await client.get(f"/api/v1/reports/incidents/{ref}")
    assert resp.status == 404
