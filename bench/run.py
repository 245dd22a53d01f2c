"""The benchmark harness: start itsmd as `itsmd run` would, drive it, check the figures.

    python bench/run.py                      # all scenarios, 3 runs each
    python bench/run.py --scenario single-1 --runs 1
    python bench/run.py --smoke              # seconds; asserts stored == sent only

Every run starts a fresh daemon on a fresh SQLite file (the default store) with
the shipped rules plus a generated rule set, posts a bounded load on loopback,
then counts the alerts and incidents actually stored and compares them with what
was sent: a figure whose counts do not match is reported as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "connectors"), str(ROOT / "bench")]

from loadgen import Load, run_load  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WEBHOOK = "/api/v1/webhooks/alertmanager"


@dataclass(frozen=True)
class Scenario:
    name: str
    load: Load
    extra_rules: int = 10  # generated incident rules placed before the shipped ones
    synchronous: str = "normal"
    state: Load | None = None  # posted first, then the daemon restarts on that store
    database: str = "sqlite"  # or "postgresql": a fresh database on ITSMD_BENCH_PG
    replicas: int = 1  # daemons on the same database, the senders spread over them
    config: str = ""  # more of itsmd.yml (connectors and routes: bench/outbox.py)
    server: str = "itsmd"  # or "floor": bench/floor.py, the bare durable receiver


# 100,000 firing alerts in 10,000 open incidents; the measured load adds new alerts
# to 100 of those incidents.
OPEN_STATE = Load(requests=10_000, alerts_per_request=10, groups=10_000)
NEW_INSTANCES = 1_000_000


SCENARIOS = [
    Scenario("single-1", Load(requests=6000, alerts_per_request=1)),
    Scenario("batch-20", Load(requests=1500, alerts_per_request=20)),
    # The same loads on the floor of any durable receiver (bench/floor.py), in this run.
    Scenario("floor-single-1", Load(requests=6000, alerts_per_request=1), server="floor"),
    Scenario("floor-batch-20", Load(requests=1500, alerts_per_request=20), server="floor"),
    Scenario("dup90-1", Load(requests=6000, alerts_per_request=1, duplicate_share=0.9)),
    Scenario("dup90-20", Load(requests=1500, alerts_per_request=20, duplicate_share=0.9)),
    Scenario("rules1000-1", Load(requests=6000, alerts_per_request=1), extra_rules=1000),
    Scenario("full-sync-20", Load(requests=1500, alerts_per_request=20), synchronous="full"),
    Scenario(
        "state100k-1",
        Load(requests=6000, alerts_per_request=1, first_instance=NEW_INSTANCES),
        state=OPEN_STATE,
    ),
    Scenario(
        "state100k-20",
        Load(requests=1500, alerts_per_request=20, first_instance=NEW_INSTANCES),
        state=OPEN_STATE,
    ),
    Scenario("pg-single-1", Load(requests=3000, alerts_per_request=1), database="postgresql"),
    Scenario("pg-batch-20", Load(requests=750, alerts_per_request=20), database="postgresql"),
    # Scale-out: 1, 2 and 3 replicas on one PostgreSQL, the senders spread over them.
    *(
        Scenario(f"pg{n}-{shape}", load, database="postgresql", replicas=n)
        for n in (2, 3)
        for shape, load in (
            ("single-1", Load(requests=3000, alerts_per_request=1)),
            ("batch-20", Load(requests=750, alerts_per_request=20)),
        )
    ),
]
PG_ADMIN = os.environ.get("ITSMD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
SMOKE = Scenario(
    "smoke", Load(requests=200, alerts_per_request=5, duplicate_share=0.3, concurrency=8)
)


def generated_rules(count: int) -> str:
    """`count` incident rules that the bench alerts do not match (they must be skipped)."""
    lines = ["incidents:"]
    for i in range(count):
        lines += [
            f"  - name: generated-{i}",
            f'    match: \'{{alertname="Generated{i}", severity="critical"}}\'',
            "    group_by: [service]",
        ]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SqliteStore:
    """A fresh SQLite file, or a copy of a seeded one."""

    def __init__(self, workdir: Path, seeded: Seeded | None = None) -> None:
        self.path = workdir / "itsmd.db"
        if seeded is not None:
            shutil.copyfile(seeded.db, self.path)
        self.url = f"sqlite+aiosqlite:///{self.path}"

    def counts(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            incidents = (
                conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
                if "incidents" in tables  # the floor keeps none
                else 0
            )
        return {"stored_alerts": alerts, "stored_incidents": incidents}

    def drop(self) -> None:
        pass  # the temporary directory goes


class PostgresStore:
    """A fresh database on the PostgreSQL server of ITSMD_BENCH_PG, dropped after."""

    def __init__(self) -> None:
        self.name = f"itsmd_bench_{os.getpid()}_{time.monotonic_ns()}"
        _pg(PG_ADMIN, f'CREATE DATABASE "{self.name}"')
        self.dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    def counts(self) -> dict[str, int]:
        alerts = _pg(self.dsn, "SELECT count(*) FROM alerts")
        incidents = _pg(self.dsn, "SELECT count(*) FROM incidents")
        return {"stored_alerts": alerts, "stored_incidents": incidents}

    def drop(self) -> None:
        _pg(PG_ADMIN, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _pg(dsn: str, sql: str) -> Any:
    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass(frozen=True)
class Seeded:
    """A store holding a scenario's state, copied for each of its runs."""

    db: Path
    alerts: int
    groups: int


