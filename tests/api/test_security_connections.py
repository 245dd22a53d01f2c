"""Slow clients (docs/configuration.md, limits): served as `itsmd run` serves
(`serve.listen`: aiohttp's AppRunner behind the connection guard), a client that
sends its request a byte at a time, or nothing, holds a connection no longer than
`limits.read_timeout`, and one address holds at most
`limits.max_connections_per_client` connections; others are served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from itsmd.api.keys import RUNTIME
from itsmd.config import Settings
from itsmd.server.app import build_app
from itsmd.server.serve import listen
from tests.api.api_support import DEFAULT_RULES, metric_value
from tests.api.conftest import rule_set
from tests.conftest import get_free_port

READ_TIMEOUT = timedelta(seconds=1)
Served = Callable[..., Awaitable[tuple[int, str]]]


@asynccontextmanager
async def _daemon(sqlite_url: str, **settings: Any) -> AsyncIterator[tuple[web.Application, int]]:
    app = build_app(
        Settings(database=sqlite_url, read_timeout=READ_TIMEOUT, **settings),
        rules=rule_set(DEFAULT_RULES),
        sweep_interval=timedelta(hours=1),
        run_checks=False,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = get_free_port()
    await listen(runner, "127.0.0.1", port)
    try:
        yield app, port
    finally:
        await runner.cleanup()


Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@asynccontextmanager
async def _connections() -> AsyncIterator[Connect]:
    """Raw connections to the daemon, all closed at the end."""
    opened: list[asyncio.StreamWriter] = []

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        return reader, writer

    try:
        yield connect
    finally:
        for writer in opened:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _get(port: int, path: str = "/api/v1/incidents") -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def _closed_after(reader: asyncio.StreamReader, within_s: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), within_s)
    return time.monotonic() - started, data


async def _metric(app: web.Application, name: str, **labels: str) -> float:
    from prometheus_client import generate_latest

    exposition = generate_latest(app[RUNTIME].metrics.registry).decode()
    return metric_value(exposition, name, **labels)


async def test_a_slowloris_client_is_closed_within_the_read_timeout(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _daemon(sqlite_url) as (app, port), _connections() as connect:
        reader, writer = await connect(port)
        head = f"GET /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: "

        async def one_byte_every_half_second() -> None:
            for byte in head.encode() + b"a" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)

        sending = asyncio.create_task(one_byte_every_half_second())
        try:
            # A normal client is served meanwhile.
            status, _ = await _get(port)
            assert status == 200
            took, data = await _closed_after(reader, within_s=5)
        finally:
            sending.cancel()
        assert data == b"", "no answer to a request that never came"
        assert took < READ_TIMEOUT.total_seconds() + 0.5, f"closed after {took:.2f}s"
        assert await _metric(app, "itsmd_http_refused_total", reason="read_timeout") >= 1
        assert (await _get(port))[0] == 200
        assert "closed a connection from 127.0.0.1: no request within limits.read_timeout (1s)" in [
            r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
        ]


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> bytes:
    """One keep-alive GET on an open connection; its status line."""
    writer.write(f"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_is_closed_and_a_busy_one_is_not(sqlite_url: str) -> None:
    async with _daemon(sqlite_url) as (app, port), _connections() as connect:
        reader, _ = await connect(port)
        took, _ = await _closed_after(reader, within_s=5)
        assert 0.8 < took < 1.5, f"closed after {took:.2f}s"
        # Closing an idle connection is no refusal: not counted (nor logged).
        assert await _metric(app, "itsmd_http_refused_total", reason="read_timeout") == 0

        # Keep-alive: requests within the timeout of each other keep it open, however
        # long the connection lives.
        reader, writer = await connect(port)
        for _ in range(6):
            assert await _ask(reader, writer, port) == b"HTTP/1.1 200 OK"
            await asyncio.sleep(0.4)
        assert await _ask(reader, writer, port) == b"HTTP/1.1 200 OK", "open after 2.4 s"


async def test_a_body_sent_a_byte_at_a_time_is_408_within_the_read_timeout(
    sqlite_url: str,
) -> None:
    async with _daemon(sqlite_url) as (app, port), _connections() as connect:
        took, data = await _post_trickling(connect, port, "/api/v1/alerts", 1000, every_s=0.3)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), data
        assert b"Connection: close" in head, data
        assert b"body: not received within limits.read_timeout (1s)" in body
        assert took < READ_TIMEOUT.total_seconds() + 0.5, f"answered after {took:.2f}s"
        assert await _metric(app, "itsmd_alerts_rejected_total", reason="timeout") == 1
        assert await _metric(app, "itsmd_http_refused_total", reason="read_timeout") == 1


async def test_an_unread_body_is_not_waited_for_longer_than_the_read_timeout(
    sqlite_url: str,
) -> None:
    """A request refused before its body is read (here: no such path) is answered at
    once; what the client then trickles holds the connection no longer."""
    async with _daemon(sqlite_url) as (_, port), _connections() as connect:
        took, data = await _post_trickling(connect, port, "/api/v1/nothing", 100_000, every_s=0.2)
        assert data.startswith(b"HTTP/1.1 404 "), data
        assert took < READ_TIMEOUT.total_seconds() + 0.5, f"closed after {took:.2f}s"


async def test_one_address_holds_at_most_max_connections_per_client(sqlite_url: str) -> None:
    async with (
        _daemon(sqlite_url, max_connections_per_client=3) as (app, port),
        _connections() as connect,
    ):
        held = [await connect(port) for _ in range(3)]
        await asyncio.sleep(0.1)
        reader, _ = await connect(port)
        _, data = await _closed_after(reader, within_s=2)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), data
        assert body == (
            b'{"error":"too many connections from 127.0.0.1: '
            b'limits.max_connections_per_client is 3","detail":null}'
        )
        assert await _metric(app, "itsmd_http_refused_total", reason="too_many_connections") == 1
        for held_reader, held_writer in held:  # still served
            assert await _ask(held_reader, held_writer, port) == b"HTTP/1.1 200 OK"

        # One of them goes: another may come.
        held[0][1].close()
        await asyncio.sleep(0.1)
        assert (await _get(port))[0] == 200


async def test_the_figures_in_force_are_those_of_the_last_reload(sqlite_url: str) -> None:
    async with (
        _daemon(sqlite_url, max_connections_per_client=1) as (app, port),
        _connections() as connect,
    ):
        runtime = app[RUNTIME]
        await connect(port)
        await asyncio.sleep(0.05)
        assert (await _get(port))[0] == 503  # one is open already
        runtime.settings = replace(runtime.settings, max_connections_per_client=2)
        assert (await _get(port))[0] == 200


async def _post_trickling(
    connect: Connect, port: int, path: str, length: int, every_s: float
) -> tuple[float, bytes]:
    """POST `path` announcing `length` bytes, then send one byte every `every_s`:
    how long until the daemon closed the connection, and what it answered."""
    reader, writer = await connect(port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n[".encode()
    )
    await writer.drain()

    async def trickle() -> None:
        for _ in range(100):
            await asyncio.sleep(every_s)
            writer.write(b" ")
            await writer.drain()

    sending = asyncio.create_task(trickle())
    try:
        return await _closed_after(reader, within_s=5)
    finally:
        sending.cancel()
