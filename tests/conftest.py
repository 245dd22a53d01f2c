"""Shared test helpers and fixtures: peers that may be absent, databases, ports, polling.

A test that needs an outside binary or server calls `require_binary()` or
`require_postgres()`: when the peer is missing the test is skipped with a reason,
unless `ITSMD_REQUIRE_ALL=1` (set by `.ci/run`), where it fails instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import secrets
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
import pytest

T = TypeVar("T")

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"
PG_ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}"
PG_CONNECT_TIMEOUT_S = 3.0


# --- peers that may be absent ------------------------------------------------


def require_all() -> bool:
    """True when a missing peer must fail the run instead of skipping (CI)."""
    return os.environ.get("ITSMD_REQUIRE_ALL", "") == "1"


def missing_peer(reason: str) -> NoReturn:
    """Skip the current test because a peer is absent, or fail under ITSMD_REQUIRE_ALL=1."""
    if require_all():
        pytest.fail(f"{reason} (ITSMD_REQUIRE_ALL=1: missing peers are failures)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, *candidates: str) -> str:
    """Path of the first of `candidates` (default: `name`) found on PATH, else skip/fail.

    `require_binary("alertmanager", "prometheus-alertmanager", "alertmanager")` finds the
    Debian name first and the upstream one second.
    """
    for candidate in candidates or (name,):
        path = shutil.which(candidate)
        if path is not None:
            return path
    tried = ", ".join(candidates or (name,))
    missing_peer(f"{name} is not installed (looked for {tried} on PATH)")


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private event loop in a worker thread.

    Sync fixtures use this so that they never touch (or clear) the event loop that
    pytest-asyncio may have set for the current thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _pg_probe() -> str | None:
    """None when the test server answers, else why not."""
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=PG_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return None


@functools.cache
def _pg_unavailable() -> str | None:
    return run_coro(_pg_probe())


def require_postgres() -> str:
    """The admin DSN of the test PostgreSQL server, or skip/fail when it does not answer."""
    problem = _pg_unavailable()
    if problem is not None:
        missing_peer(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({problem}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    return PG_ADMIN_DSN


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped at teardown) as a daemon URL."""
    require_postgres()
    name = f"itsmd_test_{secrets.token_hex(6)}"
    run_coro(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        run_coro(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- databases -----------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A daemon URL for a SQLite file in this test's tmp dir (not created yet)."""
    return f"sqlite+aiosqlite:///{tmp_path}/itsmd.db"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The test runs once per production storage engine, each on a fresh database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


# --- ports -------------------------------------------------------------------------


def get_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    return get_free_port()


# --- polling -------------------------------------------------------------------------


Description = str | Callable[[], str]


def _timeout_message(what: Description, timeout_s: float, last: object) -> str:
    description = what() if callable(what) else what
    return f"timed out after {timeout_s:.1f}s waiting for {description} (last value: {last!r})"


def wait_until(
    predicate: Callable[[], T | None],
    timeout_s: float = 5.0,
    interval_s: float = 0.05,
    what: Description = "condition",
) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    Raises AssertionError naming `what` (and the last value seen) on timeout; `what`
    may be a callable, evaluated only then (to show the state the test last saw).
    Exceptions from the predicate propagate: poll only what is expected to answer.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_message(what, timeout_s, value))
        time.sleep(interval_s)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    timeout_s: float = 5.0,
    interval_s: float = 0.05,
    what: Description = "condition",
) -> T:
    """Async twin of `wait_until`; `predicate` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        value: T | None = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_message(what, timeout_s, value))
        await asyncio.sleep(interval_s)