class Daemon:
    def __init__(self, workdir: Path, scenario: Scenario, db_url: str) -> None:
        self.workdir = workdir
        rules = workdir / "rules"
        rules.mkdir()
        (rules / "00-generated.yml").write_text(generated_rules(scenario.extra_rules))
        for shipped in sorted((ROOT / "rules").glob("*.yml")):
            if shipped.name != "50-checks.yml":  # probes would only add noise to the load
                (rules / shipped.name).write_text(shipped.read_text())
        (workdir / "itsmd.yml").write_text(
            f"rules: rules/\nstorage: {{sqlite_synchronous: {scenario.synchronous}}}\n"
            + scenario.config
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "itsmd.log").open("w")
        started = time.perf_counter()
        if scenario.server == "floor":
            path = db_url.removeprefix("sqlite+aiosqlite:///")
            command = [sys.executable, str(ROOT / "bench" / "floor.py"), "--db", path]
            command += ["--port", str(self.port)]
        else:
            command = [
                sys.executable,
                "-m",
                "itsmd",
                "run",
                "--config",
                str(workdir / "itsmd.yml"),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--db",
                db_url,
                "--log-level",
                "warning",
            ]
        self.proc = subprocess.Popen(
            command,
            cwd=workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'daemon'}:{ROOT / 'connectors'}"},
        )
        self.ready_s = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        deadline = started + 20
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"itsmd exited: {(self.workdir / 'itsmd.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("itsmd did not become ready within 20 s")

    def usage(self) -> dict[str, float]:
        """Memory (MB: the proportional set size, so that pages the processes share are
        counted once) and CPU seconds (user + system) so far of the daemon and the
        processes it started (the ingest process, forked by Python's fork server)."""
        rss_kb, ticks = 0, 0
        for pid in _tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    rss_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, StopIteration):  # ended meanwhile
                continue
            ticks += int(fields[11]) + int(fields[12])
        return {
            "rss_mb": round(rss_kb / 1024, 1),
            "cpu_s": round(ticks / os.sysconf("SC_CLK_TCK"), 2),
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def seed(scenario: Scenario, state: Load, into: Path) -> Seeded:
    """Post the state through a daemon (as Alertmanager would), then stop it."""
    store = SqliteStore(into)
    daemon = Daemon(into, scenario, store.url)
    try:
        result = asyncio.run(run_load(f"{daemon.url}{WEBHOOK}", state))
    finally:
        daemon.stop()
    stored = store.counts()
    if result.non_2xx or result.errors or stored["stored_alerts"] != result.distinct_alerts:
        raise RuntimeError(f"seeding the state failed: {result.summary()} {stored}")
    return Seeded(store.path, result.distinct_alerts, result.distinct_groups)


class Profiler:
    """py-spy sampling the daemon while the load runs (`--profile`)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
                or "py-spy",
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                "--threads",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # attached before the first request

    def top(self, count: int = 25) -> str:
        self.proc.send_signal(2)
        self.proc.wait(timeout=30)
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        threads: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            frames, n = stack.split(";"), int(samples)
            total += n
            threads[frames[0].split(":")[-1].strip()] += n
            own[frames[-1]] += n
            for frame in {re.sub(r":\d+\)", ")", f) for f in frames[1:]}:
                inclusive[frame] += n
        lines = [
            f"{total} samples; by thread: "
            + ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in threads.most_common())
        ]
        mine = [(f, n) for f, n in inclusive.most_common() if "itsmd" in f][:count]
        lines += ["self:", *(f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(count))]
        lines += ["inclusive (itsmd):", *(f"  {100 * n / total:5.1f}%  {f}" for f, n in mine)]
        return "\n".join(lines)


def run_once(
    scenario: Scenario, seeded: Seeded | None = None, profile: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="itsmd-bench-") as tmp:
        store: SqliteStore | PostgresStore = (
            SqliteStore(Path(tmp), seeded) if scenario.database == "sqlite" else PostgresStore()
        )
        daemons: list[Daemon] = []
        try:
            for replica in range(scenario.replicas):  # one at a time: the first migrates
                (Path(tmp) / f"r{replica}").mkdir()
                daemons.append(Daemon(Path(tmp) / f"r{replica}", scenario, store.url))
            profiler = Profiler(daemons[0].proc.pid, Path(tmp) / "profile.txt") if profile else None
            before = [d.usage() for d in daemons]
            result = asyncio.run(run_load([f"{d.url}{WEBHOOK}" for d in daemons], scenario.load))
            after = [d.usage() for d in daemons]
            if profiler is not None:
                print(f"profile of {scenario.name} (py-spy):\n{profiler.top()}", flush=True)
        finally:
            for daemon in daemons:
                daemon.stop()
        try:
            stored = store.counts()
        finally:
            store.drop()
    summary = result.summary()
    # One severity per service: one rule, one incident per group. Groups are numbered
    # from 0, so the state's groups include the load's.
    expected_incidents = max(result.distinct_groups, seeded.groups if seeded else 0)
    if scenario.server == "floor":
        expected_incidents = 0
    expected_alerts = result.distinct_alerts + (seeded.alerts if seeded else 0)
    honest = (
        stored["stored_alerts"] == expected_alerts
        and result.non_2xx == 0
        and result.errors == 0
        and stored["stored_incidents"] == expected_incidents
    )
    return {
        "scenario": scenario.name,
        **summary,
        **stored,
        "expected_alerts": expected_alerts,
        "expected_incidents": expected_incidents,
        "honest": honest,
        "state_alerts": seeded.alerts if seeded else 0,
        "ready_s": round(daemons[0].ready_s, 3),
        "rss_mb": max(a["rss_mb"] for a in after),
        "cpu_s": round(sum(a["cpu_s"] for a in after) - sum(b["cpu_s"] for b in before), 2),
        "database": scenario.database,
        "replicas": scenario.replicas,
        "rules": scenario.extra_rules + 3,
        "synchronous": scenario.synchronous,
        "concurrency": scenario.load.concurrency,
    }


def environment() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit or "unknown",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="scenario name (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few seconds; correctness only")
    parser.add_argument("--requests", type=int, help="override the request count")
    parser.add_argument(
        "--profile", action="store_true", help="sample the daemon with py-spy, print the top"
    )
    args = parser.parse_args()
    if args.smoke:
        chosen, runs = [SMOKE], 1
    else:
        names = set(args.scenario or [s.name for s in SCENARIOS])
        chosen, runs = [s for s in SCENARIOS if s.name in names], args.runs
    if args.requests:
        chosen = [replace(s, load=replace(s.load, requests=args.requests)) for s in chosen]
    env = environment()
    failures = 0
    medians: list[dict[str, Any]] = []
    for scenario in chosen:
        with tempfile.TemporaryDirectory(prefix="itsmd-bench-state-") as tmp:
            seeded = seed(scenario, scenario.state, Path(tmp)) if scenario.state else None
            rows = [run_once(scenario, seeded, args.profile) for _ in range(runs)]
        failures += sum(not r["honest"] for r in rows)
        median = _median(rows)
        medians.append(median)
        print(json.dumps({**median, "runs": runs}), flush=True)
        if not args.smoke:
            RESULTS.mkdir(exist_ok=True)
            with (RESULTS / "results.jsonl").open("a") as f:
                for row in rows:
                    f.write(json.dumps({**env, **row, "load": asdict(scenario.load)}) + "\n")
    if not args.smoke and chosen == SCENARIOS and not args.requests and not args.profile:
        write_table(env, runs, medians)
    if failures:
        print(f"FAILED: {failures} runs stored something else than was sent", file=sys.stderr)
        return 1
    return 0


TABLE_BEGIN, TABLE_END = "<!-- table:begin -->", "<!-- table:end -->"


def write_table(env: dict[str, Any], runs: int, medians: list[dict[str, Any]]) -> None:
    """Replace the table of bench/RESULTS.md with this full run's medians."""
    lines = [
        TABLE_BEGIN,
        f"Commit `{env['commit']}`, {env['at']}, {env['machine']}, Python {env['python']}; "
        f"`make bench` (medians of {runs} runs, concurrency 16).",
        "",
        "| scenario | alerts/s | requests/s | p50 ms | p99 ms | non-2xx | alerts stored / "
        "expected | incidents stored / expected | ready s | memory MB | CPU s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in medians:
        lines.append(
            f"| {m['scenario']} | {m['alerts_per_s']:,.0f} | {m['requests_per_s']:,.0f} | "
            f"{m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['non_2xx']} | "
            f"{m['stored_alerts']:,} / {m['expected_alerts']:,} | "
            f"{m['stored_incidents']:,} / {m['expected_incidents']:,} | {m['ready_s']:.2f} | "
            f"{m['rss_mb']:.0f} | {m['cpu_s']:.1f} |"
        )
    lines += ["", *floor_ratios(medians), TABLE_END]
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else f"{TABLE_BEGIN}\n{TABLE_END}\n"
    head, _, rest = text.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    path.write_text(head + "\n".join(lines) + tail)


def floor_ratios(medians: list[dict[str, Any]]) -> list[str]:
    """itsmd's alerts/s as a share of the floor's under the same load, in this run."""
    by_name = {m["scenario"]: m for m in medians}
    shares = []
    for shape in ("single-1", "batch-20"):
        ours, floor = by_name.get(shape), by_name.get(f"floor-{shape}")
        if ours and floor and floor["alerts_per_s"]:
            share = ours["alerts_per_s"] / floor["alerts_per_s"]
            shares.append(
                f"{shape} {share:.2f} ({ours['alerts_per_s']:,.0f} / "
                f"{floor['alerts_per_s']:,.0f} alerts/s)"
            )
    if not shares:
        return []
    return ["itsmd against the floor of a durable receiver (`floor-*`): " + ", ".join(shares)]


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in rows)
    out["honest"] = all(r["honest"] for r in rows)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
