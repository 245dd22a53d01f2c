"""Operational endpoints: health, readiness, metrics, reload; the readiness probe."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from itsmd.api.errors import error_response, store_cause
from itsmd.api.keys import RECONCILE, RUNTIME
from itsmd.runtime.state import Runtime
from itsmd.store import repo
from itsmd.store.engine import StoreUnavailable, describe_error

log = logging.getLogger(__name__)
# Who stamps the probe's row: this process.
PROBE_HOLDER = f"{socket.gethostname()}:{os.getpid()}"
# Room a SQLite store needs on its filesystem to be ready: what a large ingest batch
# may add to the write-ahead log. Below it the disk counts as full.
MIN_FREE_BYTES = 16 * 1024 * 1024
# Beyond busy_timeout (a write waits that long for a lock), how long a probe may take.
PROBE_GRACE_S = 2.0
# An ingest batch committed this recently stands for the probe's write (seconds).
PROBE_FRESH_S = 1.0


def disk_free(path: str) -> int:
    """Bytes an unprivileged process may still write on the filesystem of `path`."""
    return shutil.disk_usage(path).free


async def probe_store(runtime: Runtime) -> str | None:
    """Have the store take one tiny write, and check the room on a SQLite store's
    disk; record the outcome in `runtime.readiness` (log only changes). Returns why
    the store is not ready, or None. Never raises: a failure is the answer."""
    db = runtime.db
    if db is None:
        return None
    timeout = runtime.settings.busy_timeout.total_seconds() + PROBE_GRACE_S
    detail = ""
    writer = runtime.writer
    # A batch the writer committed just now says as much as the probe's write, which
    # would wait for the write lock between batches of the ingest process.
    proven = (
        writer is not None
        and writer.committed_at is not None
        and time.monotonic() - writer.committed_at < PROBE_FRESH_S
    )
    try:
        if not proven:
            await asyncio.wait_for(db.probe(PROBE_HOLDER, runtime.clock()), timeout)
        problem = _disk_full(str(db.sqlite_file)) if db.sqlite_file else None
    except TimeoutError:
        problem = f"the store took no write within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        # The answer (/-/ready needs no token) says why in general terms; the log
        # keeps the driver's text, which may name the database's host.
        detail = f" ({describe_error(exc)})"
        problem = f"the store cannot take a write: {store_cause(StoreUnavailable(detail[2:-1]))}"
    readiness = runtime.readiness
    if problem is None:
        if readiness.succeeded(runtime.clock()):
            log.info("ready again: the store takes writes")
    elif readiness.failed(problem):
        log.warning("not ready: %s%s", problem, detail)
    return problem


def _disk_full(database: str) -> str | None:
    directory = os.path.dirname(os.path.abspath(database))
    try:
        left = disk_free(directory)
    except OSError as exc:
        return f"cannot see the room left on {directory}: {exc.strerror}"
    if left < MIN_FREE_BYTES:
        return (
            f"the disk of {directory} is full: {left // 1024} KiB free, "
            f"{MIN_FREE_BYTES // (1024 * 1024)} MiB needed"
        )
    return None


async def healthy(_request: web.Request) -> web.Response:
    return web.Response(text="itsmd is healthy.\n")


async def ready(request: web.Request) -> web.Response:
    """200 while started and the store took a write lately (docs/operations.md)."""
    runtime = request.app[RUNTIME]
    if not (runtime.ready and runtime.writer is not None and runtime.writer.running):
        return web.Response(status=503, text="itsmd is not ready: starting or stopping.\n")
    problem = runtime.readiness.problem(runtime.clock())
    if problem is not None:
        return web.Response(status=503, text=f"itsmd is not ready: {problem}.\n")
    return web.Response(text="itsmd is ready.\n")


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if runtime.db is not None:
        try:  # counted at scrape time so that every replica reports the shared truth
            runtime.metrics.set_open(await runtime.db.read(repo.open_counts))
        except StoreUnavailable as exc:
            log.debug("could not count open incidents: %s", exc)
    body = generate_latest(runtime.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def reconcile_status(request: web.Request) -> web.Response:
    """The reconciliation with Alertmanager: its settings and this replica's last round."""
    return web.json_response(request.app[RECONCILE].status())


async def reload(request: web.Request) -> web.Response:
    result = request.app[RUNTIME].reload()
    if not result.ok:
        return error_response(
            422, "reload failed; the previous config and rules stay in force", list(result.errors)
        )
    return web.json_response(
        {"status": "reloaded", "rules": result.rules, "restart_needed": list(result.restart_needed)}
    )
