"""Running the daemon: listen, handle signals, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from itsmd.api.keys import RUNTIME
from itsmd.runtime.state import Runtime
from itsmd.server.systemd import SystemdNotifier

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 8.0  # in-flight requests get this long; the whole stop stays under 10 s


async def serve(app: web.Application, host: str, port: int) -> None:
    runtime = app[RUNTIME]
    systemd = SystemdNotifier()
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()  # opens the store (cleanup_ctx) before anything listens
    _tune_gc()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, runtime, systemd)
    watchdog = asyncio.create_task(systemd.watchdog())
    if not runtime.settings.tokens:
        log.warning("no auth tokens configured: serving loopback clients only, without auth")
    log.info(
        "listening on http://%s:%d (%d incident rules, database %s)",
        host,
        port,
        len(runtime.rules),
        runtime.db.safe_url if runtime.db else "-",
    )
    systemd.ready(f"listening on {host}:{port}")
    await stop.wait()
    log.info("stopping: no new connections; in-flight requests get %.0fs", SHUTDOWN_TIMEOUT_S)
    systemd.stopping()
    runtime.ready = False
    watchdog.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watchdog
    await runner.cleanup()
    log.info("stopped cleanly")


def _tune_gc() -> None:
    """Keep the cycle collector off the ingest latency.

    Ingestion allocates many short-lived objects; with the default thresholds the
    collector ran often enough, over everything start-up built (rules, compiled
    templates), to be the tail of a 20-alert request: bench batch-20 p99 went from
    about 88 ms to 40 ms with this (bench/RESULTS.md). Reference counting still
    frees almost everything at once; only cycles wait longer.
    """
    gc.collect()
    gc.freeze()  # start-up's objects are never collected: skip them in every pass
    gc.set_threshold(20_000, 50, 100)


def _reload(runtime: Runtime, systemd: SystemdNotifier) -> None:
    systemd.reloading()
    runtime.reload()
    systemd.notify("READY=1")
