"""Real peers for end-to-end tests: Alertmanager and the itsmd daemon as subprocesses.

Both are factory fixtures: a test calls `alertmanager.start(...)` / `itsmd_server.start(...)`
as often as it needs; the fixture remembers every process and stops it at teardown.
Each process writes its output to a log file in the test's tmp dir; when a test fails,
the logs of the processes it started are appended to the failure report.

HTTP here is the standard library only (urllib), with proxies disabled: everything
talks to 127.0.0.1.

`ITSMD_TEST_BIN=/usr/bin/itsmd` runs that executable instead of `python -m itsmd`
(e.g. to test an installed package).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import get_free_port, require_binary, wait_until
from tests.e2e.browser import browser as browser  # the fixture, for every e2e test
from tests.e2e.hook_peer import peer as peer  # the fixture, for every e2e test

if TYPE_CHECKING:
    from tests.e2e.prometheus_peer import PrometheusFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
ITSMD_READY_TIMEOUT_S = 10.0
ITSMD_STOP_TIMEOUT_S = 10.0  # docs/operations.md: SIGTERM stops cleanly within 10 s
AM_READY_TIMEOUT_S = 5.0
AM_STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 5.0
LOG_TAIL_CHARS = 20_000
WEBHOOK_PATH = "/api/v1/webhooks/alertmanager"

# Inherited variables that would change what a child process does.
_SCRUBBED_ENV_PREFIXES = ("ITSMD_",)
_SCRUBBED_ENV = {
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
}


# --- HTTP ---------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = HTTP_TIMEOUT_S,
) -> HttpResponse:
    """One HTTP request; any status (4xx/5xx included) comes back as an HttpResponse.

    Transport errors (connection refused, timeout) raise OSError.
    """
    all_headers = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            return HttpResponse(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(err.code, dict(err.headers.items()), err.read())


def probe_status(url: str, timeout_s: float = 1.0) -> int | None:
    """Status of GET url, or None while nothing answers."""
    try:
        return http_request("GET", url, timeout_s=timeout_s).status
    except OSError:
        return None


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic_header(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# --- payloads and metrics -------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: what Prometheus sends."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_alert(
    labels: Mapping[str, str],
    *,
    starts_at: datetime,
    ends_at: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    generator_url: str | None = None,
) -> dict[str, Any]:
    """An alert for Alertmanager's `POST /api/v2/alerts`.

    `starts_at` is required: Alertmanager stamps its own receipt time otherwise, so
    the same alert pushed twice (or to two Alertmanagers) would differ.
    """
    alert: dict[str, Any] = {"labels": dict(labels), "startsAt": rfc3339(starts_at)}
    if ends_at is not None:
        alert["endsAt"] = rfc3339(ends_at)
    if annotations:
        alert["annotations"] = dict(annotations)
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def metric_sum(exposition: str, name: str, **labels: str) -> float | None:
    """Sum of the samples called `name` whose labels include `labels`; None if none."""
    total: float | None = None
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total = (total or 0.0) + sample.value
    return total


# --- logs on failure --------------------------------------------------------------------

_PROC_LOGS = pytest.StashKey[list[tuple[str, Path]]]()


def _remember_log(request: pytest.FixtureRequest, title: str, path: Path) -> None:
    request.node.stash.setdefault(_PROC_LOGS, []).append((title, path))


def read_tail(path: Path, limit: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} chars cut ...]\n{text[-limit:]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for title, path in item.stash.get(_PROC_LOGS, []):
            report.sections.append((title, read_tail(path)))
    return report


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and not key.startswith(_SCRUBBED_ENV_PREFIXES)
    }
    env.update(extra or {})
    return env


def _terminate(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float) -> bool:
    """Send `sig` unless the process is gone; True if it exited within `timeout_s`."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


# --- Alertmanager -------------------------------------------------------------------------


