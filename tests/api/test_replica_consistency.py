"""Two replicas on one PostgreSQL give exactly the answers one process gives: alerts
of the same incidents posted to both at once leave every incident's counts equal to
its linked alerts, and no incident resolves while an alert of it fires
(docs/operations.md, "Scheduled work and several replicas")."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, text

from itsmd.config import Settings
from itsmd.server.app import build_app
from tests.api.api_support import T0, ApiClient, FakeClock, alert, resolved, webhook_body
from tests.api.conftest import rule_set

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
    auto_resolve: 0s
    window: 1h
"""
SERVICES = ("api", "db", "web")
PER_SERVICE = 100
SENDERS = 8
BATCH = 5


async def two_replicas(postgres_url: str, aiohttp_client: Any, clock: FakeClock) -> list[ApiClient]:
    clients = []
    for _ in range(2):
        app = build_app(
            Settings(database=postgres_url),
            clock=clock,
            rules=rule_set(RULES),
            sweep_interval=timedelta(hours=1),
            run_checks=False,
        )
        client = await aiohttp_client(app)
        client.clock = clock
        clients.append(client)
    return clients


async def send_concurrently(replicas: Sequence[ApiClient], alerts: list[dict[str, Any]]) -> None:
    """Batches of BATCH alerts, SENDERS senders, each batch to a random replica."""
    batches = [alerts[i : i + BATCH] for i in range(0, len(alerts), BATCH)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def sender(seed: int) -> None:
        pick = random.Random(seed)
        while not queue.empty():
            batch = queue.get_nowait()
            replica = pick.choice(replicas)
            for _ in range(20):  # as Alertmanager does: a 5xx is sent again
                body = orjson.dumps(webhook_body(*batch))
                response = await replica.post_raw("/api/v1/webhooks/alertmanager", body)
                if response.status < 500:
                    break
                await asyncio.sleep(0.05)
            assert response.status == 200, await response.text()

    await asyncio.gather(*(sender(seed) for seed in range(SENDERS)))


def counts(conn: Connection) -> list[tuple[Any, ...]]:
    """Per incident: stored counts, then the counts of its linked alerts, and status."""
    query = text(
        "SELECT i.id, i.alert_count, i.firing_count, "
        "(SELECT count(*) FROM alerts a WHERE a.incident_id = i.id), "
        "(SELECT count(*) FROM alerts a WHERE a.incident_id = i.id AND a.status = 'firing'), "
        "i.status FROM incidents i ORDER BY i.id"
    )
    return [tuple(row) for row in conn.execute(query)]


async def test_two_replicas_under_concurrent_load_keep_counts_exact(
    postgres_url: str, aiohttp_client: Any
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    replicas = await two_replicas(postgres_url, aiohttp_client, clock)
    firing = [
        alert("Down", service=service, instance=f"{service}-{n}")
        for n in range(PER_SERVICE)
        for service in SERVICES
    ]
    random.Random(1).shuffle(firing)

    await send_concurrently(replicas, firing)
    db = replicas[0].runtime.db
    assert db is not None
    after_firing = await db.read(counts)
    assert [row[1:] for row in after_firing] == [
        (PER_SERVICE, PER_SERVICE, PER_SERVICE, PER_SERVICE, "open")
    ] * len(SERVICES)

    # Most resolve, a few keep firing: no incident may resolve while one fires.
    keep = {a["labels"]["instance"] for a in firing[:: PER_SERVICE // 4]}
    ending = [resolved(a, T0 + timedelta(minutes=2)) for a in firing]
    ending = [a for a in ending if a["labels"]["instance"] not in keep]
    await send_concurrently(replicas, ending)

    for _id, alerts, fires, linked, linked_firing, status in await db.read(counts):
        assert (alerts, fires) == (linked, linked_firing)
        assert status == ("resolved" if linked_firing == 0 else "open")
    assert sum(row[2] for row in await db.read(counts)) == len(keep)
