"""The service review over a year: `GET /api/v1/reports/review` for 365 days of a store
of 100,000 incidents and 1,000,000 alerts (bench/fill.py, spread over the year), as
JSON, Markdown and HTML, from a running `itsmd run` on SQLite. Target: under 2 s.

    python bench/report.py                        # fill a fresh store, 5 runs per format
    python bench/report.py --keep /tmp/r          # fill once into /tmp/r, reuse it after

Each format is asked once to warm the store's pages, then timed `--runs` times; the
run fails when an answer is not 200 or the review does not count every incident.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "connectors"), str(ROOT / "bench")]

import asyncio  # noqa: E402

from fill import fill  # noqa: E402
from loadgen import Load  # noqa: E402
from run import RESULTS, Daemon, Scenario, environment  # noqa: E402

from itsmd.store.engine import Database  # noqa: E402
from itsmd.store.migrate import upgrade  # noqa: E402

INCIDENTS, ALERTS = 100_000, 1_000_000
SPAN = timedelta(days=365)
TARGET_S = 2.0


def _today() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), clock_time(), UTC)


def filled(home: Path, end: datetime) -> Path:
    """The store of the year before `end`, filled once per `end` in `home`."""
    path = home / f"report-{end.date().isoformat()}.db"
    reused = path.exists()

    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}", busy_timeout=timedelta(seconds=30))
        try:
            await upgrade(db)  # a reused store made by an earlier schema too
            if not reused:
                await db.write(lambda conn: fill(conn, end, INCIDENTS, ALERTS, span=SPAN))
        finally:
            await db.dispose()

    started = time.perf_counter()
    asyncio.run(run())
    if reused:
        print(f"reusing {path} (upgraded in {time.perf_counter() - started:.0f} s)", flush=True)
        return path
    print(f"filled {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def timed(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        body: bytes = resp.read()
        assert resp.status == 200
    return time.perf_counter() - started, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="fill the store here once, reuse it after")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    end = _today()
    start = end - SPAN
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="itsmd-report-") as tmp:
        store = filled(args.keep or Path(tmp), end)
        (Path(tmp) / "daemon").mkdir()
        scenario = Scenario("report", Load(requests=1, alerts_per_request=1))
        daemon = Daemon(Path(tmp) / "daemon", scenario, f"sqlite+aiosqlite:///{store}")
        timings: dict[str, dict[str, float]] = {}
        try:
            query = f"from={start.date().isoformat()}&to={end.date().isoformat()}"
            for fmt in ("json", "md", "html"):
                url = f"{daemon.url}/api/v1/reports/review?{query}&format={fmt}"
                _, body = timed(url)  # warm-up
                if fmt == "json":
                    counted = json.loads(body)["totals"]["incidents"]["value"]
                    if counted != INCIDENTS:
                        print(f"the review counts {counted} incidents, not {INCIDENTS}")
                        return 1
                runs = [timed(url)[0] for _ in range(args.runs)]
                timings[fmt] = {
                    "median_s": round(statistics.median(runs), 3),
                    "max_s": round(max(runs), 3),
                    "bytes": len(body),
                }
                print(f"review of 365 days as {fmt}: {timings[fmt]}", flush=True)
        finally:
            daemon.stop()
    record: dict[str, Any] = {
        **environment(),
        "scenario": "report-review-365d",
        "database": "sqlite",
        "incidents": INCIDENTS,
        "alerts": ALERTS,
        "runs": args.runs,
        "review": timings,
        "target_s": TARGET_S,
        "within_target": all(t["median_s"] < TARGET_S for t in timings.values()),
    }
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "results.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
