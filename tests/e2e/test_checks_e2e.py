"""End-to-end checks on the real scheduler of a real `itsmd run`: a failing HTTP
check opens an incident through the rules and its recovery resolves it, while a
check of a target that never answers is cut off by its timeout and holds up
neither the other check nor webhook ingestion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ItsmdFactory, ItsmdProc, rfc3339

pytestmark = pytest.mark.e2e


class Target:
    """GET /ok answers `status`; GET /hang never answers before the test ends."""

    def __init__(self) -> None:
        self.status = 503
        self.release = threading.Event()
        self.port = 0
        self.seen: list[str] = []


@pytest.fixture
def target() -> Iterator[Target]:
    state = Target()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(f"GET {self.path}")
            if self.path == "/hang":
                state.release.wait(30)
                return
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def start(itsmd_server: ItsmdFactory, target: Target, tmp_path: Path) -> ItsmdProc:
    base = f"http://127.0.0.1:{target.port}"
    rules = {
        "incidents": [
            {
                "name": "checks",
                "match": '{alertname="CheckFailed"}',
                "group_by": ["check"],
                "auto_resolve": "0s",
            },
            {"name": "rest", "match": "{}", "group_by": ["alertname"]},
        ],
        "checks": [
            {
                "name": "api",
                "type": "http",
                "url": f"{base}/ok",
                "interval": "1s",
                "timeout": "500ms",
            },
            {
                "name": "stuck",
                "type": "http",
                "url": f"{base}/hang",
                "interval": "1s",
                "timeout": "500ms",
            },
        ],
    }
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yml").write_text(json.dumps(rules))
    return itsmd_server.start(rules_dir=rules_dir)


def incident_of(daemon: ItsmdProc, check: str) -> dict[str, Any] | None:
    for inc in daemon.get("/api/v1/incidents").json()["incidents"]:
        if inc["key"].endswith(f'{{check="{check}"}}'):
            return dict(inc)
    return None


def runs(daemon: ItsmdProc, check: str) -> float:
    return daemon.metric("itsmd_check_runs_total", check=check) or 0.0


def test_a_failing_check_opens_an_incident_and_recovery_resolves_it(
    itsmd_server: ItsmdFactory, target: Target, tmp_path: Path
) -> None:
    daemon = start(itsmd_server, target, tmp_path)
    opened = wait_until(lambda: incident_of(daemon, "api"), what="the CheckFailed incident")
    assert opened["status"] == "open"
    detail = daemon.get(f"/api/v1/incidents/{opened['id']}").json()
    assert detail["alerts"][0]["annotations"]["description"] == "HTTP 503, expected 2xx"

    # The hanging target times out at every run; the other check keeps its pace.
    before = runs(daemon, "api")
    wait_until(lambda: runs(daemon, "api") >= before + 3, what="three more runs of api")
    stuck = next(c for c in daemon.get("/api/v1/checks").json()["checks"] if c["name"] == "stuck")
    assert stuck["up"] is False
    assert stuck["last_error"] == "timed out after 0.5s"
    alert = {
        "labels": {"alertname": "Ping"},
        "annotations": {},
        "status": "firing",
        "startsAt": rfc3339(datetime.now(UTC)),
    }
    assert daemon.post("/api/v1/alerts", [alert]).status == 200

    target.status = 200
    resolved = wait_until(
        lambda: (inc := incident_of(daemon, "api")) and inc["status"] == "resolved" and inc,
        what="the incident to resolve",
    )
    assert resolved["id"] == opened["id"]
    api = next(c for c in daemon.get("/api/v1/checks").json()["checks"] if c["name"] == "api")
    assert (api["up"], api["consecutive_failures"]) == (True, 0)


def test_a_stop_while_checks_run_logs_no_error(
    itsmd_server: ItsmdFactory, target: Target, tmp_path: Path
) -> None:
    """A check still waiting for its target when the daemon stops is cut off
    quietly: a clean stop logs no error and no traceback."""
    base = f"http://127.0.0.1:{target.port}"
    rules = {
        "incidents": [{"name": "all", "match": "{}", "group_by": ["alertname"]}],
        "checks": [
            {
                "name": "slow",
                "type": "http",
                "url": f"{base}/hang",
                "interval": "9s",
                "timeout": "8s",
            }
        ],
    }
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yml").write_text(json.dumps(rules))
    daemon = itsmd_server.start(rules_dir=rules_dir)
    wait_until(
        lambda: "GET /hang" in target.seen or None, what="a check run waiting for its target"
    )

    assert daemon.stop() == 0
    log = daemon.log
    assert "stopped cleanly" in log
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
