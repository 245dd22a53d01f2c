"""The outbox under load: how fast notifications drain to a sink, and what routing
costs ingestion.

    python bench/outbox.py [--incidents 2000] [--peer-ms 20] [--runs 3]

A webhook peer on loopback answers every request after `--peer-ms` (a real
service's latency) and counts event ids. The daemon (SQLite, as `itsmd run`
starts it) gets one alert per request in as many groups as `--incidents`, so
every alert opens an incident and each incident makes one `opened` event to
the peer. Reported: ingestion alerts/s with the route (against the same load
without it, run alternately), the time until the peer had every event, the
delivery rate once ingestion ended, and duplicates (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Load, run_load
from run import WEBHOOK, Daemon, Profiler, Scenario, SqliteStore


@dataclass
class Peer:
    """A webhook receiver in its own thread and event loop."""

    delay_s: float
    ids: list[str] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0
    port: int = 0

    def start(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        async def hook(request: web.Request) -> web.Response:
            await request.read()
            await asyncio.sleep(self.delay_s)
            now = time.perf_counter()
            self.first_at = self.first_at or now
            self.last_at = now
            self.ids.append(request.headers["X-Itsmd-Event-Id"])
            return web.Response(text="ok")

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())


ROUTED = """\
connectors:
  sinks:
    hook: {{type: webhook, url: "http://127.0.0.1:{port}/hook", concurrency: {concurrency}}}
routes:
  - {{name: all, events: [opened], to: [hook]}}
"""


def run_once(
    incidents: int, routed: bool, peer_ms: float, concurrency: int, profile: bool = False
) -> dict[str, Any]:
    peer = Peer(peer_ms / 1000)
    peer.start()
    config = ROUTED.format(port=peer.port, concurrency=concurrency) if routed else ""
    load = Load(requests=incidents, alerts_per_request=1, groups=incidents)
    scenario = Scenario("outbox", load, config=config)
    with tempfile.TemporaryDirectory(prefix="itsmd-bench-outbox-") as tmp:
        store = SqliteStore(Path(tmp))
        daemon = Daemon(Path(tmp), scenario, store.url)
        profiler = Profiler(daemon.proc.pid, Path(tmp) / "profile.txt") if profile else None
        try:
            started = time.perf_counter()
            result = asyncio.run(run_load(f"{daemon.url}{WEBHOOK}", load))
            ingested = time.perf_counter()
            if profiler is not None:
                print(f"profile of the ingestion (py-spy):\n{profiler.top()}", flush=True)
            deadline = ingested + 120
            while routed and len(set(peer.ids)) < incidents and time.perf_counter() < deadline:
                time.sleep(0.01)
        finally:
            daemon.stop()
    row: dict[str, Any] = {"routed": routed, **result.summary()}
    if routed:
        drained = len(set(peer.ids))
        row |= {
            "delivered": drained,
            "duplicates": len(peer.ids) - drained,
            "all_delivered_s": round(peer.last_at - started, 2),
            "drain_after_ingest_s": round(max(peer.last_at - ingested, 0.0), 2),
            "deliveries_per_s": round(drained / (peer.last_at - peer.first_at), 1),
        }
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--peer-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4, help="the sink's slots")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy on the routed runs")
    args = parser.parse_args()
    failed = False
    for _ in range(args.runs):
        for routed in (False, True):
            profile = args.profile and routed
            row = run_once(args.incidents, routed, args.peer_ms, args.concurrency, profile)
            keep = (
                "routed",
                "alerts_per_s",
                "p99_ms",
                "non_2xx",
                "delivered",
                "duplicates",
                "all_delivered_s",
                "drain_after_ingest_s",
                "deliveries_per_s",
            )
            print(json.dumps({k: row[k] for k in keep if k in row}), flush=True)
            failed |= row["non_2xx"] > 0 or (
                routed and (row["delivered"] != args.incidents or row["duplicates"] > 0)
            )
    if failed:
        print("FAILED: a request was refused, or events were lost or sent twice", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
