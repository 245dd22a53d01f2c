"""Disk space and retention: bytes on disk per stored alert and per incident on SQLite
and PostgreSQL, how many days of a rate fit a disk with the default retention, and
ingest latency while a retention run deletes a large history.

    python bench/storage.py                         # both stores, the default fill
    python bench/storage.py --store sqlite --incidents 2000 --alerts 20000 --smoke

Sizes: a fresh store (migrated, empty) is filled by bench/fill.py (30 days of a busy
store: a few alerts per incident, heavy-tailed, label values, timelines, SLA marks),
then measured per table with its indexes (SQLite: the `dbstat` table after a WAL
checkpoint; PostgreSQL: `pg_total_relation_size`, toast included) and in total
(SQLite: the file; PostgreSQL: `pg_database_size`) minus the empty store.

Latency: the same fill, dated so that every resolved incident is past the default
retention, serves an in-process daemon (its real app on a loopback port) that takes
webhooks at a steady rate; ingest latency is measured for a while with no deletion,
then while one retention run deletes that history. Client and server share one
process, equally in both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "connectors"), str(ROOT / "bench")]

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from fill import Filled, fill  # noqa: E402
from run import PG_ADMIN, RESULTS, WEBHOOK, _pg, environment  # noqa: E402
from sqlalchemy import Connection, text  # noqa: E402

from itsmd.config import Retention, Settings  # noqa: E402
from itsmd.correlation.rules import parse_rule_sections  # noqa: E402
from itsmd.server.app import RETENTION, build_app  # noqa: E402
from itsmd.store import retention  # noqa: E402
from itsmd.store.engine import Database  # noqa: E402
from itsmd.store.migrate import upgrade  # noqa: E402

# Tables whose rows come with alerts, and with incidents (their indexes included).
ALERT_TABLES = ("alerts",)
INCIDENT_TABLES = ("incidents", "timeline", "incident_labels", "sla_breaches", "incidents_text")
RULES = """\
incidents:
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
"""
GB = 1000**3


@dataclass
class Sizes:
    store: str
    filled: dict[str, int]
    empty_bytes: int
    total_bytes: int
    tables: dict[str, int]  # bytes per table, indexes included
    bytes_per_alert: float = 0.0  # the alert rows and their indexes
    bytes_per_incident: float = 0.0  # incident rows, timeline, label values, SLA marks, text
    bytes_per_alert_all_in: float = 0.0  # the whole store's growth over its alerts
    days: dict[str, float] = field(default_factory=dict)


@dataclass
class Latency:
    store: str
    history: dict[str, int]
    baseline: dict[str, float]
    during: dict[str, float]
    deleted: dict[str, int]
    run_s: float
    rows_per_s: float
    longest_ms: float  # the run's longest transaction


# ---- stores


@contextlib.asynccontextmanager
async def fresh_store(kind: str, workdir: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'size-{time.monotonic_ns()}.db'}"
        return
    name = f"itsmd_bench_size_{time.monotonic_ns()}"
    await asyncio.to_thread(_pg, PG_ADMIN, f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        await asyncio.to_thread(_pg, PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlite_sizes(path: Path) -> tuple[int, dict[str, int]]:
    """The file (after folding the WAL in) and its bytes per table, indexes included."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owners = dict(
            conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
            )
        )
        tables: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            if table.startswith("incidents_text"):  # the FTS index and its shadow tables
                table = "incidents_text"
            tables[table] = tables.get(table, 0) + int(size)
    finally:
        conn.close()
    return path.stat().st_size, tables


