"""Checks inside the app: real local targets, alerts through the rules into incidents,
status, availability and capacity in the API and metrics (SQLite and PostgreSQL).

Checks run when the test says (`client.run_check`), at the app's FakeClock time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.api.keys import CHECKS
from itsmd.durations import format_time, parse_time
from tests.api.api_support import ApiClient, MakeClient, alert
from tests.conftest import async_wait_until
from tests.connectors.fakes_http import Answer, FakePeer, running_peer

RULES = """\
incidents:
  - name: checks
    match: '{{alertname=~"CheckFailed|HeartbeatMissing|Capacity.*"}}'
    group_by: [check]
    title: '{{{{ labels.check }}}}: {{{{ labels.alertname }}}}'
    auto_resolve: 0s
  - name: rest
    match: '{{}}'
    group_by: [alertname]
services:
  - {{name: api, slo: 99.9}}
checks:
  - name: api-health
    type: http
    service: api
    url: {url}
    interval: 30s
    timeout: 2s
    failures_before_alert: 2
{more}"""


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(Answer(200, '{"status": "ok"}')) as p:
        yield p


async def client_for(make_client: MakeClient, peer: FakePeer, more: str = "") -> ApiClient:
    return await make_client(RULES.format(url=peer.url("/healthz"), more=more))


async def check(client: ApiClient, name: str) -> dict[str, Any]:
    body = await client.get_json("/api/v1/checks")
    found: dict[str, Any] = next(c for c in body["checks"] if c["name"] == name)
    return found


async def test_a_failing_http_check_opens_an_incident_and_recovery_resolves_it(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await client_for(make_client, peer)
    peer.answer(Answer(503, "down"), Answer(503, "down"))
    await client.run_check("api-health")
    assert await client.incidents() == []  # one failure of the two it takes
    assert (await check(client, "api-health"))["consecutive_failures"] == 1
    client.clock.advance(timedelta(seconds=30))
    await client.run_check("api-health")

    (inc,) = await client.incidents()
    assert (inc["title"], inc["status"], inc["rule"]) == (
        "api-health: CheckFailed",
        "open",
        "checks",
    )
    detail = await client.incident(inc["id"])
    (stored,) = detail["alerts"]
    assert stored["source"] == "check"
    assert stored["labels"] == {
        "alertname": "CheckFailed",
        "check": "api-health",
        "service": "api",
        "severity": "critical",
    }
    state = await check(client, "api-health")
    assert (state["up"], state["consecutive_failures"]) == (False, 2)
    assert state["last_error"] == "HTTP 503, expected 2xx"
    assert await client.metric("itsmd_check_up", check="api-health") == 0
    assert await client.metric("itsmd_check_runs_total", check="api-health", result="failure") == 2

    client.clock.advance(timedelta(seconds=30))
    await client.run_check("api-health")
    (inc,) = await client.incidents()
    assert inc["status"] == "resolved"
    assert (await check(client, "api-health"))["up"] is True
    assert await client.metric("itsmd_check_up", check="api-health") == 1

    client.clock.advance(timedelta(minutes=59))
    body = await client.get_json("/api/v1/availability")
    (service,) = body["services"]
    day = service["availability"]["1d"]
    assert service["service"] == "api"
    assert service["slo"] == 99.9
    # Down from the first failure (t=0) to the recovery (t=60s), of 60 minutes measured.
    assert day == pytest.approx(1 - 60 / 3600)
    assert service["error_budget_left"] < 1
    (per_check,) = body["checks"]
    assert per_check["check"] == "api-health"
    assert per_check["availability"]["1d"] == pytest.approx(day)


async def test_a_young_history_reports_its_measured_part_and_keeps_its_budget(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await client_for(make_client, peer)
    started = client.clock.now
    peer.answer(Answer(503), Answer(503))
    for _ in range(3):  # down from the first failure (t=0) to the recovery (t=60s)
        await client.run_check("api-health")
        client.clock.advance(timedelta(seconds=30))
    client.clock.advance(timedelta(seconds=310))  # t=400s: 60 s down of 400 s measured

    body = await client.get_json("/api/v1/availability")
    (service,) = body["services"]
    assert service["availability"]["30d"] == pytest.approx(1 - 60 / 400)
    assert service["coverage"]["30d"] == pytest.approx(400 / (30 * 86400))
    assert service["coverage"]["1d"] == pytest.approx(400 / 86400)
    assert service["measured_since"] == format_time(started)
    # 30 days at 99.9 % allow 2592 s down; 60 s are spent. A burn rate from 400 s
    # of 30 days would speak for the month on a few minutes' evidence: none yet.
    assert service["error_budget_left"] == pytest.approx(1 - 60 / 2592)
    assert service["burn_rate"] is None
    (per_check,) = body["checks"]
    assert per_check["coverage"]["30d"] == pytest.approx(400 / (30 * 86400))
    assert per_check["measured_since"] == format_time(started)

    hour = (await client.get_json("/api/v1/availability", {"window": "1h"}))["services"][0]
    assert hour["coverage"]["1h"] == pytest.approx(400 / 3600)
    assert hour["burn_rate"] is None  # under a quarter of the hour
    client.clock.advance(timedelta(seconds=500))  # t=900s: a quarter of the hour
    hour = (await client.get_json("/api/v1/availability", {"window": "1h"}))["services"][0]
    assert hour["coverage"]["1h"] == pytest.approx(0.25)
    assert hour["burn_rate"] == pytest.approx((60 / 900) / 0.001)
    assert hour["error_budget_left"] == pytest.approx(1 - 60 / 3.6)  # 3.6 s a 99.9 % hour


async def test_downtime_in_a_maintenance_window_is_not_held_against_the_objective(
    make_client: MakeClient, peer: FakePeer
) -> None:
    window = """\
