"""The outbox end to end inside one app: routes, delivery to a real loopback webhook
peer, ordering, retries, dead letters, escalations and muting (SQLite and PostgreSQL).

The delivery worker runs as in production, woken after each commit; retries and
escalations wait for the app's FakeClock, so a test moves the clock and runs one
delivery pass itself (`deliver()`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from itsmd.api.keys import OUTBOX
from itsmd.config import parse_config
from tests.api.api_support import ApiClient, MakeClient, alert, resolved
from tests.conftest import async_wait_until
from tests.connectors.fakes_http import Answer, FakePeer, running_peer

SECRET = "s3cret"
RULES = """\
incidents:
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
    auto_resolve: 0s
maintenance:
  - name: quiet-change
    match: '{service="batch"}'
    start: 2026-11-28T00:00:00Z
    end: 2026-11-29T00:00:00Z
    action: annotate
problems:
  - name: flapping
    match: '{service="flappy"}'
    group_by: [service]
    after: 2
    within: 7d
"""


def config(peer: FakePeer, routes: str, policy: str = "") -> Any:
    text = f"""\
external_url: https://itsmd.example.com
connectors:
  sinks:
    hook: {{type: webhook, url: "{peer.url("/hook")}", secret_env: HOOK_SECRET{policy}}}
    late: {{type: webhook, url: "{peer.url("/late")}"}}
