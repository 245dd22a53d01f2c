"""Checks with several replicas on one PostgreSQL: one leads, heartbeats sent to any
replica count, a replica taking the lead starts from the store; and checks removed
while the daemon was stopped resolve what they fired (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from itsmd.api.keys import CHECKS, RUNTIME
from itsmd.checks.jobs import LEASE_TTL
from itsmd.config import Settings
from itsmd.server.app import CHECK_JOBS, build_app
from itsmd.store import checkstore
from tests.api.api_support import ApiClient, FakeClock, MakeClient, alert
from tests.api.conftest import rule_set
from tests.conftest import async_wait_until
from tests.connectors.fakes_http import Answer, FakePeer, running_peer

RULES = """\
incidents:
  - name: checks
    match: '{{alertname=~"CheckFailed|HeartbeatMissing"}}'
    group_by: [check]
    title: '{{{{ labels.check }}}}: {{{{ labels.alertname }}}}'
    auto_resolve: 0s
  - name: rest
    match: '{{}}'
    group_by: [alertname]
checks:
  - name: api-health
    type: http
    url: {url}
    interval: 30s
    timeout: 2s
    failures_before_alert: 1
  - {{name: watchdog, type: heartbeat, interval: 5m, match: '{{alertname="Watchdog"}}'}}