@dataclass(eq=False)
class AlertmanagerProc:
    """A real Alertmanager on 127.0.0.1 whose only receiver is one webhook."""

    port: int
    cluster_port: int | None
    config_path: Path
    log_path: Path
    args: list[str]
    proc: subprocess.Popen[bytes] = field(init=False)  # set by spawn()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process (again) with the same arguments; wait until ready."""
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.config_path.parent,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"Alertmanager exited with {self.proc.returncode} before ready\n"
                    f"args: {self.args}\n--- log ---\n{self.log}"
                )
            return probe_status(f"{self.url}/-/ready") == 200

        wait_until(ready, timeout_s=AM_READY_TIMEOUT_S, what=f"Alertmanager {self.url}/-/ready")

    def restart(self) -> None:
        """Stop and start on the same port: every alert it held is gone (memory only)."""
        self.stop()
        self.spawn()

    @property
    def log(self) -> str:
        return read_tail(self.log_path)

    def push(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts, as Prometheus does."""
        resp = http_request("POST", f"{self.url}/api/v2/alerts", json_body=list(alerts))
        assert resp.status == 200, f"Alertmanager refused the alerts: {resp.status} {resp.text}"

    def resolve(
        self,
        labels: Mapping[str, str],
        *,
        starts_at: datetime | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Push `labels` with endsAt = now. Pass the firing `starts_at` to keep one episode."""
        alert: dict[str, Any] = {"labels": dict(labels), "endsAt": rfc3339(datetime.now(UTC))}
        if starts_at is not None:
            alert["startsAt"] = rfc3339(starts_at)
        if annotations:
            alert["annotations"] = dict(annotations)
        self.push([alert])

    def alerts(self) -> list[dict[str, Any]]:
        resp = http_request("GET", f"{self.url}/api/v2/alerts")
        assert resp.status == 200, resp.text
        result: list[dict[str, Any]] = resp.json()
        return result

    def metrics(self) -> str:
        resp = http_request("GET", f"{self.url}/metrics")
        assert resp.status == 200, resp.text
        return resp.text

    def notifications_failed(self) -> int:
        """Webhook notifications that failed (after retries, or not retried: 4xx)."""
        return int(self._webhook_metric("alertmanager_notifications_failed_total"))

    def notifications_ok(self) -> int:
        """Webhook requests the receiver answered with 2xx. Counted from the requests
        that finished (the latency histogram is observed once the answer is in):
        `alertmanager_notifications_total` counts a notification when it starts, so
        it would count one still in flight as delivered."""
        text = self.metrics()
        done = self._webhook_metric("alertmanager_notification_latency_seconds_count", text)
        failed = self._webhook_metric("alertmanager_notification_requests_failed_total", text)
        return int(done - failed)

    def _webhook_metric(self, name: str, text: str | None = None) -> float:
        exposition = self.metrics() if text is None else text
        return metric_sum(exposition, name, integration="webhook") or 0.0

    def wait_notified(self, at_least: int = 1, timeout_s: float = 10.0) -> int:
        """Wait until `at_least` webhook notifications succeeded; return the count."""
        return wait_until(
            lambda: (n := self.notifications_ok()) >= at_least and n,
            timeout_s=timeout_s,
            interval_s=0.1,
            what=f"{at_least} successful webhook notification(s) from Alertmanager {self.url}",
        )

    def wait_cluster_ready(self, peers: int, timeout_s: float = 5.0) -> None:
        """Wait until gossip settled with `peers` members (this one included)."""

        def settled() -> bool:
            cluster = http_request("GET", f"{self.url}/api/v2/status").json()["cluster"]
            return bool(cluster["status"] == "ready" and len(cluster.get("peers", [])) == peers)

        wait_until(settled, timeout_s=timeout_s, interval_s=0.1, what=f"cluster of {self.url}")

    def stop(self) -> int:
        """SIGTERM (Alertmanager exits in milliseconds), SIGKILL if it hangs."""
        if not _terminate(self.proc, signal.SIGTERM, AM_STOP_TIMEOUT_S):
            return _kill(self.proc)
        return self.proc.returncode


class AlertmanagerFactory:
    def __init__(self, request: pytest.FixtureRequest, base_dir: Path) -> None:
        self._request = request
        self._base_dir = base_dir
        self._started: list[AlertmanagerProc] = []

    def start(
        self,
        webhook_url: str | Sequence[str],
        *,
        bearer: str | None = None,
        basic: tuple[str, str] | None = None,
        group_by: Sequence[str] = ("alertname", "service"),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
        cluster: bool = False,
        peers: Sequence[AlertmanagerProc] = (),
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> AlertmanagerProc:
        """Start an Alertmanager that sends every group to `webhook_url` (to each of
        several, as one receiver with a webhook config per URL); wait until ready.

        `cluster=False` turns HA off (`--cluster.listen-address=`); with `cluster=True` it
        gossips on a free loopback port with `peers` (fast gossip, 1 s settle timeout).
        """
        if bearer is not None and basic is not None:
            raise ValueError("give bearer or basic, not both")
        if peers and not cluster:
            raise ValueError("peers need cluster=True")
        binary = require_binary("alertmanager", "prometheus-alertmanager", "alertmanager")
        workdir = self._base_dir / f"am-{len(self._started) + 1}"
        workdir.mkdir(parents=True)
        config_path = workdir / "am.yml"
        config_path.write_text(
            yaml.safe_dump(
                _am_config(
                    webhook_url,
                    bearer=bearer,
                    basic=basic,
                    group_by=group_by,
                    group_wait=group_wait,
                    group_interval=group_interval,
                    repeat_interval=repeat_interval,
                ),
                sort_keys=False,
            )
        )
        _amtool_check(config_path)

        port = port or get_free_port()
        cluster_port = get_free_port() if cluster else None
        args = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *_cluster_args(cluster_port, peers),
            *extra_args,
        ]
        log_path = workdir / "alertmanager.log"
        am = AlertmanagerProc(port, cluster_port, config_path, log_path, args)
        self._started.append(am)
        _remember_log(self._request, f"alertmanager {am.url} log", log_path)
        am.spawn()
        return am

    def close(self) -> None:
        for am in reversed(self._started):
            if hasattr(am, "proc"):
                am.stop()


def _am_config(
    webhook_url: str | Sequence[str],
    *,
    bearer: str | None,
    basic: tuple[str, str] | None,
    group_by: Sequence[str],
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
) -> dict[str, Any]:
    urls = [webhook_url] if isinstance(webhook_url, str) else list(webhook_url)
    webhooks: list[dict[str, Any]] = []
    for url in urls:
        webhook: dict[str, Any] = {"url": url, "send_resolved": True, "max_alerts": 0}
        if bearer is not None:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer}}
        if basic is not None:
            webhook["http_config"] = {"basic_auth": {"username": basic[0], "password": basic[1]}}
        webhooks.append(webhook)
    return {
        "route": {
            "receiver": "itsmd",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "itsmd", "webhook_configs": webhooks}],
    }


