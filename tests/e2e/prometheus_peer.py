"""A real Prometheus for end-to-end tests, and a live exporter.

`PrometheusFactory` follows the Alertmanager factory of conftest.py: it remembers
every process, logs to the test's tmp dir, appends the logs to a failure report and
sends SIGTERM at teardown. `RisingGauge` + `exporter()` serve a gauge that rises
linearly in real time, for forecasts checked on real scrapes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.conftest import get_free_port, require_binary, wait_until
from tests.e2e.conftest import (
    _child_env,
    _kill,
    _remember_log,
    _terminate,
    probe_status,
    read_tail,
)

PROM_READY_TIMEOUT_S = 5.0  # observed: 0.07-0.16 s
PROM_STOP_TIMEOUT_S = 5.0  # observed: within 3 s
FIRST_SCRAPE_TIMEOUT_S = 12.0  # observed: 5.6-5.8 s after ready


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
