"""Correlation seen through the API (docs/rules.md), with the app's clock under test control."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from tests.api.api_support import (
    T0,
    ApiClient,
    MakeClient,
    alert,
    by_kind,
    capture,
    raw_body,
    resolved,
)

MINUTE = timedelta(minutes=1)


def _rules(**policy: str) -> str:
    """One catch-all rule grouping by service, with the given timing policy."""
    lines = "".join(f"    {key}: {value}\n" for key, value in policy.items())
    return "incidents:\n  - name: svc\n    match: '{}'\n    group_by: [service]\n" + lines


async def _only(client: ApiClient, **filters: str) -> dict[str, Any]:
    (inc,) = await client.incidents(**filters)
    return await client.incident(inc["id"])


async def test_alerts_with_the_same_group_by_values_share_one_incident(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        "incidents:\n"
        "  - name: outage\n"
        "    match: '{severity=\"critical\"}'\n"
        "    group_by: [service, env]\n"
    )
    await client.webhook(
        alert("Down", service="api", env="prod", instance="a", severity="critical"),
        alert("Down", service="api", env="dev", instance="a", severity="critical"),
    )
    client.clock.advance(MINUTE)
    await client.webhook(  # another request, another alertname: same key, same incident
        alert("Slow", service="api", env="prod", instance="b", severity="critical"),
        alert("Down", service="db", env="prod", instance="c", severity="critical"),
    )

    incidents = {i["key"]: i for i in await client.incidents()}
    assert set(incidents) == {
        'outage{service="api", env="prod"}',
        'outage{service="api", env="dev"}',
        'outage{service="db", env="prod"}',
    }
    prod = incidents['outage{service="api", env="prod"}']
    assert prod["alert_count"] == 2
    assert prod["labels"] == {"service": "api", "env": "prod"}
    names = {a["labels"]["alertname"] for a in (await client.incident(prod["id"]))["alerts"]}
    assert names == {"Down", "Slow"}
    assert [i["alert_count"] for i in incidents.values()].count(1) == 2


async def test_each_alert_says_which_rule_key_and_why(make_client: MakeClient) -> None:
    client = await make_client(_rules())
    await client.webhook(alert("Down", service="api", instance="a"))
    await client.webhook(alert("Down", service="api", instance="b"))

    detail = await _only(client)
    first, second = detail["alerts"]
    key = 'svc{service="api"}'
    for shown in (first, second):
        assert (shown["decision"]["rule"], shown["decision"]["key"]) == ("svc", key)
        assert "svc" in shown["decision"]["reason"]
        assert key in shown["decision"]["reason"]
    assert first["decision"]["action"] == "opened"
    assert "opened" in first["decision"]["reason"]
    assert second["decision"]["action"] == "joined"
    assert detail["id"] in second["decision"]["reason"]
    opened = by_kind(detail["timeline"], "opened")
    assert len(opened) == 1
    assert "svc" in opened[0]["message"]
    assert len(by_kind(detail["timeline"], "alert_joined")) == 2


async def test_first_matching_rule_wins(make_client: MakeClient) -> None:
    client = await make_client(
        "incidents:\n"
        "  - name: database\n"
        "    match: '{service=\"db\"}'\n"
        "  - name: critical\n"
        "    match: '{severity=\"critical\"}'\n"
        "  - name: rest\n"
        "    match: '{}'\n"
    )
    await client.webhook(
        alert("Down", service="db", severity="critical"),  # database and critical match
        alert("Down", service="api", severity="critical", instance="x"),
        alert("Down", service="web", severity="info", instance="y"),
    )

    rules = {i["service"]: i["rule"] for i in await client.incidents()}
    assert rules == {"db": "database", "api": "critical", "web": "rest"}
    detail = await _only(client, service="db")
    assert detail["alerts"][0]["decision"]["rule"] == "database"


PRIORITY_RULES = """\
incidents:
  - name: fixed
    match: '{team="fixed"}'
    group_by: [case]
    impact: low
    priority: P2
  - name: matrix
    match: '{}'
    group_by: [case]
    impact: '{{ labels.impact }}'
