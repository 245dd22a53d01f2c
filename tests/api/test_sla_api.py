"""The SLA clock: missed targets are marked once, on the timeline, in the metrics and
to the routes that ask for `sla_breached`; MTTA and MTTR (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert, update

from itsmd.config import parse_config
from itsmd.correlation.sla import SlaTarget, summarize
from itsmd.models import IncidentStatus, Level, Priority
from itsmd.runtime.housekeeping import mark_sla_breaches
from itsmd.store import repo, slaclock
from itsmd.store.engine import Database
from itsmd.store.tables import incidents
from tests.api.api_support import ApiClient, MakeClient, alert, resolved, stored_incident
from tests.conftest import async_wait_until
from tests.connectors.fakes_http import Answer, FakePeer, running_peer

RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
    auto_resolve: 0s
  - name: rest
    match: '{}'
    group_by: [service]
    priority: P4
"""
SLA = {Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=1))}


async def clock_tick(client: ApiClient) -> int:
    return await mark_sla_breaches(client.runtime)


async def breaches(client: ApiClient, ref: str) -> list[str]:
    detail = await client.incident(ref)
    return [e["message"] for e in detail["timeline"] if e["kind"] == "sla_breached"]


async def test_a_missed_respond_target_is_marked_once(make_client: MakeClient) -> None:
    client = await make_client(RULES, sla=SLA)
    await client.webhook(
        alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    )
    client.clock.advance(timedelta(minutes=14))
    assert await clock_tick(client) == 0
    client.clock.advance(timedelta(minutes=2))
    assert await clock_tick(client) == 1
    assert await clock_tick(client) == 0
    (message,) = await breaches(client, "INC-1")
    assert message.startswith(
        "SLA respond target missed: P1 incidents are to be acknowledged within 15m, due "
    )
    inc = await client.incident("INC-1")
    assert inc["sla"]["respond_breached"] is True
    assert inc["sla"]["resolve_breached"] is False
    assert await client.metric("itsmd_sla_breaches_total", priority="P1", kind="respond") == 1

    assert (await client.act("INC-1", "ack")).status == 200  # late: nothing new
    client.clock.advance(timedelta(hours=1))
    assert await clock_tick(client) == 1  # the resolve target now
    assert await clock_tick(client) == 0
    assert len(await breaches(client, "INC-1")) == 2
    assert await client.metric("itsmd_sla_breaches_total", priority="P1", kind="resolve") == 1


async def test_targets_met_in_time_or_without_targets_are_never_marked(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES, sla=SLA)
    firing = alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    await client.webhook(firing)
    await client.webhook(alert("Slow", service="db", starts_at=client.clock.now))  # P4
    client.clock.advance(timedelta(minutes=10))
    assert (await client.act("INC-1", "ack")).status == 200
    client.clock.advance(timedelta(minutes=30))
    await client.webhook(resolved(firing, client.clock.now))  # resolves (auto_resolve 0s)
    client.clock.advance(timedelta(days=2))
    assert await clock_tick(client) == 0
    assert (await client.incident("INC-1"))["status"] == "resolved"
    assert await breaches(client, "INC-1") == []
    assert await breaches(client, "INC-2") == []


async def test_a_resolution_before_the_respond_due_time_also_answers_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES, sla=SLA)
    await client.webhook(
        alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    )
    client.clock.advance(timedelta(minutes=5))
    assert (await client.act("INC-1", "resolve")).status == 200
    client.clock.advance(timedelta(hours=2))
    assert await clock_tick(client) == 0


async def test_a_raised_priority_moves_the_due_times_and_the_clock_follows(
    make_client: MakeClient,
) -> None:
    rules = "incidents:\n  - {name: auto, match: '{}', group_by: [service], impact: high}\n"
    sla = {
        Priority.P2: SlaTarget(respond=timedelta(hours=1), resolve=None),
        Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=None),
    }
    client = await make_client(rules, sla=sla)
    await client.webhook(
        alert("Slow", severity="warning", service="api", starts_at=client.clock.now)
    )
    assert (await client.incident("INC-1"))["priority"] == "P2"
    client.clock.advance(timedelta(minutes=20))
    assert await clock_tick(client) == 0  # P2: an hour to respond
    await client.webhook(
        alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    )
    inc = await client.incident("INC-1")
    assert inc["priority"] == "P1"
    raised = [e["message"] for e in inc["timeline"] if e["kind"] == "priority_raised"]
    assert len(raised) == 1
    assert raised[0].startswith("priority P2 -> P1: ")
    assert await clock_tick(client) == 1  # P1 was due 15 minutes after the opening
    (message,) = await breaches(client, "INC-1")
    assert "P1 incidents are to be acknowledged within 15m" in message