def _amtool_check(config_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        return
    result = subprocess.run(
        [amtool, "check-config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"amtool check-config failed:\n{result.stdout}{result.stderr}"


def _cluster_args(cluster_port: int | None, peers: Sequence[AlertmanagerProc]) -> list[str]:
    if cluster_port is None:
        return ["--cluster.listen-address="]
    args = [
        f"--cluster.listen-address=127.0.0.1:{cluster_port}",
        f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
        "--cluster.gossip-interval=50ms",
        "--cluster.settle-timeout=1s",
    ]
    for other in peers:
        assert other.cluster_port is not None, f"peer {other.url} was started without cluster"
        args.append(f"--cluster.peer=127.0.0.1:{other.cluster_port}")
    return args


@pytest.fixture
def alertmanager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Factory: `alertmanager.start(webhook_url, ...) -> AlertmanagerProc`."""
    factory = AlertmanagerFactory(request, tmp_path / "alertmanager")
    try:
        yield factory
    finally:
        factory.close()


# --- itsmd ------------------------------------------------------------------------------

CATCH_ALL_RULES: dict[str, Any] = {
    "incidents": [{"name": "catch-all", "match": "{}", "group_by": ["alertname"]}]
}


@dataclass(eq=False)
class ItsmdProc:
    """The daemon under test, run as `python -m itsmd run ...` on 127.0.0.1."""

    port: int
    command: list[str]
    env: dict[str, str]
    workdir: Path
    config_path: Path
    rules_dir: Path
    db_url: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"

    @property
    def log(self) -> str:
        """Everything the daemon wrote to stdout and stderr, across restarts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log_file:
            log_file.write(f"=== start #{self.starts}: {' '.join(self.command)}\n".encode())
            log_file.flush()
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout_s: float = ITSMD_READY_TIMEOUT_S) -> None:
        proc = self.proc
        assert proc is not None, "itsmd was never started"
        deadline = time.monotonic() + timeout_s
        while (status := probe_status(f"{self.url}/-/ready")) != 200:
            exited = proc.poll()
            if exited is not None or time.monotonic() >= deadline:
                why = f"exited with {exited}" if exited is not None else f"last status {status}"
                raise AssertionError(
                    f"itsmd did not become ready within {timeout_s:.0f}s ({why})\n"
                    f"command: {' '.join(self.command)}\n"
                    f"--- itsmd log ---\n{read_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        all_headers = bearer_header(token) if token is not None else {}
        all_headers.update(headers or {})
        return http_request(method, f"{self.url}{path}", json_body=json_body, headers=all_headers)

    def get(
        self, path: str, token: str | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        return self.request("GET", path, token=token, headers=headers)

    def post(
        self,
        path: str,
        json: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        return self.request("POST", path, json_body=json, token=token, headers=headers)

    def metrics(self) -> str:
        resp = self.get("/metrics")
        assert resp.status == 200, f"GET /metrics: {resp.status} {resp.text}"
        return resp.text

    def metric(self, name: str, **labels: str) -> float | None:
        """Sum of the samples of `name` with these labels in /metrics (None if absent)."""
        return metric_sum(self.metrics(), name, **labels)

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = ITSMD_STOP_TIMEOUT_S
    ) -> int:
        """Send `sig` and wait; the exit code. AssertionError (after SIGKILL) on a hang."""
        proc = self.proc
        assert proc is not None, "itsmd was never started"
        if not _terminate(proc, sig, timeout_s):
            _kill(proc)
            raise AssertionError(
                f"itsmd did not exit within {timeout_s:.0f}s of {sig.name}\n"
                f"--- itsmd log ---\n{read_tail(self.log_path)}"
            )
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL: a crash, no chance to clean up."""
        assert self.proc is not None, "itsmd was never started"
        return _kill(self.proc)

    def restart(self) -> ItsmdProc:
        """Stop (SIGTERM) if running, start again: same port, config, rules and database."""
        if self.running:
            self.stop()
        self._spawn()
        self.wait_ready()
        return self


class ItsmdFactory:
    def __init__(self, request: pytest.FixtureRequest, base_dir: Path) -> None:
        self._request = request
        self._base_dir = base_dir
        self._started: list[ItsmdProc] = []

    def start(
        self,
        *,
        rules_dir: Path | None = None,
        config: Mapping[str, Any] | None = None,
        db_url: str | None = None,
        env: Mapping[str, str] | None = None,
        migrate: bool = False,
        extra_args: Sequence[str] = (),
    ) -> ItsmdProc:
        """Start the daemon on a free port and wait until GET /-/ready answers 200.

        Defaults: a catch-all rule set, an empty config file, a SQLite file in the tmp dir.
        `migrate=True` adds `--migrate` (docs/operations.md: needed on an outdated schema; a fresh
        database gets its schema without it, as on a user's first run).
        """
        workdir = self._base_dir / f"itsmd-{len(self._started) + 1}"
        workdir.mkdir(parents=True)
        if rules_dir is None:
            rules_dir = workdir / "rules"
            rules_dir.mkdir()
            (rules_dir / "00-catch-all.yml").write_text(yaml.safe_dump(CATCH_ALL_RULES))
        if db_url is None:
            db_url = f"sqlite+aiosqlite:///{workdir}/itsmd.db"
        config_path = workdir / "itsmd.yml"
        config_path.write_text(yaml.safe_dump(dict(config or {}), sort_keys=False))

        port = get_free_port()
        itsmd_bin = os.environ.get("ITSMD_TEST_BIN")
        program = [itsmd_bin] if itsmd_bin else [sys.executable, "-m", "itsmd"]
        command = [
            *program,
            "run",
            "--config",
            str(config_path),
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            db_url,
            "--rules",
            str(rules_dir),
            *(["--migrate"] if migrate else []),
            *extra_args,
        ]
        source_roots = [str(REPO_ROOT / "daemon"), str(REPO_ROOT / "connectors")]
        inherited = os.environ.get("PYTHONPATH")
        child_env = _child_env(
            {
                "PYTHONPATH": os.pathsep.join([*source_roots, *([inherited] if inherited else [])]),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )
        server = ItsmdProc(
            port=port,
            command=command,
            env=child_env,
            workdir=workdir,
            config_path=config_path,
            rules_dir=rules_dir,
            db_url=db_url,
            log_path=workdir / "itsmd.log",
        )
        self._started.append(server)
        _remember_log(self._request, f"itsmd {server.url} log", server.log_path)
        server._spawn()
        server.wait_ready()
        return server

    def close(self) -> None:
        """Stop every daemon; one that ignores SIGTERM for 10 s is a failure (after SIGKILL)."""
        hung: list[str] = []
        for server in reversed(self._started):
            if not server.running:
                continue
            try:
                server.stop()
            except AssertionError as exc:
                hung.append(str(exc))
        if hung:
            pytest.fail("\n\n".join(hung), pytrace=False)


@pytest.fixture
def itsmd_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ItsmdFactory]:
    """Factory: `itsmd_server.start(rules_dir=..., config=..., db_url=..., env=...)`."""
    factory = ItsmdFactory(request, tmp_path / "itsmd")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def prometheus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Factory: `prometheus.start(backfill=..., scrape_targets=...) -> PrometheusProc`."""
    from tests.e2e.prometheus_peer import PrometheusFactory  # it imports this module

    factory = PrometheusFactory(request, tmp_path / "prometheus")
    try:
        yield factory
    finally:
        factory.close()
