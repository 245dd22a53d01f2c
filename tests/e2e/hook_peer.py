"""A webhook sink's peer for end-to-end tests: a real HTTP server on loopback (a
thread in the test) that checks the documented request shape and signature,
answers 503 while `failing`, and records what it accepted. The `peer` fixture
(registered in conftest.py) starts one for a test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SECRET = "e2e-hook-secret"  # give it to the daemon as the sink's secret_env


@dataclass
class Peer:
    failing: bool = True
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    bad: list[str] = field(default_factory=list)  # requests that broke the documented shape
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def sink(self, **more: object) -> dict[str, object]:
        """The webhook sink that sends to this peer, retrying fast (config
        `connectors.sinks`; the daemon needs HOOK_SECRET=SECRET in its env)."""
        return {
            "type": "webhook",
            "url": f"http://127.0.0.1:{self.port}/hook",
            "secret_env": "HOOK_SECRET",
            "timeout": "2s",
            "backoff": "100ms",
            "max_backoff": "300ms",
            **more,
        }

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