maintenance:
  - name: api-change
    match: '{check="api-health"}'
    start: 2026-11-28T02:00:00Z
    end: 2026-11-28T04:00:00Z
    action: suppress
"""
    client = await client_for(make_client, peer, window)
    peer.answer(Answer(503), Answer(503))
    for _ in range(2):
        await client.run_check("api-health")
        client.clock.advance(timedelta(seconds=30))
    await client.run_check("api-health")  # up again
    client.clock.advance(timedelta(minutes=10))
    body = await client.get_json("/api/v1/availability", {"window": "1d"})
    (service,) = body["services"]
    assert service["availability"]["1d"] == 1.0
    assert service["maintenance_s"]["1d"] == 60
    assert await client.incidents() == []  # the window suppressed the alert too


async def test_tcp_and_dns_checks_against_local_targets(
    make_client: MakeClient, peer: FakePeer
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port = closed.getsockname()[1]
        more = f"""\
  - {{name: open-port, type: tcp, target: "{peer.base_url.split("//")[1]}", timeout: 1s}}
  - {{name: closed-port, type: tcp, target: "127.0.0.1:{port}", timeout: 1s}}
  - {{name: resolver, type: dns, host: localhost, expect: [127.0.0.1], timeout: 2s}}
"""
        client = await client_for(make_client, peer, more)
        for name in ("open-port", "closed-port", "resolver"):
            await client.run_check(name)
    assert (await check(client, "open-port"))["up"] is True
    assert (await check(client, "resolver"))["up"] is True
    closed_state = await check(client, "closed-port")
    assert closed_state["up"] is False
    assert "refused" in closed_state["last_error"]
    (inc,) = await client.incidents()
    assert inc["title"] == "closed-port: CheckFailed"


async def test_a_heartbeat_fires_when_the_watchdog_stops_and_resolves_when_it_returns(
    make_client: MakeClient, peer: FakePeer
) -> None:
    more = (
        "  - {name: watchdog, type: heartbeat, interval: 5m, match: '{alertname=\"Watchdog\"}'}\n"
    )
    client = await client_for(make_client, peer, more)
    await client.run_check("watchdog")  # starts the clock
    await client.webhook(alert("Watchdog", starts_at=client.clock.now))
    client.clock.advance(timedelta(minutes=4))
    await client.run_check("watchdog")
    assert (await check(client, "watchdog"))["up"] is not False

    client.clock.advance(timedelta(minutes=2))  # six minutes of silence
    await client.run_check("watchdog")
    missing = [i for i in await client.incidents() if i["rule"] == "checks"]
    assert [i["title"] for i in missing] == ["watchdog: HeartbeatMissing"]
    assert (await check(client, "watchdog"))["up"] is False

    client.clock.advance(timedelta(minutes=1))
    resent = alert("Watchdog", starts_at=client.clock.now)
    await client.webhook(resent)
    assert client.app is not None
    await _settle(client)
    (inc,) = [i for i in await client.incidents() if i["rule"] == "checks"]
    assert inc["status"] == "resolved"


async def _settle(client: ApiClient) -> None:
    """Let the heartbeat observation the ingest started finish."""
    from tests.conftest import async_wait_until

    async def resolved() -> bool:
        incs = [i for i in await client.incidents() if i["rule"] == "checks"]
        return all(i["status"] == "resolved" for i in incs)

    await async_wait_until(resolved, what="HeartbeatMissing to resolve")


async def test_a_disk_check_reports_capacity_and_alerts_on_its_threshold(
    make_client: MakeClient, peer: FakePeer, tmp_path: Path
) -> None:
    more = f"""\
  - name: scratch
    type: disk
    path: "{tmp_path}"
    interval: 1m
    warn: {{below: 1}}
"""
    client = await client_for(make_client, peer, more)
    await client.run_check("scratch")
    body = await client.get_json("/api/v1/capacity")
    (entry,) = body["capacity"]
    assert entry["check"] == "scratch"
    assert entry["labels"] == {"path": str(tmp_path)}
    assert 0 < entry["value"] <= 1
    assert entry["threshold"] == {"below": 1}
    (inc,) = await client.incidents()
    assert inc["title"] == "scratch: CapacityThreshold"


async def test_a_disk_trend_goes_on_after_a_restart(
    make_client: MakeClient, peer: FakePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samples a disk check stored survive the daemon: the next daemon on the same
    store forecasts from its first run instead of waiting a quarter of `over` again."""
    from itsmd.checks import probes

    ratio = [0.5]

    def filling(path: Any) -> Any:
        ratio[0] -= 0.01  # a hundredth of the disk every run
        return probes.Probe(True, 0.001), ratio[0]

    monkeypatch.setattr(probes, "probe_disk", filling)
    more = f"""\
  - name: data
    type: disk
    path: "{tmp_path}"
    interval: 5m
    critical: {{below: 0.05}}
    forecast: {{over: 1h, horizon: 30d}}
"""
    first = await client_for(make_client, peer, more)
    for _ in range(6):  # 25 minutes: over a quarter of the hour, 6 samples
        await first.run_check("data")
        first.clock.advance(timedelta(minutes=5))
    (entry,) = (await first.get_json("/api/v1/capacity"))["capacity"]
    assert entry["forecast_ready"] is True
    assert len(entry["samples"]) == 6

    second = await client_for(make_client, peer, more)  # the same store, a new daemon
    await second.run_check("data")
    (entry,) = (await second.get_json("/api/v1/capacity"))["capacity"]
    assert (entry["forecast_ready"], entry["forecast_reason"]) == (True, None)
    assert len(entry["samples"]) == 7
    assert entry["exhausts_at"] is not None


def matrix(samples: list[tuple[float, float]]) -> Answer:
    """A Prometheus query_range answer: one series of a volume's free ratio."""
    result = [{"metric": {"mountpoint": "/data"}, "values": [[t, f"{v}"] for t, v in samples]}]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return Answer(200, json.dumps(body), content_type="application/json")


async def test_a_prometheus_forecast_waits_for_a_quarter_of_its_window(
    make_client: MakeClient, peer: FakePeer
) -> None:
    from itsmd.config import parse_config

    async with running_peer() as prometheus:
        text = f"connectors:\n  prometheus: {{url: '{prometheus.url()}', timeout: 1s}}\n"
        connectors = parse_config(text, "itsmd.yml", {}).connectors
        more = """\
  - name: volume
    type: prometheus
    query: 'free_ratio'
    interval: 1m
    critical: {below: 0.05}
    forecast: {over: 6h, horizon: 1d}
"""
        client = await make_client(
            RULES.format(url=peer.url("/healthz"), more=more), connectors=connectors
        )
        now = client.clock.now.timestamp()

        def falling(minutes: int, every_s: int) -> list[tuple[float, float]]:
            # 31 % free, losing 0.002 a minute: the critical 0.05 in 130 minutes.
            n = minutes * 60 // every_s
            return [(now - every_s * i, 0.31 + 0.002 * every_s * i / 60) for i in range(n + 1)]

        # A series Prometheus has held for a minute (a new volume, a new Prometheus).
        prometheus.answer(matrix(falling(1, 10)))
        await client.run_check("volume")
        (entry,) = (await client.get_json("/api/v1/capacity"))["capacity"]
        assert (entry["value"], entry["exhausts_at"]) == (0.31, None)
        assert entry["forecast_ready"] is False
        assert entry["forecast_since"] == format_time(client.clock.now - timedelta(minutes=1))
        assert entry["forecast_reason"].startswith("7 samples over 1m: ")
        assert await client.incidents() == []

        prometheus.answer(matrix(falling(120, 90)))  # two hours of its six
        await client.run_check("volume")
        (entry,) = (await client.get_json("/api/v1/capacity"))["capacity"]
        assert entry["exhausts_at"] is not None
        assert abs(parse_time(entry["exhausts_at"]).timestamp() - (now + 130 * 60)) < 1
        assert (entry["forecast_ready"], entry["forecast_reason"]) == (True, None)
        (inc,) = await client.incidents()
        assert inc["title"] == "volume: CapacityForecast"


async def test_removing_a_check_resolves_what_it_fired(
    make_client: MakeClient, peer: FakePeer
) -> None:
    client = await client_for(make_client, peer)
    peer.answer(Answer(503), Answer(503))
    await client.run_check("api-health")
    await client.run_check("api-health")
    assert [i["status"] for i in await client.incidents()] == ["open"]
    assert client.app is not None
    changed, removed = await client.app[CHECKS].apply([])
    assert (changed, removed) == ([], ["api-health"])
    assert [i["status"] for i in await client.incidents()] == ["resolved"]


async def test_prometheus_down_is_a_failing_check_not_a_crash(
    make_client: MakeClient, peer: FakePeer
) -> None:
    from itsmd.config import parse_config

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        text = f"connectors:\n  prometheus: {{url: '{url}', timeout: 1s}}\n"
        connectors = parse_config(text, "itsmd.yml", {}).connectors
        more = """\
  - name: queue
    type: prometheus
    query: 'sum(queue_depth)'
    interval: 1m
    critical: {above: 100}
"""
        client = await make_client(
            RULES.format(url=peer.url("/healthz"), more=more), connectors=connectors
        )
        await client.run_check("queue")
    state = await check(client, "queue")
    assert state["up"] is False
    assert state["last_error"] == f"Prometheus at {url}: connection refused"
    (inc,) = await client.incidents()
    assert inc["title"] == "queue: CheckFailed"


async def test_a_reload_adds_and_removes_checks(
    make_client: MakeClient, peer: FakePeer, tmp_path: Path
) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    first = RULES.format(url=peer.url("/healthz"), more="")
    client = await make_client(first, rules=(str(rules_dir),))
    assert [c["name"] for c in (await client.get_json("/api/v1/checks"))["checks"]] == [
        "api-health"
    ]
    more = "  - {name: resolver, type: dns, host: localhost, timeout: 2s}\n"
    (rules_dir / "rules.yml").write_text(
        RULES.format(url=peer.url("/healthz"), more=more).replace(
            "  - name: api-health", "  - name: api-v2"
        )
    )
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    await _checks_become(client, ["api-v2", "resolver"])
    await client.run_check("resolver")
    assert (await check(client, "resolver"))["up"] is True


async def _checks_become(client: ApiClient, names: list[str]) -> None:
    from tests.conftest import async_wait_until

    assert client.app is not None
    runner = client.app[CHECKS]

    async def listed() -> bool:
        body = await client.get_json("/api/v1/checks")
        running = [s.name for s in runner.specs]
        return [c["name"] for c in body["checks"]] == running == names

    await async_wait_until(listed, what=f"checks {names} listed and running")


async def test_a_reload_during_a_run_keeps_what_the_run_found(
    make_client: MakeClient, peer: FakePeer
) -> None:
    import asyncio

    from tests.api.conftest import rule_set

    client = await client_for(make_client, peer)
    assert client.app is not None
    runner = client.app[CHECKS]
    peer.answer(Answer(503), Answer(503, hang=True))
    await client.run_check("api-health")
    running = asyncio.create_task(client.run_check("api-health"))
    await async_wait_until(lambda: len(peer.seen) == 2, what="the second probe under way")
    slower = RULES.format(url=peer.url("/healthz"), more="").replace("30s", "1m")
    applying = asyncio.create_task(runner.apply(rule_set(slower).checks))
    peer.release()  # the hanging probe answers 503: the second failure opens an incident
    await running
    assert await applying == (["api-health"], [])
    assert [i["status"] for i in await client.incidents()] == ["open"]

    await client.run_check("api-health")  # up again: the changed check knew it fired
    assert [i["status"] for i in await client.incidents()] == ["resolved"]
    assert (await check(client, "api-health"))["consecutive_failures"] == 0


async def test_an_availability_change_the_store_missed_is_stored_with_the_next_run(
    make_client: MakeClient, peer: FakePeer
) -> None:
    from itsmd.api.keys import HTTP
    from itsmd.checks.runner import CheckRunner
    from itsmd.store.engine import StoreUnavailable

    client = await client_for(make_client, peer)
    assert client.app is not None
    runtime = client.runtime
    assert runtime.writer is not None
    assert runtime.db is not None
    writes = 0

    async def flaky(work: Any) -> Any:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise StoreUnavailable("database is locked")
        assert runtime.writer is not None
        return await runtime.writer.run(work)

    runner = CheckRunner(
        submit=runtime.writer.ingest,
        write=flaky,
        read=runtime.db.read,
        rules=lambda: runtime.rules,
        http=client.app[HTTP],
        prometheus=lambda: None,
        clock=runtime.clock,
        metrics=runtime.metrics,
    )
    await runner.load(runtime.rules.checks, [])
    peer.answer(Answer(503), Answer(503))
    await runner.run("api-health")
    client.clock.advance(timedelta(seconds=30))
    await runner.run("api-health")  # down since the first failure: not stored
    client.clock.advance(timedelta(seconds=30))
    await runner.run("api-health")  # up: both changes stored now
    client.clock.advance(timedelta(minutes=59))
    body = await client.get_json("/api/v1/availability")
    (per_check,) = body["checks"]
    assert per_check["availability"]["1d"] == pytest.approx(1 - 60 / 3600)


async def test_a_disk_probe_that_hangs_is_not_started_again_until_it_returns(
    make_client: MakeClient, peer: FakePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from itsmd.checks import probes

    released, calls = threading.Event(), []
    real = probes.probe_disk

    def hung_mount(path: Any) -> Any:
        calls.append(path)
        released.wait(30)
        return real(path)

    monkeypatch.setattr(probes, "probe_disk", hung_mount)
    more = f"""\
  - name: nfs
    type: disk
    path: "{tmp_path}"
    interval: 1m
    timeout: 100ms
    warn: {{below: 0}}
"""
    client = await client_for(make_client, peer, more)
    await client.run_check("nfs")
    assert (await check(client, "nfs"))["last_error"] == "timed out after 0.1s"
    await client.run_check("nfs")
    assert (await check(client, "nfs"))["last_error"] == (
        f"{tmp_path}: the previous probe has not returned"
    )
    assert len(calls) == 1
    released.set()
    await async_wait_until(lambda: _probe_returned(client), what="the hung probe to return")
    await client.run_check("nfs")
    assert (await check(client, "nfs"))["up"] is True
    assert len(calls) == 2


async def test_hung_mounts_never_keep_another_disk_check_waiting(
    make_client: MakeClient, peer: FakePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    from itsmd.checks import probes

    released, real = threading.Event(), probes.probe_disk

    def some_hung(path: Any) -> Any:
        if Path(path).name.startswith("hung"):
            released.wait(30)
        return real(path)

    monkeypatch.setattr(probes, "probe_disk", some_hung)
    for i in range(6):
        (tmp_path / f"hung{i}").mkdir()
    disks = [(f"nfs{i}", tmp_path / f"hung{i}") for i in range(6)] + [("local", tmp_path)]
    more = "".join(
        f"  - {{name: {name}, type: disk, path: '{path}', interval: 1m, timeout: 200ms,"
        " warn: {below: 0}}\n"
        for name, path in disks
    )
    client = await client_for(make_client, peer, more)
    try:
        await asyncio.gather(*(client.run_check(f"nfs{i}") for i in range(6)))
        await client.run_check("local")
        assert (await check(client, "local"))["up"] is True
        assert (await check(client, "nfs5"))["last_error"] == "timed out after 0.2s"
    finally:
        released.set()


def _probe_returned(client: ApiClient) -> bool:
    assert client.app is not None
    statvfs = client.app[CHECKS]._checks["nfs"].statvfs
    return statvfs is not None and statvfs.done()
