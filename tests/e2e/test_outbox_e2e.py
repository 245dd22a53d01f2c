"""The outbox survives a crash: the daemon is killed (SIGKILL) while its webhook peer
fails, restarted, the peer comes back, and every event arrives exactly once, in order
per incident (docs/connectors.md).

The peer is a real HTTP server on loopback (tests/e2e/hook_peer.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ItsmdFactory, ItsmdProc, rfc3339
from tests.e2e.hook_peer import SECRET, Peer

pytestmark = pytest.mark.e2e
RULES = {
    "incidents": [
        {"name": "per-service", "match": "{}", "group_by": ["service"], "auto_resolve": "0s"}
    ]
}


def start(itsmd_server: ItsmdFactory, peer: Peer, tmp_path: Any) -> ItsmdProc:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yml").write_text(json.dumps(RULES))
    config = {
        "connectors": {"sinks": {"hook": peer.sink(max_attempts=10_000)}},
        "routes": [{"name": "all", "to": ["hook"]}],
    }
    return itsmd_server.start(rules_dir=rules_dir, config=config, env={"HOOK_SECRET": SECRET})


def alert(service: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    item = {
        "labels": {"alertname": "Down", "service": service},
        "annotations": {},
        "status": "resolved" if ends else "firing",
        "startsAt": rfc3339(starts),
    }
    if ends is not None:
        item["endsAt"] = rfc3339(ends)
    return item


def test_events_arrive_exactly_once_in_order_after_a_crash_while_the_peer_fails(
    itsmd_server: ItsmdFactory, peer: Peer, tmp_path: Any
) -> None:
    daemon = start(itsmd_server, peer, tmp_path)
    starts = datetime.now(UTC) - timedelta(minutes=5)
    services = ["api", "db", "cache"]
    for service in services:
        assert daemon.post("/api/v1/alerts", [alert(service, starts)]).status == 200
    assert daemon.post("/api/v1/incidents/INC-1/ack", {}).status == 200
    assert daemon.post("/api/v1/incidents/INC-2/comment", {"text": "on it"}).status == 200
    now = datetime.now(UTC)
    for service in ("api", "db"):
        assert daemon.post("/api/v1/alerts", [alert(service, starts, now)]).status == 200
    expected = {
        "INC-1": ["opened", "acknowledged", "resolved"],
        "INC-2": ["opened", "commented", "resolved"],
        "INC-3": ["opened"],
    }
    wait_until(lambda: peer.refused >= 6, what="the failing peer to be tried again and again")

    daemon.kill()
    daemon.restart()
    peer.failing = False

    total = sum(len(events) for events in expected.values())
    wait_until(
        lambda: len(peer.accepted) >= total,
        timeout_s=15,
        what=lambda: f"{total} events accepted, got {len(peer.accepted)}",
    )
    # The peer answered the last one a moment before the worker marks it sent.
    wait_until(
        lambda: daemon.get("/api/v1/notifications?state=pending").json()["notifications"] == [],
        timeout_s=5,
        what="no notification left pending",
    )
    assert peer.bad == []
    ids = [doc["event_id"] for doc in peer.accepted]
    assert len(ids) == len(set(ids)) == total, "an event was accepted twice"
    got: dict[str, list[str]] = {}
    for doc in peer.accepted:
        got.setdefault(doc["incident"]["id"], []).append(doc["event"])
    assert got == expected
    sent = daemon.get("/api/v1/notifications?state=sent&limit=100").json()["notifications"]
    assert sorted(n["event_id"] for n in sent) == sorted(ids)
