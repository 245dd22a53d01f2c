"""Readiness (docs/operations.md, Readiness): `/-/ready` answers 200 only while the
store takes writes, turns 503 within a few seconds of an outage and back to 200 by
itself once the store answers again.

The outages are real: a second SQLite connection holding the write lock past
`busy_timeout`, a PostgreSQL reached through a TCP proxy the test cuts and
restores. The probe runs every 50 ms here (every 2 s by default) so that the
waits stay short; a full disk is the free-space figure the probe reads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import pytest
from sqlalchemy import Connection, select

from itsmd.api import ops
from itsmd.server import app as app_module
from itsmd.store.engine import PROBE_JOB
from itsmd.store.tables import leases
from tests.api.api_support import WEBHOOK, ApiClient, MakeClient, alert, raw_body
from tests.conftest import PG_HOST, PG_PORT, get_free_port

FAST = timedelta(milliseconds=50)


@pytest.fixture
def fast_probe(monkeypatch: pytest.MonkeyPatch) -> timedelta:
    monkeypatch.setattr(app_module, "READY_PROBE_INTERVAL", FAST)
    return FAST


@pytest.fixture
def no_probe_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the probe at start and those the test runs itself."""
    monkeypatch.setattr(app_module, "READY_PROBE_INTERVAL", timedelta(hours=1))


async def _ready(client: ApiClient) -> tuple[int, str]:
    resp = await client.get("/-/ready")
    return resp.status, await resp.text()


async def _until(client: ApiClient, status: int, within_s: float) -> tuple[float, str]:
    """Seconds until `/-/ready` answers `status` (failing after `within_s`), and its text."""
    started = time.monotonic()
    while True:
        answer, text = await _ready(client)
        waited = time.monotonic() - started
        if answer == status:
            return waited, text
        assert waited < within_s, f"/-/ready not {status} within {within_s}s: {answer} {text}"
        await asyncio.sleep(0.02)


def _transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(":")[0]
        for r in caplog.records
        if r.name == "itsmd.api.ops" and r.levelno >= logging.INFO
    ]


async def test_ready_once_the_store_took_a_write(
    make_client: MakeClient, no_probe_loop: None
) -> None:
    client = await make_client()

    assert await _ready(client) == (200, "itsmd is ready.\n")

    def probe_row(conn: Connection) -> object:
        return conn.execute(select(leases.c.holder).where(leases.c.job == PROBE_JOB)).scalar()

    assert client.runtime.db is not None
    assert await client.runtime.db.read(probe_row) == ops.PROBE_HOLDER


async def test_ready_is_503_when_no_probe_succeeded_lately(
    make_client: MakeClient, no_probe_loop: None
) -> None:
    client = await make_client()
    stale = client.runtime.readiness.stale_after

    client.clock.advance(stale)
    assert (await _ready(client))[0] == 200
    client.clock.advance(timedelta(seconds=1))
    status, text = await _ready(client)
    assert status == 503
    assert f"has not taken a write for {stale.total_seconds() + 1:.0f}s" in text

    assert await ops.probe_store(client.runtime) is None
    assert (await _ready(client))[0] == 200


