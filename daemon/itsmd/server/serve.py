"""Running the daemon: listen, handle signals, shut down gracefully; guard the
connections against clients that hold them (docs/configuration.md, limits)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from itsmd.api.auth import RefusalLog
from itsmd.api.keys import RUNTIME
from itsmd.runtime.collector import tune_gc
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
    try:
        await runner.setup()  # opens the store (cleanup_ctx) before anything listens
    except BaseException:
        await runner.cleanup()  # closes what did start (the store, its threads)
        raise
    tune_gc()
    try:
        await listen(runner, host, port)
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


def _reload(runtime: Runtime, systemd: SystemdNotifier) -> None:
    systemd.reloading()
    runtime.reload()
    systemd.notify("READY=1")


async def listen(runner: web.AppRunner, host: str, port: int) -> GuardedSite:
    """Serve the runner's app on host:port behind a ConnectionGuard; the runner's
    cleanup stops it."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    site = GuardedSite(runner, host, port, ConnectionGuard(server, runner.app[RUNTIME]))
    await site.start()
    return site


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with every connection made through a ConnectionGuard."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard):
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard, self._host, self._port, reuse_address=True
        )


class ConnectionGuard:
    """The protocol factory in front of aiohttp's.

    - At most `limits.max_connections_per_client` connections from one address are
      open at once: another is answered 503 (which Alertmanager sends again) and
      closed before any of it is read.
    - A connection must deliver a whole request head within `limits.read_timeout` of
      opening or of its previous answer, or it is closed: a client that sends its
      headers a byte at a time (or nothing) holds it no longer. Bodies are read
      within the same time (api/params.py, read_body; aiohttp discards an unread body
      after the answer, and this timer bounds that too). An answer still being
      taken by a slow reader keeps it open while the reader makes progress.

    Both figures are read from the settings in force, so a reload changes them.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], runtime: Runtime) -> None:
        self._factory = factory
        self._runtime = runtime
        self._open: dict[str, int] = {}  # address -> open connections (none: no entry)
        self._refusals = RefusalLog(log)

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self, self._factory())

    def admit(self, client: str) -> bool:
        count = self._open.get(client, 0)
        limit = self._runtime.settings.max_connections_per_client
        if count >= limit:
            self._runtime.metrics.http_refused.labels("too_many_connections").inc()
            self._refusals(
                "too_many_connections",
                f"refused a connection from {client}: {count} are open "
                f"(limits.max_connections_per_client is {limit})",
            )
            return False
        self._open[client] = count + 1
        return True

    def release(self, client: str) -> None:
        count = self._open.pop(client, 0) - 1
        if count > 0:
            self._open[client] = count

    def open_connections(self, client: str) -> int:
        return self._open.get(client, 0)

    def refusal(self, client: str) -> bytes:
        limit = self._runtime.settings.max_connections_per_client
        body = orjson.dumps(
            {
                "error": f"too many connections from {client}: "
                f"limits.max_connections_per_client is {limit}",
                "detail": None,
            }
        )
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    def read_timeout(self) -> float:
        return self._runtime.settings.read_timeout.total_seconds()

    def timed_out(self, client: str) -> None:
        self._runtime.metrics.http_refused.labels("read_timeout").inc()
        self._refusals(
            "read_timeout",
            f"closed a connection from {client}: no request within limits.read_timeout "
            f"({self.read_timeout():g}s)",
        )


class GuardedConnection(asyncio.Protocol):
    """One connection: passes everything to aiohttp's protocol (`inner`), counts it
    against its address and closes it when no request head arrives in time."""

    __slots__ = (
        "_busy",
        "_client",
        "_deadline",
        "_guard",
        "_inner",
        "_partial",
        "_timer",
        "_transport",
        "_unsent",
    )

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = inner
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._busy = 0  # requests being handled
        self._partial = False  # bytes came since the last answer, and no request yet
        self._deadline = 0.0
        self._unsent = 0  # bytes of answers not yet taken by the client, at the last check
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self._guard.admit(self._client):
            self._inner = None
            transport.write(self._guard.refusal(self._client))
            transport.close()
            return
        self._transport = transport
        assert self._inner is not None
        self._inner.connection_made(transport)
        self._wait_for_request()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            if not self._busy:
                self._partial = True
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self._inner = self._inner, None
        if inner is None:  # refused at once
            return
        self._guard.release(self._client)
        inner.connection_lost(exc)

    def request_started(self) -> None:
        self._busy += 1
        self._partial = False

    def request_finished(self) -> None:
        self._busy -= 1
        if not self._busy:
            self._wait_for_request()

    def _wait_for_request(self) -> None:
        """The next request's head is due within read_timeout from now. One timer per
        connection, moved on lazily (not rescheduled per request)."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._guard.read_timeout()
        self._unsent = 0
        self._partial = False
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        transport = self._transport
        if self._busy or transport is None or transport.is_closing():
            return  # a request is being handled: its end starts the clock again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check)
            return
        unsent = transport.get_write_buffer_size()
        if unsent and unsent != self._unsent:
            # Still sending an answer to a slow reader, which reads: give it time.
            self._unsent = unsent
            self._deadline = loop.time() + self._guard.read_timeout()
            self._timer = loop.call_at(self._deadline, self._check)
            return
        if self._partial:  # a slow client; an idle keep-alive connection just closes
            self._guard.timed_out(self._client)
        if unsent:
            transport.abort()  # it reads nothing of its answer either
        else:
            transport.close()


@web.middleware
async def request_clock(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tells a guarded connection when a request's head is in and when it was
    answered (the app runs on other servers too, in tests: then it does nothing)."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    response: web.StreamResponse
    if not isinstance(connection, GuardedConnection):
        response = await handler(request)
        return response
    connection.request_started()
    try:
        response = await handler(request)
        return response
    finally:
        connection.request_finished()
