"""End-to-end: the Prometheus client against a real Prometheus on loopback (PEERS.md section 7).

Two data paths: history backfilled with promtool before Prometheus starts (queryable
at once, deterministic: queried at explicit times), and a live gauge served by a tiny
aiohttp exporter in the test, scraped every second. The first scrape lands about
5.7 s after Prometheus is ready (target discovery runs on a 5 s tick), so the live
test polls with a deadline instead of sleeping.

The `prometheus` fixture follows the Alertmanager one in tests/e2e/conftest.py: a
factory that remembers every process, logs to the test's tmp dir, appends the logs to
a failure report and sends SIGTERM at teardown.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from itsmd_connectors.prometheus import PrometheusClient, PrometheusError, Series
from tests.conftest import async_wait_until, get_free_port, require_binary, wait_until
from tests.e2e.conftest import (
    _child_env,
    _kill,
    _remember_log,
    _terminate,
    probe_status,
    read_tail,
)

pytestmark = pytest.mark.e2e

PROM_READY_TIMEOUT_S = 5.0  # observed: 0.07-0.16 s
PROM_STOP_TIMEOUT_S = 5.0  # observed: within 3 s
FIRST_SCRAPE_TIMEOUT_S = 12.0  # observed: 5.6-5.8 s after ready
CLIENT_TIMEOUT_S = 5.0

# Backfill: demo_fs_avail_bytes falls linearly from 1000 to 400 over 6 h, one sample a minute.
BACKFILL_MINUTES = 360
BACKFILL_LABELS = {"mountpoint": "/data"}


def backfill_value(minute: int) -> float:
    return 1000 - 600 * minute / BACKFILL_MINUTES


# --- a real Prometheus ------------------------------------------------------------------------


@dataclass(eq=False)
class PrometheusProc:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """SIGTERM (Prometheus flushes its head and exits), SIGKILL if it hangs."""
        if not _terminate(self.proc, signal.SIGTERM, PROM_STOP_TIMEOUT_S):
            return _kill(self.proc)
        return self.proc.returncode


class PrometheusFactory:
    def __init__(self, request: pytest.FixtureRequest, base_dir: Path) -> None:
        self._request = request
        self._base_dir = base_dir
        self._started: list[PrometheusProc] = []

    def start(
        self, *, backfill: str | None = None, scrape_targets: Sequence[str] = ()
    ) -> PrometheusProc:
        """Start Prometheus on a free loopback port and wait until /-/ready answers 200.

        `backfill` (OpenMetrics text ending in `# EOF`) becomes TSDB blocks first;
        `scrape_targets` (host:port) are scraped every second as job "exporter".
        """
        binary = require_binary("prometheus")
        promtool = require_binary("promtool")
        workdir = self._base_dir / f"prometheus-{len(self._started) + 1}"
        data_dir = workdir / "data"
        data_dir.mkdir(parents=True)
        if backfill is not None:
            backfill_path = workdir / "backfill.om"
            backfill_path.write_text(backfill)
            _promtool(
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(backfill_path),
                str(data_dir),
            )
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(_config(scrape_targets), sort_keys=False))
        _promtool(promtool, "check", "config", str(config_path))

        port = get_free_port()
        args = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        log_path = workdir / "prometheus.log"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                args,
                cwd=workdir,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        prom = PrometheusProc(port, log_path, proc)
        self._started.append(prom)
        _remember_log(self._request, f"prometheus {prom.url} log", log_path)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"Prometheus exited with {proc.returncode} before ready\n"
                    f"args: {args}\n--- log ---\n{read_tail(log_path)}"
                )
            return probe_status(f"{prom.url}/-/ready") == 200

        wait_until(ready, timeout_s=PROM_READY_TIMEOUT_S, what=f"Prometheus {prom.url}/-/ready")
        return prom

    def close(self) -> None:
        for prom in reversed(self._started):
            prom.stop()


def _config(scrape_targets: Sequence[str]) -> dict[str, object]:
    jobs = [{"job_name": "exporter", "static_configs": [{"targets": list(scrape_targets)}]}]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": jobs if scrape_targets else [],
    }


def _promtool(promtool: str, *args: str) -> None:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


@pytest.fixture
def prometheus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Factory: `prometheus.start(backfill=..., scrape_targets=...) -> PrometheusProc`."""
    factory = PrometheusFactory(request, tmp_path / "prometheus")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(session: aiohttp.ClientSession, prom: PrometheusProc) -> PrometheusClient:
    return PrometheusClient(lambda: session, prom.url, CLIENT_TIMEOUT_S)


# --- backfilled history ----------------------------------------------------------------------