routes:
{routes}
"""
    return parse_config(text, "itsmd.yml", {"HOOK_SECRET": SECRET}).connectors


EVERYTHING = "  - {name: all, to: [hook]}\n"


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(Answer(200, "ok")) as p:
        yield p


async def deliver(client: ApiClient) -> int:
    assert client.app is not None
    return await client.app[OUTBOX].deliver_due()


async def seen(peer: FakePeer, count: int) -> list[dict[str, Any]]:
    await async_wait_until(lambda: len(peer.seen) >= count, what=f"{count} requests")
    return [s.json() for s in peer.seen]


async def attempted(client: ApiClient, attempts: int) -> None:
    """Wait until the outcome of `attempts` sends is stored: the peer answering is not
    enough, the worker records its answer a moment later."""

    async def recorded() -> bool:
        return sum(n["attempts"] for n in await notifications(client)) >= attempts

    await async_wait_until(recorded, what=f"{attempts} attempts recorded")


async def notifications(client: ApiClient, state: str | None = None) -> list[dict[str, Any]]:
    params = {"state": state} if state else None
    body = await client.get_json("/api/v1/notifications", params)
    found: list[dict[str, Any]] = body["notifications"]
    return found


async def test_incident_events_reach_the_webhook_signed_and_in_order(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await make_client(RULES, connectors=config(peer, EVERYTHING))
    firing = alert("Down", service="api", starts_at=client.clock.now)
    await client.webhook(firing)
    assert (await client.act("INC-1", "ack", {"note": "looking"})).status == 200
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(firing, client.clock.now))

    bodies = await seen(peer, 3)
    assert [(b["event"], b["incident"]["id"], b["incident"]["status"]) for b in bodies] == [
        ("opened", "INC-1", "open"),
        ("acknowledged", "INC-1", "acknowledged"),
        ("resolved", "INC-1", "resolved"),
    ]
    first = peer.seen[0]
    assert first.path == "/hook"
    expected = hmac.new(SECRET.encode(), first.body, hashlib.sha256).hexdigest()
    assert first.headers["X-Itsmd-Signature"] == f"sha256={expected}"
    assert first.headers["X-Itsmd-Event-Id"] == bodies[0]["event_id"]
    assert len({b["event_id"] for b in bodies}) == 3
    await attempted(client, 3)  # the peer's third answer is recorded a moment later
    sent = await notifications(client, "sent")
    assert {n["subject"] for n in sent} == {"INC-1"}
    assert len(sent) == 3
    assert await client.metric("itsmd_notifications_total", connector="hook", result="sent") == 3


async def test_a_failing_peer_is_retried_with_the_same_event_id_and_holds_back_later_events(
    make_client: MakeClient, peer: FakePeer
) -> None:
    connectors = config(peer, EVERYTHING, ", backoff: 30s")
    client = await make_client(RULES, connectors=connectors)
    peer.answer(Answer(503, "down"))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    await seen(peer, 1)
    await attempted(client, 1)
    await client.act("INC-1", "ack")  # must wait behind the failed "opened"
    assert await deliver(client) == 0  # nothing due before the backoff ends
    assert len(peer.seen) == 1

    client.clock.advance(timedelta(seconds=40))  # 30s ±20% jitter
    await deliver(client)  # the retry of "opened"
    await deliver(client)  # then "acknowledged"
    bodies = await seen(peer, 3)
    assert [b["event"] for b in bodies] == ["opened", "opened", "acknowledged"]
    assert bodies[0]["event_id"] == bodies[1]["event_id"]
    retried = await client.metric("itsmd_notifications_total", connector="hook", result="retry")
    assert retried == 1


async def test_a_permanent_failure_becomes_a_dead_letter_that_an_admin_can_send_again(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await make_client(RULES, connectors=config(peer, EVERYTHING))
    peer.answer(Answer(400, "bad payload"))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    await seen(peer, 1)
    (dead,) = await async_wait_until(lambda: notifications(client, "dead"), what="a dead letter")
    assert dead["last_error"].startswith("HTTP 400")
    assert dead["attempts"] == 1

    assert dead["retried_by"] is None
    resp = await client.post(f"/api/v1/notifications/{dead['id']}/retry", json={"actor": "ana"})
    assert resp.status == 200
    assert (await resp.json())["state"] == "pending"
    assert (await resp.json())["retried_by"] == "ana"
    bodies = await seen(peer, 2)
    assert bodies[1]["event_id"] == bodies[0]["event_id"]
    # The answer to the retry is recorded a moment after the peer gave it.
    sent = await async_wait_until(lambda: notifications(client, "sent"), what="a sent one")
    assert [n["id"] for n in sent] == [dead["id"]]
    again = await client.post(f"/api/v1/notifications/{dead['id']}/retry")
    assert again.status == 409
    assert (await client.post("/api/v1/notifications/999/retry")).status == 404


async def test_exhausted_retries_become_a_dead_letter(
    make_client: MakeClient, peer: FakePeer
) -> None:
    connectors = config(peer, EVERYTHING, ", max_attempts: 2, backoff: 1s")
    client = await make_client(RULES, connectors=connectors)
    peer.answer(Answer(500, "boom"), Answer(502, "still"))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    await seen(peer, 1)
    await attempted(client, 1)
    client.clock.advance(timedelta(seconds=2))
    await deliver(client)
    (dead,) = await notifications(client, "dead")
    assert dead["last_error"] == "gave up after 2 attempts: HTTP 502: still"


async def test_routes_match_incident_fields_and_continue(
    make_client: MakeClient, peer: FakePeer
) -> None:
    routes = """\
  - {name: api-only, match: '{service="api"}', events: [opened], to: [hook], continue: true}
  - {name: rest, match: '{priority=~"P.*"}', to: [late]}
"""
    client = await make_client(RULES, connectors=config(peer, routes))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    await client.webhook(alert("Down", service="db", starts_at=client.clock.now))
    await seen(peer, 3)
    got = sorted((s.path, s.json()["incident"]["service"]) for s in peer.seen)
    assert got == [("/hook", "api"), ("/late", "api"), ("/late", "db")]
    assert {n["route"] for n in await notifications(client)} == {"api-only", "rest"}


async def test_an_escalation_waits_and_is_cancelled_by_an_acknowledgement(
    make_client: MakeClient, peer: FakePeer
) -> None:
    routes = """\
  - {name: escalate, events: [opened], after: 15m, unless: acknowledged, to: [late]}
