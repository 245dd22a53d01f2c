"""The outbox survives a crash: the daemon is killed (SIGKILL) while its webhook peer
fails, restarted, the peer comes back, and every event arrives exactly once, in order
per incident (docs/connectors.md).

The peer is a real HTTP server on loopback (a thread in the test) that checks the
documented request shape and signature, answers 503 while `failing`, and records
what it accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ItsmdFactory, ItsmdProc, rfc3339

pytestmark = pytest.mark.e2e
SECRET = "e2e-hook-secret"
RULES = {
    "incidents": [
        {"name": "per-service", "match": "{}", "group_by": ["service"], "auto_resolve": "0s"}
    ]
}


@dataclass
class Peer:
    failing: bool = True
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    bad: list[str] = field(default_factory=list)  # requests that broke the documented shape
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def take(self, headers: Any, body: bytes) -> int:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        doc = json.loads(body)
        with self.lock:
            if headers.get("X-Itsmd-Signature") != f"sha256={expected}":
                self.bad.append("signature")
            if headers.get("X-Itsmd-Event-Id") != doc.get("event_id"):
                self.bad.append("event id header")
            if set(doc) != {"event_id", "event", "at", "incident", "problem"}:
                self.bad.append(f"keys {sorted(doc)}")
            if self.failing:
                self.refused += 1
                return 503
            self.accepted.append(doc)
            return 200


@pytest.fixture
def peer() -> Iterator[Peer]:
    state = Peer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = state.take(self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def start(itsmd_server: ItsmdFactory, peer: Peer, tmp_path: Any) -> ItsmdProc:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yml").write_text(json.dumps(RULES))
    config = {
        "connectors": {
            "sinks": {
                "hook": {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{peer.port}/hook",
                    "secret_env": "HOOK_SECRET",
                    "timeout": "2s",
                    "backoff": "100ms",
                    "max_backoff": "300ms",
                    "max_attempts": 10_000,
                }
            }
        },
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
