"""Runs the checks of the rule files on the scheduler (docs/rules.md, "How checks run").

Each check is one APScheduler job: its interval, a stable first-run offset and
jitter spread the load, `max_instances=1` keeps a slow check from overlapping
itself, and every probe is bounded by its timeout, so a hanging target delays
nothing else. Results go through the pure state machine (`checkstate`); the
alerts it makes enter the normal correlation path through the writer, and the
status and availability changes are stored. With several replicas only the
holder of the `checks` lease runs checks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import aiohttp
from sqlalchemy import Connection

from itsmd.checks import probes
from itsmd.checks.availability import State, service_state
from itsmd.checks.spec import (
    CheckSpec,
    CheckType,
    DiskProbe,
    DnsProbe,
    HeartbeatProbe,
    HttpProbe,
    PrometheusProbe,
    TcpProbe,
)
from itsmd.checks.state import (
    CHECK_FAILED,
    CheckState,
    ProbeResult,
    availability_change,
    beats,
    capacity_entry,
    capacity_series,
    heartbeat_due,
    observe,
    orphans,
    restore,
    retire,
    step,
    stored_samples,
)
from itsmd.correlation.rules import RuleSet
from itsmd.models import Alert
from itsmd.runtime.metrics import Metrics
from itsmd.store import checkstore
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
Submit = Callable[[Sequence[Alert]], Awaitable[object]]
Write = Callable[[Callable[[Connection, datetime], Any]], Awaitable[Any]]
Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]
HEARTBEAT_TICK_S = 5.0  # how often a heartbeat's silence is measured (at most)
MAX_JITTER_S = 5.0


class Series(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def samples(self) -> Sequence[tuple[float, float]]: ...


class Query(Protocol):
    """What a prometheus check needs of a Prometheus client (`itsmd_connectors`)."""

    async def query(self, expr: str, at: datetime | None = None) -> Sequence[Series]: ...

    async def query_range(
        self, expr: str, start: datetime, end: datetime, step_s: float
    ) -> Sequence[Series]: ...


@dataclass
class _Check:
    spec: CheckSpec
    state: CheckState
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # disk trend
    recorded: State = State.UNKNOWN  # for availability (down in a window: maintenance)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    statvfs: concurrent.futures.Future[Any] | None = None  # a disk probe's thread
    unstored: list[tuple[str, datetime, State]] = field(default_factory=list)  # changes


class CheckRunner:
    def __init__(
        self,
        *,
        submit: Submit,
        write: Write,
        read: Read,
        rules: Callable[[], RuleSet],
        http: Callable[[], aiohttp.ClientSession],
        prometheus: Callable[[], Query | None],
        clock: Clock,
        metrics: Metrics,
        leader: bool = True,
    ) -> None:
        """`leader`: whether this replica runs the checks from the start (a sole
        writer does; replicas wait for the lease)."""
        self._submit, self._write, self._read, self._rules = submit, write, read, rules
        self._http, self._prometheus = http, prometheus
        self._clock, self._metrics = clock, metrics
        self._checks: dict[str, _Check] = {}
        self._retiring: list[Alert] = []  # resolutions of removed checks not stored yet
        self.leader = leader

    @property
    def watches_heartbeats(self) -> bool:
        return any(c.spec.type is CheckType.HEARTBEAT for c in self._checks.values())

    @property
    def specs(self) -> list[CheckSpec]:
        return [c.spec for c in self._checks.values()]

    # ---- the set of checks

    async def load(self, specs: Sequence[CheckSpec], firing: Iterable[Alert]) -> None:
        """At start, and on taking the lead from another replica: the checks, with
        what the store still has firing of them. What removed checks still fire is
        resolved now by a leader, else once it leads (`retire_removed`)."""
        now, alerts = self._clock(), list(firing)
        self._checks = {}
        for spec in specs:
            state = restore(spec, alerts, now)
            recorded = State.UNKNOWN if state.up is None else State.UP if state.up else State.DOWN
            self._checks[spec.name] = _Check(spec, state, recorded=recorded)
        await self._resume_trends(now)
        self._retiring = orphans(specs, alerts, now)
        await self.retire_removed()

    async def _resume_trends(self, now: datetime) -> None:
        """Disk trends go on from the samples the last run stored (up to
        CHART_SAMPLES of them), so a restart does not start a forecast again."""
        try:
            stored = await self._read(checkstore.statuses)
        except StoreUnavailable as exc:
            log.warning("disk trends start again: %s", exc)
            return
        for status in stored:
            check = self._checks.get(status.name)
            p = check.spec.probe if check else None
            if check is None or not isinstance(p, DiskProbe) or p.capacity.forecast is None:
                continue
            since = now.timestamp() - p.capacity.forecast.over.total_seconds()
            for entry in status.capacity:
                if entry.get("labels") == {"path": p.path}:
                    check.samples.extend(stored_samples(entry, since, now.timestamp()))

    async def apply(self, specs: Sequence[CheckSpec]) -> tuple[list[str], list[str]]:
        """After a reload: new checks start, changed ones keep their state, removed
        ones resolve what they fire. Returns (added or changed, removed)."""
        wanted = {s.name: s for s in specs}
        removed = [name for name in self._checks if name not in wanted]
        changed = [
            s.name
            for s in specs
            if self._checks.get(s.name, None) is None or self._checks[s.name].spec != s
        ]
        for name in removed:
            gone = self._checks.pop(name)
            async with gone.lock:  # a run in progress finishes first
                self._retiring += retire(gone.state, self._clock())
            self._metrics.forget_check(name)
        await self.retire_removed()
        for name in changed:
            old = self._checks.get(name)
            if old is None or old.spec.type is not wanted[name].type:
                self._checks[name] = _Check(wanted[name], CheckState())
                continue
            async with old.lock:  # changed in place: a run in progress keeps its result
                if old.spec.probe != wanted[name].probe:
                    old.samples.clear()
                old.spec = wanted[name]
        self._checks = {name: self._checks[name] for name in wanted}
        keep = list(wanted)
        await self._store(lambda conn, _: checkstore.forget_statuses(conn, keep))
        return changed, removed

    # ---- one run

    async def run(self, name: str) -> None:
        """One run of a check (a scheduler job); nothing here may raise."""
        check = self._checks.get(name)
        if check is None or not self.leader:
            return
        await self.retire_removed()
        async with check.lock:
            if self._checks.get(name) is not check:
                return  # removed or replaced while this run waited
            try:
                await self._run(check)
            except Exception:
                log.exception("check %s failed to run", name)

    async def retire_removed(self) -> None:
        """Resolve what removed checks still fire; kept to try again if not stored.
        Only the leader does: a standby's rules may be older or newer than the
        leader's (a rolling reload), and what it knows of their state is stale."""
        if not self.leader:
            return
        retiring, self._retiring = self._retiring, []
        if retiring and not await self._send(retiring):
            self._retiring = retiring + self._retiring

    async def _run(self, check: _Check) -> None:
        spec, now = check.spec, self._clock()
        if spec.type is CheckType.HEARTBEAT:
            await self._beats_elsewhere(check)
            new, alerts = heartbeat_due(spec, check.state, now)
            await self._commit(check, new, alerts, None)
            return
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(self._probe(check, now), spec.timeout.total_seconds())
        except TimeoutError:
            took = time.perf_counter() - started
            result = ProbeResult(False, took, f"timed out after {spec.timeout.total_seconds():g}s")
        new, alerts = step(spec, check.state, result, now)
        self._metrics.check_duration.labels(spec.name).observe(result.duration_s)
        self._metrics.check_runs.labels(spec.name, "success" if result.ok else "failure").inc()
        await self._commit(check, new, alerts, result)

    async def observe(self, alerts: Iterable[Alert]) -> None:
        """Alerts that arrived: the heartbeats they keep alive (called after ingest).
        Stored for the replica that runs the checks; applied here if it is this one."""
        arrived, now = list(alerts), self._clock()
        beaten = [
            c
            for c in self._checks.values()
            if c.spec.type is CheckType.HEARTBEAT and any(beats(c.spec, a) for a in arrived)
        ]
        if not beaten:
            return
        names = [c.spec.name for c in beaten]
        await self._store(lambda conn, _: checkstore.saw_heartbeats(conn, names, now))
        for check in beaten if self.leader else ():
            async with check.lock:
                new, sent = observe(check.state, now)
                await self._commit(check, new, sent, None)

    async def _beats_elsewhere(self, check: _Check) -> None:
        """Beats other replicas received (or this one, before it led) count too."""
        name = check.spec.name
        try:
            seen = await self._read(lambda conn: checkstore.heartbeat_seen(conn, name))
        except StoreUnavailable as exc:
            log.warning("heartbeat %s: last beat not read: %s", name, exc)
            return
        last = check.state.last_seen
        if seen is not None and (last is None or seen > last):
            new, sent = observe(check.state, seen)
            await self._commit(check, new, sent, None)

    async def _commit(
        self, check: _Check, new: CheckState, alerts: list[Alert], result: ProbeResult | None
    ) -> None:
        """Send the alerts, then store status and availability; the state moves on
        only once the alerts are stored, so a store outage repeats the decision."""
        if alerts and not await self._send(alerts):
            return
        old, check.state = check.state, new
        spec, change = check.spec, availability_change(old, new)
        if new.up is not None:
            self._metrics.check_up.labels(spec.name).set(1 if new.up else 0)
        self._capacity_metric(spec, result)
        if change is not None:
            self._log_change(spec, new, change[1])
        status = self._status(check, result)
        state = self._maintained(spec, change)
        if state is not None:
            check.recorded = state[1]
            check.unstored.append((f"check:{spec.name}", *state))
            service = self._service_state(spec.service)
            if spec.service is not None and service is not None:
                check.unstored.append((f"service:{spec.service}", state[0], service))
        changes = list(check.unstored)  # kept to try again while the store is down

        def work(conn: Connection, _: datetime) -> None:
            checkstore.save_status(conn, status)
            for subject, at, to in changes:
                checkstore.record_change(conn, subject, at, to)

        if await self._store(work):
            check.unstored.clear()

    def _maintained(
        self, spec: CheckSpec, change: tuple[datetime, State] | None
    ) -> tuple[datetime, State] | None:
        """Downtime inside a maintenance window is recorded as maintenance."""
        if change is None or change[1] is not State.DOWN:
            return change
        labels = {
            "alertname": CHECK_FAILED,
            "check": spec.name,
            "severity": spec.severity,
            **({"service": spec.service} if spec.service else {}),
            **spec.labels,
        }
        rules = self._rules()
        if not rules.maintenance:
            return change
        for action in {w.action for w in rules.maintenance}:
            if rules.window(labels, change[0], action) is not None:
                return change[0], State.MAINTENANCE
        return change

    def _service_state(self, service: str | None) -> State | None:
        if service is None:
            return None
        return service_state(c.recorded for c in self._checks.values() if c.spec.service == service)

    def _status(self, check: _Check, result: ProbeResult | None) -> checkstore.Status:
        s, spec = check.state, check.spec
        capacity = [capacity_entry(spec, v) for v in result.series] if result else []
        if result is None and spec.capacity is not None:
            capacity = []
        return checkstore.Status(
            name=spec.name,
            type=spec.type.value,
            service=spec.service,
            up=s.up,
            last_run=s.last_run,
            last_error=s.last_error or None,
            consecutive_failures=s.consecutive_failures,
            duration_s=result.duration_s if result else None,
            capacity=capacity,
        )

    def _capacity_metric(self, spec: CheckSpec, result: ProbeResult | None) -> None:
        if result is None or spec.capacity is None:
            return
        now = self._clock()
        soonest = min((v.exhausts_at for v in result.series if v.exhausts_at), default=None)
        gauge = self._metrics.capacity_exhaustion
        if soonest is None:
            gauge.labels(spec.name).set(math.inf)
        else:
            gauge.labels(spec.name).set(max((soonest - now).total_seconds(), 0.0))

    def _log_change(self, spec: CheckSpec, state: CheckState, to: State) -> None:
        if to is State.DOWN:
            log.warning("check %s is down: %s", spec.name, state.last_error)
        else:
            log.info("check %s is up again", spec.name)

    async def _send(self, alerts: Sequence[Alert]) -> bool:
        if not alerts:
            return True
        try:
            await self._submit(alerts)
        except StoreUnavailable as exc:
            log.warning("could not store %d check alerts: %s", len(alerts), exc)
            return False
        return True

    async def _store(self, work: Callable[[Connection, datetime], Any]) -> bool:
        try:
            await self._write(work)
        except StoreUnavailable as exc:
            log.warning("could not store check results: %s", exc)
            return False
        return True

    # ---- probes: I/O, each bounded by the check's timeout

    async def _probe(self, check: _Check, now: datetime) -> ProbeResult:
        spec, p = check.spec, check.spec.probe
        timeout_s = spec.timeout.total_seconds()
        if isinstance(p, HttpProbe):
            r = await probes.probe_http(
                self._http(),
                p.url,
                method=p.method,
                headers=p.headers,
                expect_status=p.expect_status,
                body_regex=p.body_regex,
                max_latency_s=p.max_latency.total_seconds() if p.max_latency else None,
                timeout_s=timeout_s,
                want_cert=p.tls_expiry_warning is not None,
            )
        elif isinstance(p, TcpProbe):
            r = await probes.probe_tcp(p.host, p.port, timeout_s)
        elif isinstance(p, DnsProbe):
            r = await probes.probe_dns(p.host, timeout_s, expect=p.expect, family=p.record)
        elif isinstance(p, DiskProbe):
            return await self._disk(check, p, now)
        elif isinstance(p, PrometheusProbe):
            return await self._query(spec, p, now)
        else:
            assert isinstance(p, HeartbeatProbe)
            raise AssertionError("heartbeats are not probed")
        return ProbeResult(r.ok, r.duration_s, r.error, r.cert_not_after)

    async def _disk(self, check: _Check, p: DiskProbe, now: datetime) -> ProbeResult:
        if check.statvfs is not None and not check.statvfs.done():
            return ProbeResult(False, 0.0, f"{p.path}: the previous probe has not returned")
        check.statvfs = _on_own_thread(probes.probe_disk, p.path)
        r, ratio = await asyncio.wrap_future(check.statvfs)
        if not r.ok:
            return ProbeResult(False, r.duration_s, r.error)
        samples, over = check.samples, p.capacity.forecast.over if p.capacity.forecast else None
        samples.append((now.timestamp(), ratio))
        while (
            over is not None and samples and samples[0][0] < now.timestamp() - over.total_seconds()
        ):
            samples.popleft()
        if over is None:
            samples = deque([samples[-1]])
            check.samples = samples
        series = capacity_series(p.capacity, {"path": p.path}, list(samples), now)
        return ProbeResult(True, r.duration_s, series=(series,))

    async def _query(self, spec: CheckSpec, p: PrometheusProbe, now: datetime) -> ProbeResult:
        client = self._prometheus()
        if client is None:
            return ProbeResult(False, 0.0, "connectors.prometheus is not configured")
        started = time.perf_counter()
        forecast = p.capacity.forecast
        try:
            if forecast is None:
                found = await client.query(p.query, now)
            else:
                step_s = max(forecast.over.total_seconds() / 240, 1.0)
                found = await client.query_range(p.query, now - forecast.over, now, step_s)
        except Exception as exc:  # noqa: BLE001 - PrometheusError and whatever the client met
            return ProbeResult(False, time.perf_counter() - started, str(exc))
        series = tuple(
            capacity_series(p.capacity, s.labels, s.samples, now) for s in found if s.samples
        )
        return ProbeResult(True, time.perf_counter() - started, series=series)


def _on_own_thread(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
    """Run `fn` on a thread of its own. statvfs on a hung mount never returns: a
    shared pool would fill with hung calls and keep healthy paths waiting, and a
    check starts no probe while its last one hangs, so threads stay one per check."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting check
            future.set_exception(exc)

    threading.Thread(target=run, name="itsmd-disk", daemon=True).start()
    return future


def schedule_args(spec: CheckSpec, now: datetime) -> Mapping[str, Any]:
    """How APScheduler runs a check: its interval (heartbeats: a tick to measure the
    silence), a first run spread over one interval, some jitter, never overlapping."""
    interval = spec.interval.total_seconds()
    if spec.type is CheckType.HEARTBEAT:
        interval = min(HEARTBEAT_TICK_S, interval / 2)
    return {
        "seconds": interval,
        "jitter": min(interval / 10, MAX_JITTER_S),
        "next_run_time": now + timedelta(seconds=spec.offset_s % interval),
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": max(int(interval), 1),
    }