"""
    client = await make_client(RULES, connectors=config(peer, routes))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    await client.webhook(alert("Down", service="db", starts_at=client.clock.now))
    assert await deliver(client) == 0  # not due yet
    await client.act("INC-1", "ack")
    client.clock.advance(timedelta(minutes=16))
    await deliver(client)

    bodies = await seen(peer, 1)
    assert [b["incident"]["id"] for b in bodies] == ["INC-2"]
    (cancelled,) = await notifications(client, "cancelled")
    assert cancelled["subject"] == "INC-1"


ESCALATE_AND_COMMENTS = """\
  - {name: escalate, events: [opened], after: 15m, unless: acknowledged, to: [late],
     continue: true}
  - {name: comments, events: [commented], to: [late]}
"""


async def escalating(make_client: MakeClient, peer: FakePeer) -> ApiClient:
    """INC-1 opened, its escalation to `late` due in 15 minutes; comments go there too."""
    client = await make_client(RULES, connectors=config(peer, ESCALATE_AND_COMMENTS))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    return client


async def test_a_waiting_escalation_does_not_hold_back_later_events(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await escalating(make_client, peer)
    client.clock.advance(timedelta(minutes=1))
    body = {"text": "looking"}
    assert (await client.post("/api/v1/incidents/INC-1/comment", json=body)).status == 200
    (comment,) = await seen(peer, 1)
    assert comment["event"] == "commented"
    client.clock.advance(timedelta(minutes=15))
    await deliver(client)
    bodies = await seen(peer, 2)
    assert bodies[1]["event"] == "opened"  # the escalation, when due


async def test_an_escalation_in_retry_holds_back_later_events_of_its_sink(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await escalating(make_client, peer)
    client.clock.advance(timedelta(minutes=16))
    peer.answer(Answer(503))
    await deliver(client)
    await seen(peer, 1)  # the escalation failed: it waits for its retry now
    await attempted(client, 1)
    body = {"text": "looking"}
    assert (await client.post("/api/v1/incidents/INC-1/comment", json=body)).status == 200
    await deliver(client)
    assert len(peer.seen) == 1  # the comment does not overtake the escalation

    client.clock.advance(timedelta(minutes=10))  # past any backoff
    await deliver(client)
    await deliver(client)
    bodies = await seen(peer, 3)
    assert [b["event"] for b in bodies] == ["opened", "opened", "commented"]


async def test_incidents_opened_in_an_annotating_window_are_muted(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await make_client(RULES, connectors=config(peer, EVERYTHING))
    await client.webhook(alert("Down", service="batch", starts_at=client.clock.now))
    await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
    bodies = await seen(peer, 1)
    assert [b["incident"]["service"] for b in bodies] == ["api"]
    (muted,) = await notifications(client, "muted")
    assert muted["subject"] == "INC-1"
    assert len(peer.seen) == 1


async def test_problem_events_carry_the_problem(make_client: MakeClient, peer: FakePeer) -> None:
    routes = "  - {name: problems, events: [problem_opened, problem_resolved], to: [hook]}\n"
    client = await make_client(RULES, connectors=config(peer, routes))
    for _ in range(2):
        firing = alert("Flap", service="flappy", starts_at=client.clock.now)
        await client.webhook(firing)
        client.clock.advance(timedelta(minutes=1))
        await client.webhook(resolved(firing, client.clock.now))
        client.clock.advance(timedelta(hours=1))
    (body,) = await seen(peer, 1)
    assert body["event"] == "problem_opened"
    assert body["incident"] is None
    assert body["problem"]["id"] == "PRB-1"
    assert (await client.post("/api/v1/problems/PRB-1/resolve", json={})).status == 200
    bodies = await seen(peer, 2)
    assert bodies[1]["event"] == "problem_resolved"
    assert bodies[1]["problem"]["status"] == "resolved"


async def test_a_rejected_state_filter_names_the_states(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    resp = await client.get("/api/v1/notifications", params={"state": "lost"})
    assert resp.status == 400
    assert "pending, sent, dead" in (await resp.json())["error"]


async def test_two_replicas_on_one_postgresql_send_each_event_once(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer
) -> None:
    from itsmd.config import Settings
    from itsmd.server.app import build_app
    from tests.api.api_support import FakeClock
    from tests.api.conftest import rule_set

    clock = FakeClock()
    connectors = config(peer, EVERYTHING)
    replicas: list[ApiClient] = []
    for _ in range(2):
        app = build_app(
            Settings(database=postgres_url, connectors=connectors),
            clock=clock,
            rules=rule_set(RULES),
            sweep_interval=timedelta(hours=1),
            run_checks=False,
            notify_poll_s=0.05,
        )
        client = await aiohttp_client(app)
        client.clock = clock
        replicas.append(client)
    for n in range(20):
        sender = replicas[n % 2]
        await sender.webhook(alert("Down", service=f"svc-{n}", starts_at=clock.now))
    await seen(peer, 20)

    async def all_sent() -> bool:
        return len(await notifications(replicas[0], "sent")) == 20

    await async_wait_until(all_sent, what="20 notifications marked sent")
    bodies = [s.json() for s in peer.seen]  # once marked sent, nothing is sent again
    ids = [b["event_id"] for b in bodies]
    assert len(ids) == len(set(ids)) == 20
    assert sorted(b["incident"]["service"] for b in bodies) == sorted(f"svc-{n}" for n in range(20))


async def test_a_hanging_sink_holds_up_only_its_own_slots(
    make_client: MakeClient, peer: FakePeer
) -> None:
    async with running_peer(Answer(200, hang=True)) as stuck:
        text = f"""\