def _pg_sizes(conn: Connection) -> tuple[int, dict[str, int]]:
    rows = conn.execute(
        text(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    )
    tables = {name: int(size) for name, size in rows}
    return retention.store_bytes(conn, None), tables


async def _measure(url: str) -> tuple[int, dict[str, int]]:
    db = Database(url, busy_timeout=timedelta(seconds=30))
    try:
        path = db.sqlite_file
        if path is None:
            return await db.read(_pg_sizes)
    finally:
        await db.dispose()
    return _sqlite_sizes(path)


async def measure_sizes(kind: str, url: str, incidents: int, alerts: int) -> Sizes:
    db = Database(url, busy_timeout=timedelta(seconds=30))
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    empty, _ = await _measure(url)
    db = Database(url, busy_timeout=timedelta(seconds=30))
    try:
        now = datetime.now(UTC)
        filled: Filled = await db.migrate(lambda conn: fill(conn, now, incidents, alerts))
    finally:
        await db.dispose()
    if kind == "postgresql":
        await _vacuum_analyze(url)
    total, tables = await _measure(url)
    sizes = Sizes(kind, asdict(filled), empty, total, tables)
    sizes.bytes_per_alert = sum(tables.get(t, 0) for t in ALERT_TABLES) / filled.alerts
    sizes.bytes_per_incident = sum(tables.get(t, 0) for t in INCIDENT_TABLES) / filled.incidents
    sizes.bytes_per_alert_all_in = (total - empty) / filled.alerts
    return sizes


async def _vacuum_analyze(url: str) -> None:
    """Settle PostgreSQL's visibility map and statistics, as autovacuum would."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def days_that_fit(sizes: Sizes, rate_per_day: int, disk_bytes: int, kept_days: int) -> None:
    per_day = rate_per_day * sizes.bytes_per_alert_all_in
    sizes.days = {
        "rate_per_day": rate_per_day,
        "disk_bytes": disk_bytes,
        "bytes_per_day": per_day,
        "days_in_disk": disk_bytes / per_day,
        "retention_days": kept_days,
        "bytes_for_retention": per_day * kept_days,
    }


# ---- ingest latency during a retention run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _body(serial: int, per_request: int) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    items = [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRate",
                "service": f"svc-{(serial + k) % 50}",
                "instance": f"bench-{serial}-{k}",
            },
            "annotations": {"summary": "bench"},
            "startsAt": now,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
        }
        for k in range(per_request)
    ]
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "x", "alerts": items}
    ).encode()


async def _steady(
    session: aiohttp.ClientSession, url: str, rate: float, per_request: int, until: Any, first: int
) -> tuple[list[float], int]:
    """Webhooks at `rate` per second until `until()` is true; their latencies."""
    latencies: list[float] = []
    errors: list[str] = []
    serial, tasks = first, set()

    async def post(n: int) -> None:
        started = time.perf_counter()
        body, headers = _body(n, per_request), {"Content-Type": "application/json"}
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status >= 300:
                errors.append(f"{resp.status} {(await resp.text())[:200]}")
                return
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    while not until():
        task = asyncio.create_task(post(serial))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        serial += 1
        await asyncio.sleep(max(0.0, started + (serial - first) / rate - time.perf_counter()))
    if tasks:
        await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} webhooks failed, the first: {errors[0]}")
    return latencies, serial


def _quantiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": 1000 * ordered[-1],
    }


async def measure_latency(
    kind: str, url: str, incidents: int, alerts: int, rate: float, baseline_s: float
) -> Latency:
    db = Database(url, busy_timeout=timedelta(seconds=30))
    try:
        await upgrade(db)
        old = datetime.now(UTC) - timedelta(days=431)  # every resolved incident is past 400d
        filled = await db.migrate(lambda conn: fill(conn, old, incidents, alerts))
        if not db.sqlite:
            await _vacuum_analyze(url)
    finally:
        await db.dispose()
    port = _free_port()
    rules = parse_rule_sections(RULES, "bench.yml").rule_set("bench.yml")
    app = build_app(
        Settings(database=url, listen=f"127.0.0.1:{port}", retention=Retention()),
        rules=rules,
        run_checks=False,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            hook = f"http://127.0.0.1:{port}{WEBHOOK}"
            end = time.monotonic() + baseline_s
            before, serial = await _steady(
                session, hook, rate, 10, lambda: time.monotonic() > end, 0
            )
            job = asyncio.create_task(app[RETENTION].run_if_due())
            during, _ = await _steady(session, hook, rate, 10, job.done, serial)
            summary = job.result()
    finally:
        await runner.cleanup()
    if summary is None:
        raise RuntimeError("the retention run was not due")
    deleted = {str(k): n for k, n in summary.deleted.items()}
    return Latency(
        kind,
        asdict(filled),
        _quantiles(before),
        _quantiles(during),
        deleted,
        round(summary.seconds, 2),
        sum(deleted.values()) / summary.seconds,
        round(summary.longest_s * 1000, 1),
    )


# ---- report


def _report(sizes: list[Sizes], latencies: list[Latency]) -> str:
    lines = [
        "| store | alerts | incidents | bytes/alert (alert rows) | bytes/incident "
        "(incident, timeline, labels, SLA, text) | bytes/alert, all in | "
        "a day of alerts | days in the disk | default retention needs |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in sizes:
        d = s.days
        lines.append(
            f"| {s.store} | {s.filled['alerts']:,} | {s.filled['incidents']:,} | "
            f"{s.bytes_per_alert:,.0f} | {s.bytes_per_incident:,.0f} | "
            f"{s.bytes_per_alert_all_in:,.0f} | {d['bytes_per_day'] / 1e6:,.1f} MB "
            f"({d['rate_per_day']:,} alerts) | {d['days_in_disk']:,.0f} "
            f"({d['disk_bytes'] / GB:g} GB) | {d['bytes_for_retention'] / GB:,.2f} GB "
            f"({d['retention_days']} d) |"
        )
    if latencies:
        lines += [
            "",
            "| store | history (alerts) | deleted | run s | rows/s | longest transaction ms | "
            "ingest p50 / p99 / max ms before | during the run |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
    for lat in latencies:
        b, d = lat.baseline, lat.during
        lines.append(
            f"| {lat.store} | {lat.history['alerts']:,} | "
            + ", ".join(f"{n:,} {k}" for k, n in lat.deleted.items())
            + f" | {lat.run_s} | {lat.rows_per_s:,.0f} | {lat.longest_ms} | "
            f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} / {b['max_ms']:.1f} | "
            f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} / {d['max_ms']:.1f} |"
        )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    sizes: list[Sizes] = []
    latencies: list[Latency] = []
    with tempfile.TemporaryDirectory(prefix="itsmd-storage-") as tmp:
        for kind in args.store:
            async with fresh_store(kind, Path(tmp)) as url:
                s = await measure_sizes(kind, url, args.incidents, args.alerts)
                days_that_fit(s, args.rate, args.disk_gb * GB, Retention().incidents.days)
                sizes.append(s)
                print(
                    f"{kind}: {s.bytes_per_alert_all_in:,.0f} bytes per alert, all in", flush=True
                )
            if args.no_latency:
                continue
            async with fresh_store(kind, Path(tmp)) as url:
                lat = await measure_latency(
                    kind, url, args.incidents, args.alerts, args.ingest_rate, args.baseline_s
                )
                latencies.append(lat)
                print(f"{kind}: {asdict(lat)}", flush=True)
    print(_report(sizes, latencies))
    if args.smoke:
        return 0
    env = environment()
    with (RESULTS / "results.jsonl").open("a") as f:
        for s in sizes:
            f.write(json.dumps({**env, "scenario": f"storage-{s.store}", **asdict(s)}) + "\n")
        for lat in latencies:
            f.write(json.dumps({**env, "scenario": f"retention-{lat.store}", **asdict(lat)}) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=10_000, help="alerts per day to size for")
    parser.add_argument("--disk-gb", type=float, default=10.0)
    parser.add_argument(
        "--ingest-rate", type=float, default=20.0, help="webhooks/s, 10 alerts each"
    )
    parser.add_argument("--baseline-s", type=float, default=20.0)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="write no results")
    args = parser.parse_args()
    args.store = args.store or ["sqlite", "postgresql"]
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
