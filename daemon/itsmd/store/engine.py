"""The database: units of work run as one transaction each.

Store code is synchronous SQLAlchemy Core over a `Connection`; this module runs it
without blocking the event loop:

- SQLite: the standard library driver in threads, one dedicated writer thread and
  a few reader threads (WAL lets readers run beside the writer). A whole unit of
  work costs one hop to a thread. (An asyncio driver such as aiosqlite hops to its
  thread for every cursor call, about 80 hops for one ingest batch; see
  bench/RESULTS.md.) Write transactions begin with `BEGIN IMMEDIATE`: they take
  the write lock first, waiting up to `storage.busy_timeout` while another process
  holds it. A read transaction that upgrades to a write would fail at once instead:
  SQLite does not wait there, lest two upgrading readers deadlock.
- PostgreSQL: asyncpg through SQLAlchemy's asyncio engine, the unit running
  under `run_sync` with no threads at all. Every statement is bounded: a lock
  waits `busy_timeout` at most (server side), and a statement unanswered for
  `busy_timeout` + STATEMENT_GRACE fails on the client side, so that a frozen
  server or a silent network turns into StoreUnavailable (503, a skipped job)
  instead of a writer stuck behind one statement. (A pooled connection is pinged
  under the same bound before use: a unit meets a frozen server for at most about
  twice that.) Migrations alone run unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, insert, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from itsmd.dburl import is_sqlite
from itsmd.store.checkpoints import BACKSTOP_PAGES, Checkpoints
from itsmd.store.tables import json_text, leases

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
Unit = Callable[[Connection], T]

READER_THREADS = 4
# Execution option naming how a SQLite transaction begins (see _sqlite_engine).
_SQLITE_BEGIN = "itsmd_sqlite_begin"
# The row of the leases table the readiness probe writes (docs/operations.md).
PROBE_JOB = "ready-probe"
# How long past busy_timeout a PostgreSQL statement may go unanswered: past the
# server's lock_timeout, so that a lock wait ends with the server's clean error.
STATEMENT_GRACE = timedelta(seconds=1)


class StoreUnavailable(Exception):
    """The store cannot commit right now (HTTP 503: the sender should retry)."""


def describe_error(exc: BaseException) -> str:
    """A database error in one line, naming the driver's own error where there is one."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}".splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# PostgreSQL error classes (SQLSTATE's first two characters) that say the server
