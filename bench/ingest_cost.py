"""CPU per alert of ingestion, in process: the parse of each webhook body, and the
writer's path (group commit, correlation, the SQLite transaction) for the alerts of
the bench load, sent by 16 concurrent callers of `Writer.ingest` as 16 clients send
requests. No HTTP and no client: process CPU time over the alerts stored, which
stays comparable on a busy or drifting machine where wall-clock throughput does not.
The batches run in this process (`storage.ingest_process: false`): the ingest
process runs the same path, and its CPU would not count in this one's.

    python bench/ingest_cost.py                       # 1,500 requests of 20 alerts, 3 runs
    python bench/ingest_cost.py --requests 3000 --alerts-per-request 1

Compare two versions by running this from two checkouts alternately (A, B, A, B,
...) and comparing the pairs (bench/RESULTS.md, "Ingestion cost per alert").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "connectors"), str(ROOT / "bench")]

import orjson  # noqa: E402
from aiohttp import web  # noqa: E402
from loadgen import Load, payloads  # noqa: E402
from run import generated_rules  # noqa: E402

from itsmd.api.keys import RUNTIME  # noqa: E402
from itsmd.config import Overrides, load_settings  # noqa: E402
from itsmd.server.app import SOURCES, build_app  # noqa: E402

CONCURRENCY = 16


async def one_run(requests: int, per_request: int) -> tuple[float, float]:
    """(parse, writer) CPU microseconds per alert, on a fresh SQLite store."""
    work = Path(tempfile.mkdtemp(prefix="itsmd-cost-"))
    rules = work / "rules"
    rules.mkdir()
    (rules / "00-generated.yml").write_text(generated_rules(10))
    for shipped in sorted((ROOT / "rules").glob("*.yml")):
        if shipped.name != "50-checks.yml":  # no checks: they would run on the loop
            (rules / shipped.name).write_text(shipped.read_text())
    (work / "itsmd.yml").write_text("rules: rules/\nstorage: {ingest_process: false}\n")
    os.chdir(work)
    database = f"sqlite+aiosqlite:///{work}/itsmd.db"
    settings = load_settings(work / "itsmd.yml", Overrides(database=database))
    app = build_app(settings, migrate=True, run_checks=False)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        runtime = app[RUNTIME]
        source = SOURCES[0].source
        load = Load(requests=requests, alerts_per_request=per_request)
        bodies = [orjson.loads(body) for body, _, _ in payloads(load)]
        gc.collect()
        gc.freeze()  # as `itsmd run` does once started (server/serve.py)
        gc.set_threshold(20_000, 50, 100)
        started = time.process_time()
        parsed = [source.parse_each(body, runtime.clock()).alerts for body in bodies]
        parse_s = time.process_time() - started
        alerts = sum(len(p) for p in parsed)
        queue = list(reversed(parsed))

        async def sender() -> None:
            while queue:
                await runtime.writer.ingest(queue.pop())

        started = time.process_time()
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        writer_s = time.process_time() - started
    finally:
        await runner.cleanup()
    return 1e6 * parse_s / alerts, 1e6 * writer_s / alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--alerts-per-request", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    writer: list[float] = []
    for run in range(1, args.runs + 1):
        parse_us, writer_us = asyncio.run(one_run(args.requests, args.alerts_per_request))
        writer.append(writer_us)
        print(f"run {run}: parse {parse_us:.1f} us/alert, writer {writer_us:.1f} us/alert CPU")
    print(f"writer median {statistics.median(writer):.1f} us/alert CPU")


if __name__ == "__main__":
    main()