async def test_targets_in_business_hours_wait_for_the_next_working_day(
    make_client: MakeClient,
) -> None:
    from datetime import UTC, datetime

    from tests.api.api_support import FakeClock

    text = """\
sla:
  business_hours: {timezone: UTC, days: [mon-fri], hours: "09:00-17:00"}
  P1: {respond: 2h, business_hours: true}
"""
    sla = parse_config(text, "itsmd.yml", {}).sla
    friday = FakeClock(datetime(2026, 11, 27, 16, 0, tzinfo=UTC))
    client = await make_client(RULES, sla=sla, clock=friday)
    await client.webhook(alert("Down", severity="critical", service="api", starts_at=friday.now))
    inc = await client.incident("INC-1")
    assert inc["sla"]["respond_due"] == "2026-11-30T10:00:00Z"  # 1 h Friday, 1 h Monday
    friday.advance(timedelta(days=2, hours=17, minutes=59))  # Monday 09:59
    assert await clock_tick(client) == 0
    friday.advance(timedelta(hours=1, minutes=2))
    assert await clock_tick(client) == 1
    (message,) = await breaches(client, "INC-1")
    assert "acknowledged within 2h of business hours, due 2026-11-30T10:00:00Z" in message


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(Answer(200, "ok")) as p:
        yield p


async def test_breaches_notify_the_routes_that_ask_for_them(
    make_client: MakeClient, peer: FakePeer
) -> None:
    text = f"""\
connectors:
  sinks:
    hook: {{type: webhook, url: "{peer.url("/")}"}}
routes:
  - {{name: breaches, events: [sla_breached], to: [hook]}}
"""
    connectors = parse_config(text, "itsmd.yml", {}).connectors
    client = await make_client(RULES, sla=SLA, connectors=connectors)
    await client.webhook(
        alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    )
    client.clock.advance(timedelta(minutes=20))
    await clock_tick(client)
    await async_wait_until(lambda: peer.seen, what="the sla_breached event")
    (seen,) = peer.seen
    body = seen.json()
    assert body["event"] == "sla_breached"
    assert body["incident"]["sla"]["respond_breached"] is True


async def test_only_targets_still_unmet_and_recently_passed_are_announced(
    make_client: MakeClient, peer: FakePeer
) -> None:
    text = f"""\
connectors:
  sinks:
    hook: {{type: webhook, url: "{peer.url("/")}"}}
routes:
  - {{name: breaches, events: [sla_breached], to: [hook]}}
"""
    connectors = parse_config(text, "itsmd.yml", {}).connectors
    client = await make_client(RULES, sla=SLA, connectors=connectors)
    for service in ("api", "db"):
        await client.webhook(
            alert("Down", severity="critical", service=service, starts_at=client.clock.now)
        )
    client.clock.advance(timedelta(minutes=20))
    assert (await client.act("INC-1", "ack")).status == 200  # late, before the clock ticked
    assert await clock_tick(client) == 2
    # Both resolve targets passed two hours before the next tick (a daemon stopped).
    client.clock.advance(timedelta(hours=3))
    assert await clock_tick(client) == 2

    assert len(await breaches(client, "INC-1")) == 2  # on the timeline all the same
    assert len(await breaches(client, "INC-2")) == 2
    body = await client.get_json("/api/v1/notifications", {})
    announced = [(n["subject"], n["event"]) for n in body["notifications"]]
    assert announced == [("INC-2", "sla_breached")]


async def test_time_to_acknowledge_and_to_resolve_are_histograms(make_client: MakeClient) -> None:
    client = await make_client(RULES, sla=SLA)
    firing = alert("Down", severity="critical", service="api", starts_at=client.clock.now)
    await client.webhook(firing)
    await client.webhook(alert("Slow", service="db", starts_at=client.clock.now))
    client.clock.advance(timedelta(minutes=4))
    await client.act("INC-1", "ack")
    client.clock.advance(timedelta(minutes=6))
    await client.webhook(resolved(firing, client.clock.now))  # auto: 10 minutes after opening
    await client.act("INC-2", "resolve")  # by hand: 10 minutes too, and its first response
    assert await client.metric("itsmd_mtta_seconds_count") == 2
    assert await client.metric("itsmd_mtta_seconds_sum") == 240 + 600
    assert await client.metric("itsmd_mttr_seconds_count") == 2
    assert await client.metric("itsmd_mttr_seconds_sum") == 1200


async def test_the_summary_counts_targets_per_priority_over_a_window(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES, sla=SLA)
    for service in ("a", "b", "c"):
        await client.webhook(
            alert("Down", severity="critical", service=service, starts_at=client.clock.now)
        )
    await client.webhook(alert("Slow", service="d", starts_at=client.clock.now))  # P4: no SLA
    client.clock.advance(timedelta(minutes=10))
    await client.act("INC-1", "ack")  # met
    await client.act("INC-2", "resolve")  # met both
    client.clock.advance(timedelta(minutes=10))  # INC-3: respond breached (20 min)
    body = await client.get_json("/api/v1/sla", {"window": "7d"})
    assert body["window"] == "7d"
    p1, p4 = body["priorities"]
    assert p1 == {
        "priority": "P1",
        "incidents": 3,
        "respond": {"met": 2, "breached": 1, "pending": 0, "not_needed": 0},
        "resolve": {"met": 1, "breached": 0, "pending": 2},
        "mtta_s": 600.0,
        "mttr_s": 600.0,
    }
    assert (p4["priority"], p4["incidents"], p4["respond"]) == (
        "P4",
        1,
        {"met": 0, "breached": 0, "pending": 0, "not_needed": 0},
    )
    client.clock.advance(timedelta(days=8))
    later = await client.get_json("/api/v1/sla", {"window": "7d"})
    assert later["priorities"] == []
    bad = await client.get("/api/v1/sla", params={"window": "soon"})
    assert bad.status == 400