# cannot serve now, not that the statement is wrong: connection exception,
# transaction rollback (serialization, deadlock), insufficient resources, object
# not in prerequisite state (lock not available), operator intervention
# (shutdown, statement timeout), system error.
_PG_UNAVAILABLE = frozenset({"08", "40", "53", "55", "57", "58"})
# SQLite's primary result codes of the same kind; its syntax errors and missing
# tables are OperationalError too (SQLITE_ERROR), so the driver's class is no guide.
_SQLITE_UNAVAILABLE = frozenset(
    {
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_FULL",
        "SQLITE_IOERR",
        "SQLITE_READONLY",
        "SQLITE_CANTOPEN",
        "SQLITE_NOMEM",
        "SQLITE_PROTOCOL",
        "SQLITE_INTERRUPT",
        "SQLITE_CORRUPT",
        "SQLITE_NOTADB",
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the store cannot serve now (retry later, 503)
    rather than a fault in the statement (a bug, 500)."""
    if isinstance(exc, (OSError, TimeoutError, sa_exc.TimeoutError)):
        return True  # unreachable server, pool exhausted
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _PG_UNAVAILABLE
    name = getattr(exc.orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return "_".join(name.split("_")[:2]) in _SQLITE_UNAVAILABLE
    return isinstance(exc, OperationalError)


class Database:
    """Runs units of work against SQLite or PostgreSQL, one transaction per unit."""

    def __init__(self, url: str, *, busy_timeout: timedelta, synchronous: str = "NORMAL") -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        if self.sqlite:
            self._sync = _sqlite_engine(make_url(url), busy_timeout, synchronous)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="itsmd-sqlite-writer")
            self._readers = ThreadPoolExecutor(
                READER_THREADS, thread_name_prefix="itsmd-sqlite-read"
            )
        else:
            self._async = _postgres_engine(url, busy_timeout)
        self._busy_timeout = busy_timeout
        self._checkpoints: Checkpoints | None = None

    @property
    def safe_url(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - only for messages
            return "(unparsable URL)"

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` in a read-write transaction; it commits when `unit` returns."""
        if self._sync is not None:
            return await _on_pool(self._writer, _transaction, self._sync, unit, "IMMEDIATE")
        assert self._async is not None
        return await _bounded(self._async, unit)

    async def migrate(self, unit: Unit[T]) -> T:
        """`write` for schema migrations, whose statements may run for long on a large
        store: on PostgreSQL on a connection of its own without the statement bound."""
        if self._sync is not None:
            return await self.write(unit)
        engine = _postgres_engine(self.url, self._busy_timeout, bounded=False)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(unit)
        finally:
            await engine.dispose()

    async def probe(self, holder: str, now: datetime) -> None:
        """Commit one tiny write (the readiness probe's row, stamped with `holder` and
        `now`), as every write is committed; raises as `write` does."""
        await self.write(lambda conn: _stamp_probe_row(conn, holder, now))

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None for PostgreSQL or an in-memory database."""
        if not self.sqlite:
            return None
        name = make_url(self.url).database
        return Path(name) if name and name != ":memory:" else None

    async def read(self, unit: Unit[T]) -> T:
        """Run `unit` in its own transaction beside the writer; a store that cannot
        answer raises StoreUnavailable (HTTP 503, a skipped job); a faulty statement
        raises its driver error (HTTP 500, logged)."""
        try:
            if self._sync is not None:
                return await _on_pool(self._readers, _transaction, self._sync, unit, "DEFERRED")
            assert self._async is not None
            return await _bounded(self._async, unit, write=False)
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailable(describe_error(exc)) from exc
            raise

    def checkpoint_in_background(self) -> None:
        """Fold SQLite's log back into the file from a thread of its own instead of in
        the writer's commits (the daemon; a command's few writes leave it to SQLite)."""
        path = self.sqlite_file
        if path is not None and self._checkpoints is None:
            self._checkpoints = Checkpoints(path, busy_timeout=self._busy_timeout)
            self._checkpoints.start()

    async def dispose(self) -> None:
        if self._checkpoints is not None:
            await asyncio.to_thread(self._checkpoints.stop)
        if self._sync is not None:
            self._writer.shutdown(wait=True)
            self._readers.shutdown(wait=True)
            self._sync.dispose()
        if self._async is not None:
            await self._async.dispose()


async def _bounded(engine: AsyncEngine, unit: Unit[T], write: bool = True) -> T:
    """A unit of work on PostgreSQL. A statement that timed out on the client side
    leaves its connection mid-protocol (the server may never answer): the connection
    is dropped, not rolled back on (which would wait as long again) nor pooled."""
    async with engine.connect() as conn:
        try:
            if not write:
                return await conn.run_sync(unit)
            async with conn.begin():
                return await conn.run_sync(unit)
        except TimeoutError:
            await conn.invalidate()
            raise


async def _on_pool(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _transaction(engine: Engine, unit: Unit[T], begin: str) -> T:
    with engine.connect() as conn:
        conn.execution_options(**{_SQLITE_BEGIN: begin})
        with conn.begin():
            return unit(conn)


class SqliteWriter:
    """A connection of its own to a SQLite file, configured as `Database`'s, that runs
    units of work as its writer does (`BEGIN IMMEDIATE`), synchronously: for the
    ingest process (runtime/ingestproc.py), which has no event loop."""

    def __init__(self, url: str, *, busy_timeout: timedelta, synchronous: str) -> None:
        self._engine = _sqlite_engine(make_url(url), busy_timeout, synchronous)
        self._conn: Connection | None = None

    def write(self, unit: Unit[T]) -> T:
        # One connection kept from write to write: checking one out of the pool and
        # back in (a rollback to reset it) cost about 2% of the ingest process's CPU.
        if self._conn is None:
            self._conn = self._engine.connect()
            self._conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        try:
            with self._conn.begin():
                return unit(self._conn)
        except BaseException:
            self._close(drop=True)  # the next write opens a fresh connection
            raise

    def _close(self, drop: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: dropped anyway
                if drop:
                    conn.invalidate()  # not back into the pool
                conn.close()

    def dispose(self) -> None:
        self._close()
        self._engine.dispose()


def _stamp_probe_row(conn: Connection, holder: str, now: datetime) -> None:
    row = leases.c.job == PROBE_JOB
    if conn.execute(update(leases).where(row).values(holder=holder, until=now)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(leases).values(job=PROBE_JOB, holder=holder, until=now))
    except IntegrityError:  # another replica inserted it first: the write was taken
        pass


def _sqlite_engine(url: URL, busy_timeout: timedelta, synchronous: str) -> Engine:
    # The URL's driver (e.g. +aiosqlite) is replaced by the standard library's.
    engine = create_engine(
        url.set(drivername="sqlite"),
        connect_args={"check_same_thread": False, "timeout": busy_timeout.total_seconds()},
        pool_size=READER_THREADS + 1,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN covers the reads of a
        # unit of work too (the driver would only begin at the first write).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Before the first table of a new file: the space retention frees can then be
        # given back to the file system (PRAGMA incremental_vacuum). A file made
        # without it keeps its mode (only a VACUUM changes it) and reuses free pages.
        # Only on an empty file: on one in use the pragma would wait for the write
        # lock, and a reader must never wait for a writer.
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; FULL also survives power loss.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout.total_seconds() * 1000)}")
        # The daemon checkpoints from a thread of its own (store/checkpoints.py).
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE for writes: SQLite's busy handler (busy_timeout) applies to taking
        # the write lock at BEGIN, not to upgrading a read transaction later.
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: str, busy_timeout: timedelta, bounded: bool = True) -> AsyncEngine:
    # Imported here: the ingest process (SQLite only) starts without it and the ORM
    # it brings.
    from sqlalchemy.ext.asyncio import create_async_engine

    timeout_ms = int(busy_timeout.total_seconds() * 1000)
    connect_args: dict[str, Any] = {
        "timeout": max(busy_timeout.total_seconds(), 1.0),
        "server_settings": {"lock_timeout": str(timeout_ms), "application_name": "itsmd"},
    }
    if bounded:  # asyncpg's own timeout of every command, COMMIT and ROLLBACK included
        connect_args["command_timeout"] = (busy_timeout + STATEMENT_GRACE).total_seconds()
    return create_async_engine(
        url,
        pool_pre_ping=True,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
    )
