"""A PostgreSQL that stops answering (a frozen server, a silent network) fails a unit
of work within twice busy_timeout and a grace (a statement's bound, and the ping of
the pooled connection before it), never a unit that waits for ever; once it answers
again, the next unit works (docs/operations.md, Storage).

The server is real; between it and the store sits a TCP relay on loopback that the
test can freeze: it keeps the connections open and passes no byte either way, as a
stopped server or a dropped network path does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from itsmd.store.engine import STATEMENT_GRACE, Database, is_unavailable
from itsmd.store.migrate import upgrade

BUSY = timedelta(seconds=1)


class Relay:
    """Relays TCP connections to a target, until frozen."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.open = asyncio.Event()
        self.open.set()
        self.server: asyncio.Server | None = None
        self.relaying: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.relaying.add(task)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self.open.wait()  # frozen: the bytes wait here
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        self.open.set()
        if self.server is not None:
            self.server.close()
        for task in self.relaying:
            task.cancel()
        await asyncio.gather(*self.relaying, return_exceptions=True)


@pytest.fixture
async def relayed(postgres_url: str) -> AsyncIterator[tuple[Database, Relay]]:
    url = make_url(postgres_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    port = await relay.start()
    db = Database(url.set(port=port).render_as_string(hide_password=False), busy_timeout=BUSY)
    await upgrade(db)
    try:
        yield db, relay
    finally:
        await relay.close()
        await db.dispose()


def _one(conn: Connection) -> int:
    value: int = conn.execute(text("SELECT 1")).scalar_one()
    return value


@pytest.mark.parametrize("kind", ["write", "read"])
async def test_a_store_that_stops_answering_fails_the_unit_within_its_bound(
    relayed: tuple[Database, Relay], kind: str
) -> None:
    db, relay = relayed
    run = db.write if kind == "write" else db.read
    assert await run(_one) == 1
    relay.open.clear()
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - which one is the point below
        await run(_one)
    waited = time.monotonic() - started
    assert is_unavailable(caught.value) or "StoreUnavailable" in type(caught.value).__name__
    bound = 2 * (BUSY + STATEMENT_GRACE).total_seconds()
    assert waited < bound + 1.0, f"waited {waited:.1f} s for a frozen store"
    relay.open.set()
    assert await asyncio.wait_for(run(_one), timeout=bound + 1.0) == 1