async def test_only_a_person_meets_a_respond_target(make_client: MakeClient) -> None:
    """Five P1s: two answered by people, one resolved by itself in time (no response
    needed), one resolved by itself after the target passed, one still unanswered."""
    client = await make_client(RULES, sla=SLA)
    firing = {
        s: alert("Down", severity="critical", service=s, starts_at=client.clock.now)
        for s in ("a", "b", "c", "d", "e")
    }
    for a in firing.values():
        await client.webhook(a)
    client.clock.advance(timedelta(minutes=5))
    await client.act("INC-1", "ack")
    await client.act("INC-2", "comment", {"text": "on it"})
    await client.webhook(resolved(firing["c"], client.clock.now))  # auto_resolve: 0s
    client.clock.advance(timedelta(minutes=20))  # past the 15 min respond target
    await client.webhook(resolved(firing["d"], client.clock.now))

    incidents = {i["service"]: i for i in await client.incidents()}
    verdicts = {s: incidents[s]["sla"]["respond"] for s in firing}
    assert verdicts == {
        "a": "met",
        "b": "met",
        "c": "not_needed",
        "d": "breached",
        "e": "breached",
    }
    assert incidents["c"]["responded_at"] is None
    assert incidents["c"]["sla"]["breached"] is False
    assert incidents["b"]["responded_at"] == "2026-11-28T03:05:00Z"

    (p1,) = (await client.get_json("/api/v1/sla"))["priorities"]
    assert p1["respond"] == {"met": 2, "breached": 2, "pending": 0, "not_needed": 1}
    assert p1["mtta_s"] == 300.0  # people only: the two that were answered
    assert await client.metric("itsmd_mtta_seconds_count") == 2


# Minutes after opening: a person's response, the resolution, the (respond, resolve)
# due times; every combination, opened on three days, early or late in the day.
RESPONDED = [None, 5, 20, 90]
RESOLVED = [None, 10, 30, 300]
DUES = [(None, None), (15, 60), (15, None), (None, 60)]
OPENED = [0, 170, 1440 + 600, 2880 + 1300]  # now is 3 days and 3 hours after the first


async def test_the_summary_counted_by_the_store_equals_the_pure_one(db: Database) -> None:
    """slaclock.sla_summary (per-day sums kept by triggers, plus the rest one by one)
    gives what summarize gives over every incident, for windows that start at
    midnight or within a day, before and after incidents resolve, reopen and change
    priority."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)
    now = t0 + 4500 * minute

    def at(opened: datetime, minutes: int | None) -> datetime | None:
        return None if minutes is None else opened + minutes * minute

    def fill(conn: Connection) -> None:
        rows = []
        cases = itertools.product(Priority, RESPONDED, RESOLVED, DUES, OPENED)
        for n, (priority, responded, resolved_after, (respond, resolve), start) in enumerate(cases):
            opened = t0 + start * minute + n * timedelta(microseconds=7)
            resolved_at = at(opened, resolved_after)
            if resolved_at is not None and resolved_at > now:
                continue
            inc = stored_incident(
                f"k{n}",
                opened,
                status=IncidentStatus.OPEN if resolved_at is None else IncidentStatus.RESOLVED,
                priority=priority,
                impact=Level.HIGH,
                urgency=Level.HIGH,
                responded_at=at(opened, responded),
                resolved_at=resolved_at,
                respond_due=at(opened, respond),
                resolve_due=at(opened, resolve),
            )
            rows.append(repo.incident_values(inc))
        conn.execute(insert(incidents), rows)

    def change(conn: Connection) -> None:
        """Reopen every third, resolve every fifth, raise every seventh to P1."""
        c = incidents.c
        conn.execute(
            update(incidents)
            .where(c.id % 3 == 0, c.status == "resolved")
            .values(status="open", resolved_at=None)
        )
        conn.execute(
            update(incidents)
            .where(c.id % 5 == 0, c.status == "open")
            .values(status="resolved", resolved_at=now - 7 * minute)
        )
        conn.execute(update(incidents).where(c.id % 7 == 0).values(priority="P1"))

    async def compare() -> None:
        for since in (t0, t0 + 1440 * minute, t0 + 2000 * minute, now - 400 * minute):
            counted = await db.read(lambda conn, s=since: slaclock.sla_summary(conn, s, now))
            clocked = await db.read(lambda conn, s=since: slaclock.clocked_since(conn, s))
            expected = summarize(clocked, now)
            for row in expected:
                for key in ("mtta_s", "mttr_s"):
                    row[key] = None if row[key] is None else round(float(str(row[key])), 3)
            assert counted == expected, since
            assert sum(int(str(r["incidents"])) for r in counted) == len(clocked) > 0

    await db.write(fill)
    await compare()
    await db.write(change)
    await compare()
