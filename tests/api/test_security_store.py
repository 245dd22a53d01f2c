"""A store that cannot serve is a 503 naming the cause in general terms (docs/api.md):
the driver's message, which may name the database's host and port, stays in the log."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from itsmd.api.errors import store_cause
from itsmd.runtime.writer import Overloaded
from itsmd.store.engine import Database, StoreUnavailable
from tests.api.api_support import INCIDENTS, WEBHOOK, MakeClient, alert, raw_body
from tests.conftest import get_free_port


def _dead_database() -> tuple[Database, int]:
    """A PostgreSQL store whose server is not there: connecting is refused, and the
    driver's error names the address ("Connect call failed ('127.0.0.1', <port>)")."""
    port = get_free_port()
    url = f"postgresql+asyncpg://itsmd:pw@127.0.0.1:{port}/itsmd"
    return Database(url, busy_timeout=timedelta(seconds=1)), port


async def test_a_503_to_an_ingest_client_does_not_name_the_database_host(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(ingest_process=False)  # batches on the swapped store
    dead, port = _dead_database()
    writer = client.runtime.writer
    assert writer is not None
    monkeypatch.setattr(writer.batches, "_db", dead)
    try:
        resp = await client.post_raw(WEBHOOK, raw_body("firing-single.json"))
        text = await resp.text()
    finally:
        await dead.dispose()

    assert resp.status == 503, text
    assert resp.headers.get("Retry-After")
    assert (await resp.json())["error"] == (
        "cannot store right now: the database server is unreachable"
    )
    assert str(port) not in text
    assert "127.0.0.1" not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"'127.0.0.1', {port}" in logged, "the log keeps the detail"


async def test_a_503_to_a_reader_does_not_name_the_database_host(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    dead, port = _dead_database()
    alive, client.runtime.db = client.runtime.db, dead
    try:
        resp = await client.get(INCIDENTS)
        text = await resp.text()
    finally:
        client.runtime.db = alive
        await dead.dispose()

    assert resp.status == 503, text
    assert (await resp.json())["error"] == (
        "cannot read the store right now: the database server is unreachable"
    )
    assert str(port) not in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(f"'127.0.0.1', {port}" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("driver", "cause"),
    [
        (
            "ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.0.5', 5432)",
            "the database server is unreachable",
        ),
        (
            "OSError: Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
            "[Errno 111] Connect call failed ('127.0.0.1', 5432)",
            "the database server is unreachable",
        ),
        ("gaierror: [Errno -2] Name or service not known", "the database server is unreachable"),
        ("TimeoutError: ", "the database server is unreachable"),
        (
            "LockNotAvailableError: canceling statement due to lock timeout",
            "lock timeout: the database is locked by another transaction",
        ),
        (
            "OperationalError: database is locked",
            "lock timeout: the database is locked by another transaction",
        ),
        ("QueryCanceledError: canceling statement due to statement timeout", "statement timeout"),
        (
            "AdminShutdownError: terminating connection due to administrator command",
            "the database session was ended (killed, or the server is restarting)",
        ),
        (
            "ConnectionDoesNotExistError: connection was closed in the middle of operation",
            "the database session was ended (killed, or the server is restarting)",
        ),
        (
            "CannotConnectNowError: the database system is starting up",
            "the database session was ended (killed, or the server is restarting)",
        ),
        (
            "SerializationError: could not serialize access due to concurrent update",
            "serialization failure: another transaction changed the same data",
        ),
        ("DeadlockDetectedError: deadlock detected", "deadlock with another transaction"),
        ("OperationalError: database or disk is full", "disk full"),
        ('DiskFullError: could not extend file "base/16384/2619"', "disk full"),
        ("DatabaseError: file is not a database", "the database file is damaged"),
        (
            "TooManyConnectionsError: sorry, too many clients already",
            "too many connections",
        ),
        (
            "TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection timed out",
            "no database connection free in time",
        ),
        (
            'UniqueViolationError: duplicate key value violates unique constraint "alerts_pkey"',
            "a conflict with another writer",
        ),
        (
            "SomeNewError: something else at db.internal:5432",
            "a database error (the daemon's log has it)",
        ),
    ],
)
def test_a_driver_error_is_said_in_general_terms(driver: str, cause: str) -> None:
    assert store_cause(StoreUnavailable(driver)) == cause


@pytest.mark.parametrize(
    "own",
    [
        "the store is not open yet",
        "not accepting writes (starting or shutting down)",
        "not stored within 10s; try again",
    ],
)
def test_the_daemons_own_words_pass(own: str) -> None:
    assert store_cause(StoreUnavailable(own)) == own
    assert store_cause(Overloaded("1200 alerts are waiting to be stored")) == (
        "1200 alerts are waiting to be stored"
    )
