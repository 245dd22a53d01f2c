"""Reads at scale: what on-call reads (incident lists, one large incident, the SLA
summary, the alert search, the console pages) from a store of 100,000 incidents and
1,000,000 alerts, alone and during a batch-20 ingestion storm.

    python bench/console.py                          # SQLite, 3 alternations
    python bench/console.py --runs 1 --keep /tmp/c   # fill once into /tmp/c, reuse it
    python bench/console.py --database postgresql    # on ITSMD_BENCH_PG
    python bench/console.py --profile                # py-spy on the daemon, storm + reads
    python bench/console.py --rate 40                # 40 reads a second during the storm
    python bench/console.py --closed 2               # two readers without pause instead

The store is filled through SQLAlchemy Core into the schema the migrations make
(bench/fill.py), then each run starts `itsmd run` on a fresh copy of it. A run is two
daemons one after the other: the storm alone, then the same storm while readers
request every read in turn. By default the reads come at a fixed rate (`--rate`, 20
a second, an open loop as wrk2 sends: a slow answer does not hold the next request
back); `--closed N` runs N readers that each send the next read as soon as the last
one answered, which saturates the daemon (a stress figure, not a use). The reads are
also timed on the quiet daemon before its storm. A run fails when a read answers
other than 200 (a read whose route does not answer at all is reported and left out)
or the store holds other alerts than were sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "connectors"), str(ROOT / "bench")]

import aiohttp  # noqa: E402
from fill import Filled, fill  # noqa: E402
from loadgen import Load, LoadResult, run_load  # noqa: E402
from run import (  # noqa: E402
    PG_ADMIN,
    RESULTS,
    WEBHOOK,
    Daemon,
    Profiler,
    Scenario,
    _pg,
    environment,
)

from itsmd.store.engine import Database  # noqa: E402
from itsmd.store.migrate import upgrade  # noqa: E402

INCIDENTS, ALERTS = 100_000, 1_000_000
# About 160,000 new alerts, 20 per request, into 100 groups: 15 to 25 s of storm here.
STORM = Load(requests=8000, alerts_per_request=20, first_instance=50_000_000)
# Reads a second during the storm. The console refreshes an open page every 15 s, so
# 20 a second is 300 open consoles, or fewer people with scripts polling the API.
READ_RATE = 20.0
QUIET_SAMPLES = 40
SLA_CONFIG = """\
sla:
  P1: {respond: 15m, resolve: 4h}
  P2: {respond: 30m, resolve: 8h}
  P3: {respond: 4h, resolve: 3d}
  P4: {respond: 1d, resolve: 7d}
"""
TARGET_P99_MS = 100.0


def reads(big: int) -> list[tuple[str, str]]:
    """(name, path) of every read measured; `big` is an incident of 500 alerts."""
    return [
        ("incidents", "/api/v1/incidents"),
        ("open, urgent", "/api/v1/incidents?status=open,acknowledged&order=urgent"),
        ("open, newest", "/api/v1/incidents?status=open,acknowledged"),
        ("all, urgent", "/api/v1/incidents?order=urgent"),
        ("priority=P1", "/api/v1/incidents?priority=P1"),
        ("service=checkout", "/api/v1/incidents?service=checkout"),
        ("assignee", "/api/v1/incidents?assignee=oncall-3"),
        ("q=web-7 (label value)", "/api/v1/incidents?q=web-7"),
        ("q=latency on db (title)", "/api/v1/incidents?q=latency%20on%20db"),
        ("q=no-such-text", "/api/v1/incidents?q=no-such-text"),
        ("incident of 500 alerts", f"/api/v1/incidents/INC-{big}"),
        ("sla", "/api/v1/sla"),
        ("alerts filter=pod", '/api/v1/alerts?filter=pod="web-7"'),
        ("console /incidents", "/incidents"),
        ("console /incidents/INC-n", f"/incidents/INC-{big}"),
        ("console /alerts", "/alerts?q=pod%3D%22web-7%22"),
    ]


@dataclass
class Timings:
    """Latencies per read, and the reads that did not answer 200."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # name: the status answered

    def add(self, name: str, elapsed: float) -> None:
        self.seconds.setdefault(name, []).append(elapsed)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "n": len(values),
                "p50_ms": round(_quantile(values, 0.5) * 1000, 2),
                "p99_ms": round(_quantile(values, 0.99) * 1000, 2),
            }
            for name, values in self.seconds.items()
        }


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.get(url) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