@asynccontextmanager
async def sqlite_write_lock(db_url: str) -> AsyncIterator[None]:
    """Another connection holds SQLite's write lock for as long as the block runs."""
    path = db_url.split(":///", 1)[1]
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        lite = sqlite3.connect(path, isolation_level=None, timeout=5)  # past a daemon write
        try:
            lite.execute("BEGIN IMMEDIATE")
            taken.set()
            release.wait()
            lite.execute("ROLLBACK")
        finally:
            lite.close()
            taken.set()

    holder = threading.Thread(target=hold, name="test-lock-holder")
    holder.start()
    await asyncio.to_thread(taken.wait)
    try:
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_sqlite_lock_held_past_busy_timeout_turns_ready_503_and_back(
    make_client: MakeClient, db_url: str, fast_probe: timedelta, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itsmd.api.ops")
    client = await make_client(busy_timeout=timedelta(milliseconds=200))
    assert (await _ready(client))[0] == 200

    async with sqlite_write_lock(db_url):
        took, text = await _until(client, 503, within_s=3)
        assert "database is locked" in text
        assert (await client.get("/-/healthy")).status == 200, "alive, only not ready"
        await asyncio.sleep(0.3)  # a few more failed probes: still one transition logged
    back, _ = await _until(client, 200, within_s=3)

    assert took < 1.0, f"503 after {took:.2f}s (busy_timeout 0.2s, probe every 0.05s)"
    assert back < 1.0, f"200 again after {back:.2f}s"
    assert _transitions(caplog) == ["not ready", "ready again"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_full_disk_turns_ready_503_and_back(
    make_client: MakeClient, fast_probe: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client()
    monkeypatch.setattr(ops, "disk_free", lambda _path: 100 * 1024)

    _, text = await _until(client, 503, within_s=3)

    assert "is full: 100 KiB free" in text
    monkeypatch.undo()
    await _until(client, 200, within_s=3)


class PostgresProxy:
    """A TCP proxy to the test PostgreSQL: `cut()` closes its port and drops every
    session through it, as a database server that goes away; `restore()` listens again.

    It relays on threads of its own with blocking sockets that it closes itself, so
    a cut is over when `cut()` returns (no session accepted just before it reaches
    the real server afterwards) and no socket is left for the test loop's collector."""

    def __init__(self) -> None:
        self.port = get_free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._live: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._start(self._accept_loop, self._listener)

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            live = list(self._live)
        assert listener is not None
        for sock in [listener, *live]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes accept() and recv() alike
        while threads := self._running():
            for thread in threads:
                thread.join()

    def _running(self) -> list[threading.Thread]:
        with self._lock:
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            return list(self._threads)

    def _start(self, target: Callable[..., None], *args: socket.socket) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self, listener: socket.socket) -> None:
        with listener:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:  # shut down by cut()
                    return
                self._start(self._session, listener, client)

    def _session(self, listener: socket.socket, client: socket.socket) -> None:
        with client:
            try:
                server = socket.create_connection((PG_HOST, PG_PORT))
            except OSError:
                return
            with server:
                with self._lock:
                    if self._listener is not listener:  # cut while connecting
                        return
                    self._live |= {client, server}
                try:
                    back = self._start(self._relay, server, client)
                    self._relay(client, server)
                    back.join()
                finally:
                    with self._lock:
                        self._live -= {client, server}

    @staticmethod
    def _relay(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):  # a session ends when either side ends
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def pg_proxy() -> Iterator[PostgresProxy]:
    proxy = PostgresProxy()
    proxy.restore()
    try:
        yield proxy
    finally:
        with suppress(AssertionError):
            proxy.cut()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_postgresql_outage_turns_ready_503_and_back(
    make_client: MakeClient,
    db_url: str,
    pg_proxy: PostgresProxy,
    fast_probe: timedelta,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="itsmd.api.ops")
    through_proxy = db_url.replace(f":{PG_PORT}/", f":{pg_proxy.port}/")
    assert through_proxy != db_url
    client = await make_client(database=through_proxy, busy_timeout=timedelta(milliseconds=500))
    assert (await _ready(client))[0] == 200

    pg_proxy.cut()
    took, text = await _until(client, 503, within_s=5)
    assert "the store cannot take a write" in text
    resp = await client.post_raw(WEBHOOK, raw_body("firing-single.json"))
    assert resp.status == 503, "what ready said: nothing can be stored"

    pg_proxy.restore()
    back, _ = await _until(client, 200, within_s=5)
    await client.webhook(alert("Down", service="api"))  # and it stores again

    assert took < 1.5, f"503 after {took:.2f}s (probe every 0.05s)"
    assert back < 1.5, f"200 again after {back:.2f}s"
    assert _transitions(caplog) == ["not ready", "ready again"]
