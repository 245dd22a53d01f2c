"""Operational endpoints: health, readiness, metrics, reload."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from itsmd.api.errors import error_response
from itsmd.api.keys import RUNTIME
from itsmd.store import repo
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)


async def healthy(_request: web.Request) -> web.Response:
    return web.Response(text="itsmd is healthy.\n")


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if runtime.ready and runtime.writer is not None and runtime.writer.running:
        return web.Response(text="itsmd is ready.\n")
    return web.Response(status=503, text="itsmd is not ready.\n")


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if runtime.db is not None:
        try:  # counted at scrape time so that every replica reports the shared truth
            runtime.metrics.set_open(await runtime.db.read(repo.open_counts))
        except StoreUnavailable as exc:
            log.debug("could not count open incidents: %s", exc)
    body = generate_latest(runtime.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def reload(request: web.Request) -> web.Response:
    result = request.app[RUNTIME].reload()
    if not result.ok:
        return error_response(
            422, "reload failed; the previous config and rules stay in force", list(result.errors)
        )
    return web.json_response(
        {"status": "reloaded", "rules": result.rules, "restart_needed": list(result.restart_needed)}
    )
