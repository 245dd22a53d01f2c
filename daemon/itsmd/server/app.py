"""The composition root: builds the application from settings, and nothing else does.

Connectors are imported here only; the core knows them through `Source`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from itsmd import console
from itsmd.api import auth, operations, ops, routes
from itsmd.api.errors import errors_middleware
from itsmd.api.keys import CHECKS, HTTP, OUTBOX, RECONCILE, RUNTIME
from itsmd.checks.jobs import CheckJobs
from itsmd.checks.runner import CheckRunner
from itsmd.config import Overrides, Settings
from itsmd.correlation.rules import RuleSet, load_rules, rule_files
from itsmd.models import Alert
from itsmd.notify.config import AlertmanagerPeers, build_sink
from itsmd.notify.connector import SinkEnv, installed_kinds
from itsmd.notify.worker import OutboxWorker, SinkRunner
from itsmd.runtime.hotstate import CurrentIncidents
from itsmd.runtime.housekeeping import RuleWatch, mark_sla_breaches, sweep_holds
from itsmd.runtime.httpclient import HttpClient
from itsmd.runtime.ingestproc import ProcessBatches, Spec
from itsmd.runtime.metrics import Metrics
from itsmd.runtime.reconcile import Reconciliation
from itsmd.runtime.retention import Retention
from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import Writer
from itsmd.server.serve import request_clock
from itsmd.sources import SourceRoute
from itsmd.store import checkstore, repo
from itsmd.store.engine import Database, StoreUnavailable
from itsmd.store.migrate import SchemaState, head_revision, schema_state, upgrade
from itsmd_connectors.alertmanager import AlertmanagerSource
from itsmd_connectors.alertmanager_api import AlertmanagerAPI
from itsmd_connectors.generic import GenericSource
from itsmd_connectors.prometheus import PrometheusClient

CHECK_JOBS = web.AppKey("check_jobs", CheckJobs)
RETENTION = web.AppKey("retention", Retention)

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
BODY_CEILING = 64 * 1024 * 1024  # hard cap; limits.max_body is checked per request
SWEEP_INTERVAL = timedelta(seconds=1)
SLA_CLOCK_INTERVAL = timedelta(seconds=10)  # a breach is marked at most this late
READY_PROBE_INTERVAL = timedelta(seconds=2)  # the readiness probe (docs/operations.md)

SOURCES = (
    SourceRoute("/api/v1/webhooks/alertmanager", AlertmanagerSource()),
    SourceRoute("/api/v1/alerts", GenericSource()),
)


class StartupError(Exception):
    """A problem that stops the daemon from starting, said in one paragraph."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: Settings,
    *,
    overrides: Overrides | None = None,
    clock: Clock = utc_now,
    migrate: bool = False,
    rules: RuleSet | None = None,
    sweep_interval: timedelta = SWEEP_INTERVAL,
    notify_poll_s: float = 1.0,
    run_checks: bool = True,
) -> web.Application:
    """Raises LoadError when the rules do not validate."""
    metrics = Metrics()
    runtime = Runtime(
        settings,
        rules or load_rules(rule_files(settings.rules)),
        metrics,
        clock,
        overrides or Overrides(),
    )
    runtime.record_rules_loaded()
    app = web.Application(
        middlewares=[request_clock, errors_middleware, auth.auth_middleware],
        client_max_size=BODY_CEILING,
    )
    app[RUNTIME] = runtime
    app[auth.THROTTLE] = auth.FailureThrottle()
    app[auth.REFUSALS] = auth.RefusalLog(auth.log)
    operations.mount_sources(app, SOURCES)
    routes.register(app, operations.API)
    routes.register(app, console.OPERATIONS)
    console.setup(app)
    app[OUTBOX] = OutboxWorker(
        lambda: runtime.settings.connectors.routes,
        lambda: runtime.settings.base_url,
        clock,
        metrics,
        poll_s=notify_poll_s,
    )
    app[HTTP] = HttpClient()
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_store_ctx(migrate))
    app.cleanup_ctx.append(_readiness_ctx)
    app.cleanup_ctx.append(_notify_ctx)
    app.cleanup_ctx.append(_checks_ctx(run_checks))
    app.cleanup_ctx.append(_reconcile_ctx)
    app.cleanup_ctx.append(_scheduler_ctx(sweep_interval))
    app.cleanup_ctx.append(_retention_ctx)
    return app