async def answering(
    base: str, paths: list[tuple[str, str]], timings: Timings
) -> list[tuple[str, str]]:
    """The reads that answer 200; the others are noted in `timings.failed`."""
    found = []
    async with aiohttp.ClientSession() as session:
        for name, path in paths:
            status, _ = await _get(session, base + path)
            if status == 200:
                found.append((name, path))
            else:
                timings.failed[name] = status
    return found


async def quiet(base: str, paths: list[tuple[str, str]]) -> Timings:
    """Each read alone, one request at a time."""
    timings = Timings()
    async with aiohttp.ClientSession() as session:
        for name, path in paths:
            for n in range(QUIET_SAMPLES + 3):
                status, elapsed = await _get(session, base + path)
                if status != 200:
                    timings.failed[name] = status
                elif n >= 3:  # after warming up
                    timings.add(name, elapsed)
    return timings


@dataclass(frozen=True)
class Readers:
    """How the reads come during the storm: `rate` a second in an open loop, or
    `closed` readers each sending its next read when the last one answered."""

    rate: float = READ_RATE
    closed: int = 0

    def describe(self) -> str:
        if self.closed:
            return f"{self.closed} readers without pause (closed loop)"
        return f"{self.rate:g} reads a second (open loop)"


async def storm(
    base: str, paths: list[tuple[str, str]], readers: Readers
) -> tuple[LoadResult, Timings]:
    """The storm, and the reads going through `paths` in turn until it ends."""
    timings = Timings()
    done = asyncio.Event()

    async def read(session: aiohttp.ClientSession, n: int) -> None:
        name, path = paths[n % len(paths)]
        status, elapsed = await _get(session, base + path)
        if status != 200:
            timings.failed[name] = status
        else:
            timings.add(name, elapsed)

    async def closed_reader(offset: int) -> None:
        async with aiohttp.ClientSession() as session:
            n = offset
            while not done.is_set():
                await read(session, n)
                n += 1

    async def open_loop() -> None:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=0)  # a slow read never queues the next
        async with aiohttp.ClientSession(connector=connector) as session:
            started, n, pending = loop.time(), 0, set()
            while not done.is_set():
                task = asyncio.create_task(read(session, n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                await asyncio.sleep(max(0.0, started + n / readers.rate - loop.time()))
            await asyncio.gather(*pending)

    async def load() -> LoadResult:
        try:
            return await run_load(base + WEBHOOK, STORM)
        finally:
            done.set()

    if readers.closed:
        tasks = [asyncio.create_task(closed_reader(i * 7)) for i in range(readers.closed)]
    else:
        tasks = [asyncio.create_task(open_loop())]
    result = await load()
    await asyncio.gather(*tasks)
    return result, timings


# ---- stores


class FilledStore:
    """A filled store, and fresh copies of it for the runs."""

    def __init__(self, database: str, keep: Path | None, workdir: Path) -> None:
        self.database = database
        self.home = keep or workdir
        self.home.mkdir(parents=True, exist_ok=True)
        meta = self.home / f"filled-{database}.json"
        self.pg_name = "itsmd_bench_console_filled"
        if keep is not None and meta.exists():
            self.filled = Filled(**json.loads(meta.read_text()))
            print(f"reusing the store filled in {self.home}", flush=True)
            asyncio.run(self._upgrade())  # filled by an older schema, maybe
            return
        started = time.perf_counter()
        self.filled = asyncio.run(self._fill())
        print(f"filled in {time.perf_counter() - started:.0f} s: {self.filled}", flush=True)
        meta.write_text(json.dumps(asdict(self.filled)))

    @property
    def url(self) -> str:
        if self.database == "sqlite":
            return f"sqlite+aiosqlite:///{self.home / 'filled.db'}"
        return _pg_url(self.pg_name)

    async def _upgrade(self) -> None:
        db = Database(self.url, busy_timeout=timedelta(seconds=30))
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    async def _fill(self) -> Filled:
        if self.database == "postgresql":
            _pg(PG_ADMIN, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            _pg(PG_ADMIN, f'CREATE DATABASE "{self.pg_name}"')
        db = Database(self.url, busy_timeout=timedelta(seconds=30))
        try:
            await upgrade(db)
            now = datetime.now(UTC)
            return await db.write(lambda conn: fill(conn, now, INCIDENTS, ALERTS))
        finally:
            await db.dispose()

    def copy(self, workdir: Path) -> tuple[str, Any]:
        """A fresh copy: its URL and a function that drops it."""
        if self.database == "sqlite":
            shutil.copyfile(self.home / "filled.db", workdir / "itsmd.db")
            return f"sqlite+aiosqlite:///{workdir / 'itsmd.db'}", lambda: None
        name = f"itsmd_bench_console_{int(time.time() * 1000)}"
        _pg(PG_ADMIN, f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_name}"')
        return _pg_url(name), lambda: _pg(PG_ADMIN, f'DROP DATABASE "{name}" WITH (FORCE)')


def _pg_url(name: str) -> str:
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def _stored_alerts(url: str) -> int:
    async def count() -> int:
        db = Database(url, busy_timeout=timedelta(seconds=30))
        try:
            found: int = await db.read(
                lambda conn: conn.exec_driver_sql("SELECT count(*) FROM alerts").scalar_one()
            )
            return found
        finally:
            await db.dispose()

    return asyncio.run(count())


# ---- one run


def run_once(
    store: FilledStore,
    readers: Readers | None,
    profile: bool = False,
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """The storm alone (`readers` None), or with the reads."""
    scenario = Scenario("console", STORM, database=store.database, config=SLA_CONFIG)
    paths = [(n, p) for n, p in reads(store.filled.big_incident) if n not in without]
    with tempfile.TemporaryDirectory(prefix="itsmd-console-") as tmp:
        url, drop = store.copy(Path(tmp))
        try:
            (Path(tmp) / "daemon").mkdir()
            daemon = Daemon(Path(tmp) / "daemon", scenario, url)
            try:
                out: dict[str, Any] = {"ready_s": round(daemon.ready_s, 2)}
                if readers is not None:
                    silent = Timings()
                    live = asyncio.run(answering(daemon.url, paths, silent))
                    calm = asyncio.run(quiet(daemon.url, live)) if live else Timings()
                    calm.failed |= silent.failed
                    out["quiet"] = calm.summary()
                    profiler = (
                        Profiler(daemon.proc.pid, Path(tmp) / "profile.txt") if profile else None
                    )
                    result, busy = asyncio.run(storm(daemon.url, live, readers))
                    if profiler is not None:
                        print(f"profile (py-spy), storm with reads:\n{profiler.top(40)}")
                    out["storm"] = busy.summary()
                    out["not_answering"] = {
                        n: s for n, s in ({**calm.failed, **busy.failed}).items() if n not in live
                    }
                    out["failed_reads"] = {n: s for n, s in busy.failed.items() if n in live}
                else:
                    result = asyncio.run(run_load(daemon.url + WEBHOOK, STORM))
            finally:
                daemon.stop()
            stored = _stored_alerts(url)
        finally:
            drop()
    summary = result.summary()
    expected = store.filled.alerts + result.distinct_alerts
    out |= {
        "ingest": summary,
        "stored_alerts": stored,
        "expected_alerts": expected,
        "honest": stored == expected
        and result.non_2xx == 0
        and result.errors == 0
        and not out.get("failed_reads"),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3, help="alternations of the two daemons")
    parser.add_argument("--keep", type=Path, help="fill the store here once, reuse it after")
    parser.add_argument("--profile", action="store_true", help="py-spy during storm + reads")
    parser.add_argument(
        "--without", action="append", default=[], help="leave out this read (repeatable)"
    )
    parser.add_argument("--rate", type=float, default=READ_RATE, help="reads a second")
    parser.add_argument("--closed", type=int, default=0, help="N readers without pause instead")
    args = parser.parse_args()
    if not (args.rate > 0 and math.isfinite(args.rate)):  # NaN fails both
        parser.error(f"--rate: reads a second must be a number above 0, got {args.rate:g}")
    if args.closed < 0:
        parser.error(f"--closed: the number of readers must be 0 or more, got {args.closed}")
    readers = Readers(args.rate, args.closed)
    env = environment()
    with tempfile.TemporaryDirectory(prefix="itsmd-console-store-") as tmp:
        store = FilledStore(args.database, args.keep, Path(tmp))
        alone, with_reads = [], []
        for _ in range(args.runs):
            alone.append(run_once(store, None))
            print(f"storm alone: {alone[-1]['ingest']['alerts_per_s']:,.0f} alerts/s", flush=True)
            with_reads.append(run_once(store, readers, args.profile, args.without))
            print(
                f"storm with reads: {with_reads[-1]['ingest']['alerts_per_s']:,.0f} alerts/s",
                flush=True,
            )
    row = {
        **env,
        "scenario": f"console-{args.database}",
        "database": args.database,
        "filled": asdict(store.filled),
        "storm": asdict(STORM),
        "readers": asdict(readers),
        "without": args.without,
        "alone": alone,
        "with_reads": with_reads,
    }
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "results.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"Reads during the storm: {readers.describe()}.")
    print(table(alone, with_reads))
    honest = all(r["honest"] for r in alone + with_reads)
    if not honest:
        print("FAILED: a read did not answer 200 or the store lost alerts", file=sys.stderr)
    return 0 if honest else 1


def table(alone: list[dict[str, Any]], with_reads: list[dict[str, Any]]) -> str:
    """Medians over the runs, as bench/RESULTS.md shows them."""

    def median(rows: list[dict[str, Any]], phase: str, name: str, key: str) -> float | None:
        found = [r[phase][name][key] for r in rows if name in r.get(phase, {})]
        return statistics.median(found) if found else None

    names = [n for n, _ in reads(0)]
    lines = [
        "| read | quiet p50 ms | quiet p99 ms | storm p50 ms | storm p99 ms | storm n |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in names:
        cells = [
            median(with_reads, p, name, k) for p in ("quiet", "storm") for k in ("p50_ms", "p99_ms")
        ]
        if all(c is None for c in cells):
            status = {s for r in with_reads for n, s in r["not_answering"].items() if n == name}
            if not status:
                continue  # left out (--without)
            lines.append(
                f"| {name} | not answering ({', '.join(map(str, sorted(status)))}) | | | | |"
            )
            continue
        n = median(with_reads, "storm", name, "n")
        lines.append(
            f"| {name} | "
            + " | ".join("-" if c is None else f"{c:.1f}" for c in cells)
            + f" | {n:.0f} |"
        )

    def ingest(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r["ingest"][key] for r in rows)

    solo, busy = ingest(alone, "alerts_per_s"), ingest(with_reads, "alerts_per_s")
    lines += [
        "",
        f"Ingestion (batch-20): {solo:,.0f} alerts/s alone, {busy:,.0f} alerts/s with the reads "
        f"({solo / busy:.2f}x); webhook p99 {ingest(alone, 'p99_ms'):.0f} / "
        f"{ingest(with_reads, 'p99_ms'):.0f} ms.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