connectors:
  sinks:
    fast: {{type: webhook, url: "{peer.url("/fast")}"}}
    stuck: {{type: webhook, url: "{stuck.url("/stuck")}", timeout: 30s, concurrency: 1}}
routes:
  - {{name: all, to: [fast, stuck]}}
"""
        connectors = parse_config(text, "itsmd.yml", {}).connectors
        client = await make_client(RULES, connectors=connectors)
        for service in ("api", "db"):
            await client.webhook(alert("Down", service=service, starts_at=client.clock.now))
        assert (await client.act("INC-1", "ack")).status == 200
        bodies = await seen(peer, 3)
        assert sorted((b["event"], b["incident"]["id"]) for b in bodies) == [
            ("acknowledged", "INC-1"),
            ("opened", "INC-1"),
            ("opened", "INC-2"),
        ]
        assert len(stuck.seen) == 1  # concurrency 1: one send at a time
        assert client.app is not None
        assert await client.app[OUTBOX].stop(timeout_s=0.1) == 1
        stuck.release()
    # The cut-off send was given back: due again at once, not after its lease.
    pending = await notifications(client, "pending")
    assert len(pending) == 3  # opened INC-2, then INC-1's opened and acknowledged
    claimed = await client.runtime.db.read(  # type: ignore[union-attr]
        lambda conn: conn.exec_driver_sql(
            "SELECT count(*) FROM notifications WHERE claimed_until IS NOT NULL"
        ).scalar()
    )
    assert claimed == 0


async def test_an_answer_recorded_after_the_claim_ran_out_is_not_counted(
    make_client: MakeClient,
) -> None:
    from datetime import datetime

    from sqlalchemy import update

    from itsmd.store.tables import notifications as rows

    async with running_peer(Answer(200, hang=True)) as slow:
        text = f'connectors:\n  sinks:\n    slow: {{type: webhook, url: "{slow.url()}"}}\n'
        text += "routes:\n  - {name: all, to: [slow]}\n"
        client = await make_client(RULES, connectors=parse_config(text, "x.yml", {}).connectors)
        await client.webhook(alert("Down", service="api", starts_at=client.clock.now))
        await async_wait_until(lambda: len(slow.seen) == 1, what="the send under way")
        taken = datetime(2030, 1, 1, tzinfo=client.clock.now.tzinfo)  # another worker's lease
        writer = client.runtime.writer
        assert writer is not None
        await writer.run(lambda conn, _: conn.execute(update(rows).values(claimed_until=taken)))
        slow.release()
        await async_wait_until(lambda: _send_over(client), what="the send recorded or not")
    assert await client.metric("itsmd_notifications_total", connector="slow") == 0
    (row,) = await notifications(client, "pending")
    assert row["attempts"] == 0  # the worker holding the claim now records its own


def _send_over(client: ApiClient) -> bool:
    assert client.app is not None
    return not client.app[OUTBOX]._sending