def _store_ctx(migrate: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        s = runtime.settings
        db = Database(s.database, busy_timeout=s.busy_timeout, synchronous=s.sqlite_synchronous)
        # A SQLite file's batches run in a process of their own (the default). It
        # starts beside the schema check: it opens the file at its first batch.
        process: ProcessBatches | None = None
        starting: asyncio.Task[None] | None = None
        if s.ingest_process and db.sqlite_file is not None:
            spec = Spec(s.database, s.busy_timeout, s.sqlite_synchronous, log.getEffectiveLevel())
            process = ProcessBatches(spec, lambda: writer.context())
            starting = asyncio.create_task(process.start(), name="itsmd-ingest-start")
        writer = Writer(
            db,
            lambda: runtime.rules,
            lambda: runtime.settings.sla,
            runtime.clock,
            runtime.metrics,
            # SQLite has one writer, this process: its current incidents can stay in
            # memory. Several PostgreSQL replicas write the same keys.
            current=CurrentIncidents() if db.sqlite else None,
            outbox=app[OUTBOX],
            batches=process,
        )
        try:
            await _check_schema(db, migrate)
            if starting is not None:
                await starting
            writer.start()
            runtime.set_api_windows(await db.read(repo.api_windows))
        except BaseException:
            if starting is not None and not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
            await writer.stop()
            await db.dispose()
            raise
        db.checkpoint_in_background()
        runtime.db, runtime.writer, runtime.ready = db, writer, True
        yield
        runtime.ready = False
        drained = await writer.stop()
        await db.dispose()
        log.info("store closed (%d queued writes finished on the way out)", drained)

    return store


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """The daily retention run and the size of the store (runtime/retention.py)."""
    app[RETENTION] = job = Retention(app[RUNTIME])
    job.start()
    yield
    await job.stop()


async def _readiness_ctx(app: web.Application) -> AsyncIterator[None]:
    """Probe the store once before serving, then every READY_PROBE_INTERVAL: `/-/ready`
    answers what the last probe found (docs/operations.md, Readiness)."""
    runtime = app[RUNTIME]
    await ops.probe_store(runtime)
    stopping = asyncio.Event()

    async def probe_every() -> None:
        # The flag as well as the cancel: Python 3.11's wait_for (inside the probe)
        # loses a cancel that lands as its inner task finishes, and the loop would
        # then run on and hold up the stop.
        while not stopping.is_set():
            await asyncio.sleep(READY_PROBE_INTERVAL.total_seconds())
            if not stopping.is_set():
                await ops.probe_store(runtime)

    task = asyncio.create_task(probe_every(), name="itsmd-ready-probe")
    yield
    stopping.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _check_schema(db: Database, migrate: bool) -> None:
    try:
        state, revision = await schema_state(db)
    except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
        raise StartupError(f"cannot open the database {db.safe_url}: {exc}") from None
    if state is SchemaState.EMPTY or (state is SchemaState.OUTDATED and migrate):
        await upgrade(db)
        log.info("database schema created or upgraded to revision %s", head_revision())
    elif state is SchemaState.OUTDATED:
        raise StartupError(
            f"the database schema is at revision {revision}, this itsmd needs "
            f"{head_revision()}: run `itsmd db upgrade` or start with --migrate"
        )
    elif state is SchemaState.UNKNOWN:
        raise StartupError(
            f"the database holds tables that are not an itsmd schema, or a newer "
            f"one (revision {revision}); point --db at another database"
        )


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[HTTP].close()  # after the sinks and checks that use it stopped


def _checks_ctx(run_checks: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def checks_ctx(app: web.Application) -> AsyncIterator[None]:
        async for _ in _checks(app, run_checks):
            yield

    return checks_ctx


async def _checks(app: web.Application, run_checks: bool) -> AsyncIterator[None]:
    """The checks of the rule files on their scheduler, and heartbeats fed by ingest."""
    runtime, http = app[RUNTIME], app[HTTP]
    writer, db = runtime.writer, runtime.db
    assert writer is not None
    assert db is not None

    def prometheus() -> PrometheusClient | None:
        source = runtime.settings.connectors.prometheus
        if source is None:
            return None
        return PrometheusClient(http, source.url, source.timeout_s, source.headers)

    runner = CheckRunner(
        submit=writer.ingest,
        write=writer.run,
        read=db.read,
        rules=lambda: runtime.rules,
        http=http,
        prometheus=prometheus,
        clock=runtime.clock,
        metrics=runtime.metrics,
        leader=db.sqlite,
    )
    await runner.load(runtime.rules.checks, await db.read(checkstore.firing_check_alerts))
    jobs = CheckJobs(runtime, runner, sole_writer=db.sqlite, run_checks=run_checks)
    observing: set[asyncio.Task[None]] = set()

    def heartbeats(alerts: Sequence[Alert]) -> None:
        if runner.watches_heartbeats:
            task = asyncio.create_task(runner.observe(alerts))
            observing.add(task)
            task.add_done_callback(observing.discard)

    writer.on_ingested = heartbeats
    runtime.on_reload.append(jobs.reloaded)
    await jobs.start()
    app[CHECKS], app[CHECK_JOBS] = runner, jobs
    yield
    writer.on_ingested = None
    await jobs.stop()
    if observing:
        await asyncio.wait(observing, timeout=5)


async def _reconcile_ctx(app: web.Application) -> AsyncIterator[None]:
    """Rounds against the configured Alertmanagers, run by the replica that leads the
    checks (one at a time; docs/connectors.md, "Reconciliation with Alertmanager")."""
    runtime, http, jobs = app[RUNTIME], app[HTTP], app[CHECK_JOBS]

    def views(peers: AlertmanagerPeers) -> list[AlertmanagerAPI]:
        return [AlertmanagerAPI(http, url, peers.timeout_s, peers.headers) for url in peers.urls]

    reconciliation = Reconciliation(runtime, views, leads=lambda: jobs.runner.leader)
    app[RECONCILE] = reconciliation
    runtime.on_reload.append(reconciliation.reloaded)
    reconciliation.start()
    yield
    await reconciliation.stop()


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sinks built from the config (again on every reload) and the delivery worker."""
    runtime, outbox, http = app[RUNTIME], app[OUTBOX], app[HTTP]
    kinds = installed_kinds() if runtime.settings.connectors.sinks else {}

    def build_sinks() -> None:
        nonlocal kinds
        specs = runtime.settings.connectors.sinks
        if specs and not kinds:
            kinds = installed_kinds()
        outbox.set_sinks(
            {
                name: SinkRunner(spec, build_sink(spec, kinds, SinkEnv(http, spec.timeout_s)))
                for name, spec in specs.items()
            }
        )

    build_sinks()
    runtime.on_reload.append(build_sinks)
    assert runtime.writer is not None
    assert runtime.db is not None
    outbox.start(runtime.writer, sole_writer=runtime.db.sqlite)
    yield
    cut = await outbox.stop()
    if cut:
        log.warning("%d notifications were being sent at shutdown; they will be sent again", cut)


def _scheduler_ctx(interval: timedelta) -> Callable[[web.Application], AsyncIterator[None]]:
    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        running: set[asyncio.Task[Any]] = set()

        def finished_at_shutdown(job: Callable[[Runtime], Any]) -> Callable[[], Any]:
            """A job whose unit of work ends before shutdown (the scheduler cancels)."""

            async def run() -> None:
                task = asyncio.current_task()
                assert task is not None
                running.add(task)
                try:
                    await job(runtime)
                finally:
                    running.discard(task)

            return run

        sched = AsyncIOScheduler(timezone=UTC)
        # Holds that ended while the daemon was down resolve at once (next_run_time=now).
        sched.add_job(
            finished_at_shutdown(sweep_holds),
            "interval",
            id="auto-resolve",
            seconds=interval.total_seconds(),
            max_instances=1,
            coalesce=True,
            next_run_time=utc_now(),
        )
        sched.add_job(
            finished_at_shutdown(mark_sla_breaches),
            "interval",
            id="sla-clock",
            seconds=SLA_CLOCK_INTERVAL.total_seconds(),
            max_instances=1,
            coalesce=True,
            next_run_time=utc_now(),
        )
        every = runtime.settings.watch_rules
        if every is not None:
            watch = RuleWatch(runtime)
            sched.add_job(
                watch.check,
                "interval",
                id="watch-rules",
                seconds=every.total_seconds(),
                max_instances=1,
                coalesce=True,
            )
        sched.start()
        yield
        # Let a running sweep finish its unit of work: the scheduler would cancel it.
        sched.pause()
        if running:
            await asyncio.wait(running, timeout=5)
        sched.shutdown(wait=False)

    return scheduler