"""


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(Answer(200, "ok")) as p:
        yield p


async def replicas(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer, clock: FakeClock
) -> list[ApiClient]:
    """Two replicas of one daemon; the first started takes the lease."""
    started: list[ApiClient] = []
    for _ in range(2):
        app = build_app(
            Settings(database=postgres_url),
            clock=clock,
            rules=rule_set(RULES.format(url=peer.url("/healthz"))),
            sweep_interval=timedelta(hours=1),
            run_checks=False,
        )
        client = await aiohttp_client(app)
        client.clock = clock
        started.append(client)
    return started


async def leads(client: ApiClient) -> bool:
    return await client.metric("itsmd_leader", job="checks") == 1


async def checks_incidents(client: ApiClient) -> list[dict[str, Any]]:
    return [i for i in await client.incidents() if i["rule"] == "checks"]


async def beat_seen(client: ApiClient) -> datetime | None:
    db = client.runtime.db
    assert db is not None
    seen: datetime | None = await db.read(lambda c: checkstore.heartbeat_seen(c, "watchdog"))
    return seen


async def test_one_replica_runs_the_checks(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer, clock: FakeClock
) -> None:
    first, second = await replicas(postgres_url, aiohttp_client, peer, clock)
    assert await leads(first)
    assert not await leads(second)
    await second.run_check("api-health")
    assert peer.seen == []  # the standby probes nothing
    await first.run_check("api-health")
    assert len(peer.seen) == 1


async def test_a_watchdog_sent_to_the_standby_keeps_the_leaders_heartbeat_alive(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer, clock: FakeClock
) -> None:
    leader, standby = await replicas(postgres_url, aiohttp_client, peer, clock)
    await leader.run_check("watchdog")  # starts the clock
    clock.advance(timedelta(minutes=4))
    await standby.webhook(alert("Watchdog", starts_at=clock.now))
    await async_wait_until(lambda: beat_seen(standby), what="the beat stored")

    clock.advance(timedelta(minutes=4))  # 8 minutes after start, 4 after the beat
    await leader.run_check("watchdog")
    assert await checks_incidents(leader) == []

    clock.advance(timedelta(minutes=2))  # 6 minutes of silence
    await leader.run_check("watchdog")
    assert [i["title"] for i in await checks_incidents(leader)] == ["watchdog: HeartbeatMissing"]
    clock.advance(timedelta(minutes=1))
    await standby.webhook(alert("Watchdog", starts_at=clock.now))
    await async_wait_until(
        lambda: _later(beat_seen(standby), clock.now - timedelta(seconds=1)),
        what="the second beat stored",
    )
    await leader.run_check("watchdog")  # the next tick sees it and resolves
    assert [i["status"] for i in await checks_incidents(leader)] == ["resolved"]


async def _later(seen: Any, than: datetime) -> bool:
    at = await seen
    return at is not None and at > than


async def test_a_replica_taking_the_lead_resolves_what_the_last_leader_fired(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer, clock: FakeClock
) -> None:
    leader, standby = await replicas(postgres_url, aiohttp_client, peer, clock)
    peer.answer(Answer(503))
    await leader.run_check("api-health")
    assert [i["status"] for i in await checks_incidents(leader)] == ["open"]

    await leader.close()  # its lease is no longer renewed
    clock.advance(LEASE_TTL + timedelta(seconds=1))
    assert standby.app is not None
    await standby.app[CHECK_JOBS].hold_lease()
    assert await leads(standby)
    await standby.run_check("api-health")  # the target is back
    assert [i["status"] for i in await checks_incidents(standby)] == ["resolved"]


async def test_a_check_removed_while_the_daemon_was_stopped_resolves_at_start(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await make_client(RULES.format(url=peer.url("/healthz")))
    peer.answer(Answer(503))
    await client.run_check("api-health")
    assert [i["status"] for i in await checks_incidents(client)] == ["open"]
    assert client.app is not None
    db = client.app[RUNTIME].db
    assert db is not None
    # What a start with rules that no longer have the check does:
    await client.app[CHECKS].load([], await db.read(checkstore.firing_check_alerts))
    (inc,) = await checks_incidents(client)
    assert inc["status"] == "resolved"


async def test_a_standby_without_a_check_leaves_the_leaders_alerts_until_it_leads(
    postgres_url: str, aiohttp_client: Any, peer: FakePeer, clock: FakeClock
) -> None:
    """A rolling reload: a replica started with rules that dropped a check must not
    resolve what the leader, still on the old rules, fires; once it leads, it does."""
    leader, _ = await replicas(postgres_url, aiohttp_client, peer, clock)
    peer.answer(Answer(503))
    await leader.run_check("api-health")
    newer = RULES.format(url=peer.url("/healthz")).split("checks:\n")[0] + "checks: []\n"
    app = build_app(
        Settings(database=postgres_url),
        clock=clock,
        rules=rule_set(newer),
        sweep_interval=timedelta(hours=1),
        run_checks=False,
    )
    standby = await aiohttp_client(app)
    assert not await leads(standby)
    assert [i["status"] for i in await checks_incidents(leader)] == ["open"]

    await leader.close()
    clock.advance(LEASE_TTL + timedelta(seconds=1))
    await app[CHECK_JOBS].hold_lease()  # no check left to run: taking the lead resolves
    assert await leads(standby)
    assert [i["status"] for i in await checks_incidents(standby)] == ["resolved"]


async def test_a_store_outage_keeps_the_lead_while_the_lease_lasts_and_the_state_with_it(
    postgres_url: str,
    aiohttp_client: Any,
    peer: FakePeer,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from itsmd.store.engine import StoreUnavailable

    leader, standby = await replicas(postgres_url, aiohttp_client, peer, clock)
    assert leader.app is not None
    assert standby.app is not None
    jobs, writer = leader.app[CHECK_JOBS], leader.runtime.writer
    assert writer is not None
    real_run, loads = writer.run, []
    down = True

    async def flaky(work: Any) -> Any:
        if down:
            raise StoreUnavailable("connection refused")
        return await real_run(work)

    async def load(*args: Any) -> None:
        loads.append(args)

    monkeypatch.setattr(writer, "run", flaky)
    monkeypatch.setattr(jobs.runner, "load", load)
    clock.advance(timedelta(seconds=5))
    await jobs.hold_lease()  # not renewed, but the lease got 5 s ago lasts 10 s more
    assert await leads(leader)
    down = False
    clock.advance(timedelta(seconds=5))
    await jobs.hold_lease()  # renewed without a gap: nothing reloaded
    assert await leads(leader)
    assert loads == []

    down = True
    clock.advance(LEASE_TTL + timedelta(seconds=1))
    await jobs.hold_lease()  # the lease ran out meanwhile: another replica may lead now
    assert not await leads(leader)
    await standby.app[CHECK_JOBS].hold_lease()
    assert await leads(standby)