"""


MATRIX = [  # impact, severity, expected urgency, expected priority
    ("high", "critical", "high", "P1"),
    ("high", "warning", "medium", "P2"),
    ("medium", "critical", "high", "P2"),
    ("high", "info", "low", "P3"),
    ("medium", "warning", "medium", "P3"),
    ("low", "critical", "high", "P3"),
    ("medium", "info", "low", "P4"),
    ("low", "warning", "medium", "P4"),
    ("low", "none", "low", "P5"),
]


async def test_priority_is_impact_times_urgency(make_client: MakeClient) -> None:
    client = await make_client(PRIORITY_RULES)
    await client.webhook(
        *(alert("X", case=str(n), impact=i, severity=s) for n, (i, s, _, _) in enumerate(MATRIX)),
        alert("X", case="fixed", team="fixed", severity="info"),
    )

    incidents = {i["labels"]["case"]: i for i in await client.incidents()}
    for n, (impact, _, urgency, priority) in enumerate(MATRIX):
        inc = incidents[str(n)]
        assert (inc["impact"], inc["urgency"], inc["priority"]) == (impact, urgency, priority)
    fixed = incidents["fixed"]
    assert (fixed["rule"], fixed["impact"], fixed["priority"]) == ("fixed", "low", "P2")


async def test_title_description_and_assignee_are_rendered_from_the_alert(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        "incidents:\n"
        "  - name: outage\n"
        "    match: '{}'\n"
        "    group_by: [service, env]\n"
        "    title: '{{ labels.service }} failing in {{ labels.env }}'\n"
        "    description: '{{ annotations.summary }}'\n"
        "    assignee: 'team-{{ labels.service }}'\n"
    )
    await client.ingest("/api/v1/webhooks/alertmanager", raw_body("firing-single.json"))

    (inc,) = await client.incidents()
    summary = capture("firing-single.json")["body"]["alerts"][0]["annotations"]["summary"]
    assert inc["title"] == "checkout failing in prod"
    assert inc["description"] == summary
    assert inc["assignee"] == "team-checkout"


# ---- window: an incident takes alerts of its key while any fires and `window` after


@pytest.mark.parametrize(
    ("quiet", "same_incident"),
    [(timedelta(minutes=10), True), (timedelta(minutes=10, seconds=1), False)],
    ids=["at-the-window-edge", "after-the-window"],
)
async def test_window_after_the_last_resolve(
    make_client: MakeClient, quiet: timedelta, same_incident: bool
) -> None:
    client = await make_client(_rules(window="10m", auto_resolve="never"))
    first = alert("Down", service="api", instance="a")
    await client.webhook(first)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(quiet)

    later = alert("Down", service="api", instance="b", starts_at=client.clock.now)
    result = await client.webhook(later)

    incidents = await client.incidents()
    old = await client.incident("INC-1")
    if same_incident:
        assert result["incidents"] == ["INC-1"]
        assert len(incidents) == 1
        assert old["alert_count"] == 2
        assert "window 10m" in old["alerts"][1]["decision"]["reason"]
        assert old["takes_alerts"] is True
    else:
        assert result["incidents"] == ["INC-2"]
        assert [i["id"] for i in incidents] == ["INC-2", "INC-1"]
        assert old["alert_count"] == 1
        assert old["status"] == "open", "the old incident stays open for humans"
        assert old["takes_alerts"] is False
        (closed,) = by_kind(old["timeline"], "closed_to_alerts")
        assert "takes no more alerts" in closed["message"]
        new = await client.incident("INC-2")
        assert new["key"] == old["key"]
        assert "takes no more alerts" in new["alerts"][0]["decision"]["reason"]


async def test_while_any_alert_fires_the_window_does_not_run(make_client: MakeClient) -> None:
    client = await make_client(_rules(window="10m", auto_resolve="never"))
    await client.webhook(alert("Down", service="api", instance="a"))
    client.clock.advance(timedelta(hours=3))

    await client.webhook(alert("Down", service="api", instance="b", starts_at=client.clock.now))

    (inc,) = await client.incidents()
    assert inc["alert_count"] == 2


# ---- auto_resolve: a hold after the last alert resolved


async def test_auto_resolve_after_the_hold(make_client: MakeClient) -> None:
    client = await make_client(_rules(auto_resolve="5m"))
    a = alert("Down", service="api", instance="a")
    b = alert("Down", service="api", instance="b")
    await client.webhook(a, b)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(a, client.clock.now), b)
    assert (await _only(client))["auto_resolve_at"] is None, "b still fires: no hold"

    client.clock.advance(MINUTE)
    all_clear = client.clock.now
    await client.webhook(resolved(b, all_clear))

    detail = await _only(client)
    assert detail["status"] == "open"
    assert detail["auto_resolve_at"] == "2026-11-28T03:07:00Z"
    (hold,) = by_kind(detail["timeline"], "hold_started")
    assert "5m" in hold["message"]

    client.clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    assert await client.sweep() == 0
    assert (await _only(client))["status"] == "open"

    client.clock.advance(timedelta(seconds=2))
    assert await client.sweep() == 1

    detail = await _only(client)
    assert detail["status"] == "resolved"
    assert detail["resolved_at"] == "2026-11-28T03:07:00Z", "resolved at the end of the hold"
    assert detail["auto_resolve_at"] is None
    (done,) = by_kind(detail["timeline"], "auto_resolved")
    assert "5m" in done["message"]
    assert await client.metric("itsmd_incidents_resolved_total", how="auto") == 1
    assert await client.sweep() == 0, "resolved once"


async def test_a_firing_alert_within_the_hold_cancels_it(make_client: MakeClient) -> None:
    client = await make_client(_rules(auto_resolve="5m"))
    a = alert("Down", service="api", instance="a")
    await client.webhook(a)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(a, client.clock.now))
    client.clock.advance(timedelta(minutes=3))

    await client.webhook(alert("Down", service="api", instance="a", starts_at=client.clock.now))

    detail = await _only(client)
    assert detail["auto_resolve_at"] is None
    assert (detail["alert_count"], detail["firing_count"]) == (2, 1)
    assert len(by_kind(detail["timeline"], "hold_cancelled")) == 1
    client.clock.advance(timedelta(hours=1))
    assert await client.sweep() == 0
    assert (await _only(client))["status"] == "open"


async def test_hold_of_a_manually_resolved_or_acknowledged_incident(
    make_client: MakeClient,
) -> None:
    client = await make_client(_rules(auto_resolve="5m"))
    api, db = alert("Down", service="api"), alert("Down", service="db")
    await client.webhook(api, db)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(api, client.clock.now), resolved(db, client.clock.now))
    assert (await client.act("INC-1", "resolve")).status == 200  # a human was faster
    assert (await client.act("INC-2", "ack")).status == 200
    client.clock.advance(timedelta(minutes=6))

    assert await client.sweep() == 1

    manual, acked = await client.incident("INC-1"), await client.incident("INC-2")
    assert manual["resolved_at"] == "2026-11-28T03:01:00Z"
    assert by_kind(manual["timeline"], "auto_resolved") == []
    assert (acked["status"], acked["resolved_at"]) == ("resolved", "2026-11-28T03:06:00Z")
    assert acked["acknowledged_at"] == "2026-11-28T03:01:00Z"
    assert await client.metric("itsmd_incidents_resolved_total", how="auto") == 1
    assert await client.metric("itsmd_incidents_resolved_total", how="manual") == 1


async def test_auto_resolve_0s_resolves_at_once(make_client: MakeClient) -> None:
    client = await make_client(_rules(auto_resolve="0s"))
    a = alert("Down", service="api")
    await client.webhook(a)
    client.clock.advance(MINUTE)

    await client.webhook(resolved(a, client.clock.now))

    detail = await _only(client)
    assert detail["status"] == "resolved"
    assert detail["resolved_at"] == "2026-11-28T03:01:00Z"
    assert len(by_kind(detail["timeline"], "auto_resolved")) == 1
    assert await client.metric("itsmd_incidents_resolved_total", how="auto") == 1


async def test_auto_resolve_never_waits_for_a_human(make_client: MakeClient) -> None:
    client = await make_client(_rules(auto_resolve="never"))
    a = alert("Down", service="api")
    await client.webhook(a)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(a, client.clock.now))
    client.clock.advance(timedelta(days=30))

    assert await client.sweep() == 0

    detail = await _only(client)
    assert detail["status"] == "open"
    assert detail["auto_resolve_at"] is None
    (hold,) = by_kind(detail["timeline"], "hold_started")
    assert "never" in hold["message"]
    assert by_kind(detail["timeline"], "auto_resolved") == []


# ---- reopen: a matching alert soon after resolution reopens the incident


async def test_reopen_within_the_span_and_a_new_incident_after_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(_rules(auto_resolve="0s", reopen="1h"))
    first = alert("Down", service="api", instance="a")
    await client.webhook(first)
    client.clock.advance(MINUTE)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(timedelta(minutes=30))

    again = alert("Down", service="api", instance="a", starts_at=client.clock.now)
    result = await client.webhook(again)

    assert result["incidents"] == ["INC-1"]
    detail = await client.incident("INC-1")
    assert (detail["status"], detail["resolved_at"]) == ("open", None)
    assert detail["alert_count"] == 2
    assert detail["alerts"][1]["decision"]["action"] == "reopened"
    (reopened,) = by_kind(detail["timeline"], "reopened")
    assert "1h" in reopened["message"]
    assert await client.metric("itsmd_incidents_reopened_total") == 1

    client.clock.advance(MINUTE)
    await client.webhook(resolved(again, client.clock.now))
    assert (await client.incident("INC-1"))["status"] == "resolved"
    client.clock.advance(timedelta(hours=1, seconds=1))

    result = await client.webhook(
        alert("Down", service="api", instance="a", starts_at=client.clock.now)
    )

    assert result["incidents"] == ["INC-2"]
    old = await client.incident("INC-1")
    assert old["status"] == "resolved"
    assert old["alert_count"] == 2
    (closed,) = by_kind(old["timeline"], "closed_to_alerts")
    assert "takes no more alerts" in closed["message"]
    new = await client.incident("INC-2")
    assert (new["status"], new["alert_count"], new["key"]) == ("open", 1, old["key"])


async def test_without_reopen_a_resolved_incident_is_not_reopened(
    make_client: MakeClient,
) -> None:
    client = await make_client(_rules(auto_resolve="0s"))
    first = alert("Down", service="api")
    await client.webhook(first)
    await client.webhook(resolved(first, T0 + MINUTE))
    client.clock.advance(timedelta(seconds=30))

    result = await client.webhook(alert("Down", service="api", starts_at=client.clock.now))

    assert result["incidents"] == ["INC-2"]
    assert (await client.incident("INC-1"))["status"] == "resolved"


async def test_an_episode_that_fires_again_after_its_incident_resolved_keeps_the_history(
    make_client: MakeClient,
) -> None:
    """Prometheus re-sends an active alert with its original startsAt; when Alertmanager
    resolved it meanwhile (no re-send before its endsAt, e.g. a network partition), the
    same episode fires again. Each incident must still list every alert it counts."""
    client = await make_client(_rules(auto_resolve="0s"))
    episode = alert("Down", service="api")
    await client.webhook(episode)
    client.clock.advance(timedelta(minutes=6))
    await client.webhook(resolved(episode, client.clock.now))
    assert (await client.incident("INC-1"))["status"] == "resolved"
    client.clock.advance(MINUTE)

    await client.webhook(episode)  # the same startsAt, firing again

    assert len(await client.stored_alerts()) == 1
    firing = []
    for inc in await client.incidents():
        detail = await client.incident(inc["id"])
        assert detail["alert_count"] == len(detail["alerts"]), detail["id"]
        firing += [a for a in detail["alerts"] if a["status"] == "firing"]
    assert len(firing) == 1


async def test_an_alert_after_a_human_resolved_the_incident_does_not_join_it(
    make_client: MakeClient,
) -> None:
    """The writer keeps current incidents in memory between batches (SQLite); an
    action in between must be seen by the next batch."""
    client = await make_client(_rules())
    await client.webhook(alert("Down", service="api", instance="a"))
    assert (await client.act("INC-1", "resolve")).status == 200
    client.clock.advance(MINUTE)

    result = await client.webhook(alert("Down", service="api", instance="b"))

    assert result["incidents"] == ["INC-2"]
    assert (await client.incident("INC-1"))["alert_count"] == 1


async def test_an_alert_after_the_sweep_resolved_the_incident_does_not_join_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(_rules(auto_resolve="5m", window="1h"))
    first = alert("Down", service="api", instance="a")
    await client.webhook(first)
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(timedelta(minutes=6))
    assert await client.sweep() == 1

    result = await client.webhook(alert("Down", service="api", instance="b"))

    assert result["incidents"] == ["INC-2"]
    assert (await client.incident("INC-1"))["status"] == "resolved"


async def test_a_known_error_attaches_its_workaround(make_client: MakeClient) -> None:
    rules = _rules() + (
        "known_errors:\n"
        "  - name: disk\n"
        "    match: '{alertname=\"DiskFull\"}'\n"
        "    workaround: 'Rotate logs on {{ labels.instance }}'\n"
    )
    client = await make_client(rules)
    await client.webhook(alert("Down", service="db"))
    assert (await client.incident("INC-1"))["known_error"] is None

    await client.webhook(alert("DiskFull", service="db", instance="db-1"))

    detail = await client.incident("INC-1")
    assert detail["known_error"] == "Rotate logs on db-1"
    (entry,) = by_kind(detail["timeline"], "known_error")
    assert "known error disk matches alert DiskFull" in entry["message"]


async def test_a_maintenance_window_suppresses_until_it_ends(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    start, end = (T0 + MINUTE, T0 + 30 * MINUTE)
    rules = _rules() + (
        "maintenance:\n"
        "  - name: db-upgrade\n"
        "    match: '{service=\"db\"}'\n"
        f"    start: {start.isoformat()}\n"
        f"    end: {end.isoformat()}\n"
        "    change: CHG-7\n"
    )
    caplog.set_level(logging.INFO, logger="itsmd.runtime.writer")
    client = await make_client(rules)
    client.clock.advance(2 * MINUTE)

    result = await client.webhook(alert("Down", service="db", starts_at=client.clock.now))

    assert (result["new"], result["incidents"]) == (1, [])
    assert await client.incidents() == []
    assert await client.metric("itsmd_alerts_suppressed_total", window="db-upgrade") == 1
    (row,) = await client.stored_alerts()
    assert "change CHG-7" in row["reason"]

    client.clock.advance(10 * MINUTE)
    await client.sweep()
    assert await client.incidents() == []  # still on
    client.clock.now = end
    await client.sweep()

    (inc,) = await client.incidents()
    detail = await client.incident(inc["id"])
    assert detail["alerts"][0]["decision"]["reason"].startswith(
        "suppressed by maintenance window db-upgrade (suppress, change CHG-7) until it ended; "
    )
    # The next batch sees the incident the sweep opened (not a stale in-memory state).
    later = await client.webhook(alert("Down", service="db", instance="b"))
    assert later["incidents"] == [inc["id"]]
    assert "conflicted" not in caplog.text  # found at once, not after a failed insert


async def test_a_symptom_joins_the_incident_of_its_upstream_service(
    make_client: MakeClient,
) -> None:
    rules = (
        _rules()
        + "    attach_to_upstream: true\n"
        + "services:\n"
        + "  - {name: checkout, depends_on: [payments]}\n"
        + "  - {name: payments, depends_on: [postgres]}\n"
        + "  - {name: postgres}\n"
    )
    client = await make_client(rules)
    await client.webhook(alert("Down", service="postgres"))

    result = await client.webhook(alert("Slow", service="checkout"))

    assert result["incidents"] == ["INC-1"]
    detail = await client.incident("INC-1")
    assert detail["alert_count"] == 2
    symptom = next(a for a in detail["alerts"] if a["labels"]["service"] == "checkout")
    assert symptom["decision"]["action"] == "attached"
    (entry,) = by_kind(detail["timeline"], "symptom_attached")
    assert "upstream service postgres of checkout" in entry["message"]


async def test_an_incident_of_a_rule_removed_by_a_reload_keeps_its_policy(
    make_client: MakeClient,
) -> None:
    client = await make_client(_rules(auto_resolve="0s"))
    down = alert("Down", service="api")
    await client.webhook(down)

    resp = await client.post("/-/reload")  # this app's rule files: none, so no rules at all
    assert resp.status == 200, await resp.text()
    assert len(client.runtime.rules) == 0
    client.clock.advance(MINUTE)
    await client.webhook(resolved(down, client.clock.now))

    detail = await client.incident("INC-1")
    assert detail["status"] == "resolved"  # auto_resolve 0s, kept by the incident
    assert by_kind(detail["timeline"], "auto_resolved")


async def test_a_service_label_longer_than_its_column_still_opens_an_incident(
    make_client: MakeClient,
) -> None:
    """The incident's service is kept to 200 characters (PostgreSQL refused the row);
    the alert keeps the whole label."""
    client = await make_client(
        "incidents:\n  - name: all\n    match: '{}'\n    group_by: [service]\n"
    )
    long = "s" * 300
    result = await client.webhook(alert("Down", service=long))
    (inc,) = await client.incidents()
    assert result["incidents"] == [inc["id"]]
    assert inc["service"] == long[:200]
    (stored,) = await client.stored_alerts()
    assert stored["labels"]["service"] == long