def falling_disk(end: int) -> str:
    """OpenMetrics for promtool: 6 h of free space, 1000 -> 400, ending at `end`."""
    labels = ",".join(f'{name}="{value}"' for name, value in BACKFILL_LABELS.items())
    lines = ["# HELP demo_fs_avail_bytes Free bytes.", "# TYPE demo_fs_avail_bytes gauge"]
    for minute in range(BACKFILL_MINUTES + 1):
        at = end - (BACKFILL_MINUTES - minute) * 60
        lines.append(f"demo_fs_avail_bytes{{{labels}}} {backfill_value(minute)!r} {at}")
    return "\n".join([*lines, "# EOF", ""])


async def test_backfilled_history_and_errors(
    prometheus: PrometheusFactory, session: aiohttp.ClientSession
) -> None:
    end = int(time.time()) // 60 * 60 - 120  # a whole minute, just past
    prom = prometheus.start(backfill=falling_disk(end))
    prom_client = client(session, prom)
    at = datetime.fromtimestamp(end, UTC)
    name = {"__name__": "demo_fs_avail_bytes", **BACKFILL_LABELS}

    history = await prom_client.query_range(
        "demo_fs_avail_bytes", at - timedelta(hours=6), at, step_s=60
    )
    expected = [(end - (BACKFILL_MINUTES - m) * 60.0, backfill_value(m)) for m in range(361)]
    assert history == [Series(name, expected)]

    hourly = await prom_client.query_range("demo_fs_avail_bytes", at - timedelta(hours=1), at, 600)
    assert [value for _, value in hourly[0].samples] == pytest.approx(
        [500, 1450 / 3, 1400 / 3, 450, 1300 / 3, 1250 / 3, 400]
    )

    assert await prom_client.query("demo_fs_avail_bytes", at=at - timedelta(hours=3)) == [
        Series(name, [(end - 3 * 3600.0, 700.0)])
    ]
    (trend,) = await prom_client.query("deriv(demo_fs_avail_bytes[6h]) * 3600", at=at)
    assert trend.samples[0][1] == pytest.approx(-100)

    with pytest.raises(PrometheusError) as caught:
        await prom_client.query("sum((")
    assert caught.value.error_type == "bad_data"
    assert str(caught.value).startswith(f"Prometheus at {prom.url}: bad_data: ")

    await asyncio.to_thread(prom.stop)
    with pytest.raises(PrometheusError) as caught:
        await prom_client.query("up")
    assert str(caught.value) == f"Prometheus at {prom.url}: connection refused"


# --- live scrapes -------------------------------------------------------------------------------


class RisingGauge:
    """`demo_rising{queue="emails"}` = start + rate_per_s x seconds since `set()`."""

    def __init__(self) -> None:
        self.set(100.0, 10.0)

    def set(self, start: float, rate_per_s: float) -> None:
        self._start, self._rate_per_s, self._since = start, rate_per_s, time.time()

    def value(self, at: float) -> float:
        return self._start + self._rate_per_s * max(0.0, at - self._since)

    async def metrics(self, request: web.Request) -> web.Response:
        text = (
            f'# TYPE demo_rising gauge\ndemo_rising{{queue="emails"}} {self.value(time.time())!r}\n'
        )
        return web.Response(text=text, content_type="text/plain")


@asynccontextmanager
async def exporter(gauge: RisingGauge) -> AsyncIterator[str]:
    """Serve the gauge at /metrics on a free loopback port; yields host:port."""
    app = web.Application()
    app.router.add_get("/metrics", gauge.metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_live_gauge_is_scraped_and_queried(
    prometheus: PrometheusFactory, session: aiohttp.ClientSession
) -> None:
    gauge = RisingGauge()
    async with exporter(gauge) as target:
        prom = await asyncio.to_thread(prometheus.start, scrape_targets=[target])
        prom_client = client(session, prom)

        async def scraped() -> list[Series]:
            return await prom_client.query("demo_rising")

        async def value_now() -> float:
            (series,) = await prom_client.query("demo_rising")
            return series.samples[0][1]

        found: list[Series] = await async_wait_until(
            scraped, timeout_s=FIRST_SCRAPE_TIMEOUT_S, interval_s=0.2, what="the first scrape"
        )
        (series,) = found
        assert series.labels == {
            "__name__": "demo_rising",
            "queue": "emails",
            "instance": target,
            "job": "exporter",
        }
        queried_at, first = series.samples[0]  # the query's time; the scrape came before it
        assert gauge.value(queried_at - 3) <= first <= gauge.value(queried_at)

        async def rose() -> bool:
            return await value_now() > first

        async def was_set() -> bool:
            return await value_now() == 5000.0

        await async_wait_until(rose, timeout_s=3, interval_s=0.2, what="a rising gauge")
        gauge.set(5000.0, 0.0)
        await async_wait_until(was_set, timeout_s=3, interval_s=0.2, what="the value just set")
