"""Backup and restore of a SQLite store, safe beside a running daemon.

`backup` copies with SQLite's online backup API inside one read transaction: in WAL
mode a reader never blocks the writer, and holding the snapshot across the steps
keeps the copy consistent (without it, every commit of the daemon would restart the
copy). `restore` puts a checked backup in place of a database no process has open.
Both write a temporary file beside their target and rename it, so the target is
either the old file or the whole new one.

PostgreSQL has its own tools (pg_dump, pg_restore, WAL archiving); see
docs/operations.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from itsmd.dburl import is_sqlite
from itsmd.store.migrate import SchemaState, alembic_config
from itsmd.store.sqlitefile import connect
from itsmd.store.tables import alerts, incidents

# Pages copied per step (4 MiB at SQLite's default page size) and the pause between
# steps: the copy shares the disk and the CPU with the daemon instead of taking them.
PAGES_PER_STEP = 1024
STEP_PAUSE_S = 0.005
KEPT_SUFFIX = ".before-restore"
# Files SQLite keeps beside a database; a stale one beside a new file would be
# replayed into it.
_SIDECARS = ("-wal", "-shm", "-journal")
# SQLite's lock bytes on Unix: every connection that has the file open in WAL mode
# holds a shared lock in this range (os_unix.c: PENDING_BYTE + 2, SHARED_SIZE).
_SHARED_FIRST = 0x40000000 + 2
_SHARED_SIZE = 510


class BackupError(Exception):
    """A backup or restore refused or failed; the message names the file."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a checked database file holds."""

    revision: str
    schema: SchemaState  # CURRENT or OUTDATED: anything else is refused
    head: str | None  # the revision of this itsmd
    incidents: int
    alerts: int


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size_bytes: int
    contents: Contents


@dataclass(frozen=True, slots=True)
class RestoreResult:
    path: Path
    size_bytes: int
    contents: Contents
    kept: Path | None  # where the previous database is, if it was kept


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (relative to the working directory, as the daemon
    opens it); None for PostgreSQL."""
    if not is_sqlite(url):
        return None
    name = make_url(url).database
    return Path(name) if name and name != ":memory:" else None


def backup(
    db_path: Path, target: Path, *, force: bool = False, busy_timeout_s: float = 5.0
) -> BackupResult:
    """Copy the database at `db_path` to `target`, consistent as of one moment, while
    a daemon may write to it; the copy is checked before it takes `target`'s place."""
    if not db_path.is_file():
        raise BackupError(f"no database file {db_path}")
    if target.exists() and target.resolve() == db_path.resolve():
        raise BackupError(f"{target} is the database itself: back up to another file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: give --force to overwrite it")
    if not target.parent.is_dir():
        raise BackupError(f"no directory {target.parent} for {target}")
    with _temporary_beside(target) as tmp:
        # mode=rw: never create an empty database where the daemon's should be, and
        # leave no -wal or -shm behind when no daemon runs.
        _copy(db_path, "rw", tmp, busy_timeout_s)
        contents = inspect(tmp, shown=f"the copy of {db_path}")
        _take_owner(tmp, db_path)
        _publish(tmp, target)
    return BackupResult(target, target.stat().st_size, contents)


def restore(backup_path: Path, db_path: Path, *, keep: bool = True) -> RestoreResult:
    """Put the backup at `backup_path` in place of the database at `db_path`, which no
    process may have open; the previous database is kept beside it unless `keep` is
    false."""
    if not backup_path.is_file():
        raise BackupError(f"no backup file {backup_path}")
    if not db_path.parent.is_dir():
        raise BackupError(f"no directory {db_path.parent} for {db_path}")
    if db_path.exists():
        _refuse_if_locked(db_path)  # now rather than after copying a large backup
    with _temporary_beside(db_path) as tmp:
        # Through the backup API rather than a file copy: a backup in WAL mode brings
        # its -wal along, and the backup file itself is only read.
        _copy(backup_path, "ro", tmp, busy_timeout_s=0.5)
        contents = inspect(tmp, shown=str(backup_path))
        _take_owner(tmp, db_path if db_path.exists() else backup_path)
        with _exclusive(db_path):
            kept = _keep(db_path) if keep and db_path.exists() else None
            for sidecar in _SIDECARS:
                _sidecar(db_path, sidecar).unlink(missing_ok=True)
            _publish(tmp, db_path)
    return RestoreResult(db_path, db_path.stat().st_size, contents, kept)


def inspect(path: Path, shown: str | None = None) -> Contents:
    """Check that `path` is an undamaged itsmd database this version can open;
    messages call it `shown` (default: its path)."""
    name = str(path) if shown is None else shown
    try:
        return _check(path, name)
    except sqlite3.Error as exc:
        raise BackupError(f"{name} is not a readable SQLite database: {exc}") from None


def _copy(source_path: Path, mode: str, tmp: Path, busy_timeout_s: float) -> None:
    try:
        source = connect(source_path, mode, busy_timeout_s)
        try:
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
            target = sqlite3.connect(tmp, isolation_level=None)
            try:
                source.backup(target, pages=PAGES_PER_STEP, sleep=STEP_PAUSE_S)
                # One self-contained file: no -wal needed beside the copy.
                target.execute("PRAGMA journal_mode=DELETE").fetchone()
            finally:
                target.close()
            source.execute("COMMIT")
        finally:
            source.close()
    except sqlite3.Error as exc:
        if exc.sqlite_errorname == "SQLITE_NOTADB":
            raise BackupError(f"{source_path} is not a SQLite database") from None
        raise BackupError(f"cannot copy {source_path}: {exc}") from None
    _fsync(tmp)


def _check(path: Path, name: str) -> Contents:
    conn = connect(path, "ro", 0.5)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"{name} is damaged: {'; '.join(problems[:3])}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not {"alembic_version", incidents.name, alerts.name} <= tables:
            raise BackupError(f"{name} is not an itsmd database (it has no itsmd schema)")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None:
            raise BackupError(f"{name} is not an itsmd database (it has no schema revision)")
        revision: str = row[0]
        counts = [
            conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]  # noqa: S608
            for table in (incidents, alerts)
        ]
    finally:
        conn.close()
    schema, head = _schema(revision)
    if schema is SchemaState.UNKNOWN:
        raise BackupError(
            f"{name} has schema revision {revision}, newer than this itsmd's {head} "
            "(or not itsmd's): use the itsmd version that wrote it"
        )
    return Contents(revision, schema, head, counts[0], counts[1])


def _schema(revision: str) -> tuple[SchemaState, str | None]:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if revision == head:
        return SchemaState.CURRENT, head
    known = {rev.revision for rev in script.walk_revisions()}
    return (SchemaState.OUTDATED if revision in known else SchemaState.UNKNOWN), head


@contextlib.contextmanager
def _exclusive(db_path: Path) -> Iterator[None]:
    """Hold `db_path` so that no process opens it while it is replaced; refuse when one
    has it open."""
    if not db_path.exists():
        yield
        return
    conn = connect(db_path, "rw", 0.5)
    try:
        if _leave_wal(conn, db_path):
            conn.execute("BEGIN EXCLUSIVE")  # no reader either until the new file is in
            yield
            conn.execute("ROLLBACK")
            return
    finally:
        conn.close()
    # A damaged file, which restoring over is for: tell use by SQLite's locks alone.
    _refuse_if_locked(db_path)
    yield


def _leave_wal(conn: sqlite3.Connection, db_path: Path) -> bool:
    """Switch the database out of WAL mode, which needs every other connection closed
    and leaves the file whole (its WAL folded in) for keeping; False when the file is
    not a database SQLite can open."""
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorname in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            raise _in_use(db_path) from None
        if exc.sqlite_errorname in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            return False
        raise BackupError(f"cannot open {db_path}: {exc}") from None
    if mode != "delete":
        raise _in_use(db_path)
    return True


def _refuse_if_locked(db_path: Path) -> None:
    """Refuse when another process holds SQLite's shared lock on the file, as every
    connection in WAL mode does while it is open. (Closing this file drops every
    lock this process has on it: call it with no connection of ours open.)"""
    with db_path.open("r+b") as file:
        try:
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB, _SHARED_SIZE, _SHARED_FIRST)
        except OSError:
            raise _in_use(db_path) from None
        fcntl.lockf(file, fcntl.LOCK_UN, _SHARED_SIZE, _SHARED_FIRST)


def _in_use(db_path: Path) -> BackupError:
    return BackupError(
        f"{db_path} is in use by another process (a running itsmd?): stop it, then restore"
    )


def _keep(db_path: Path) -> Path:
    """Keep the current database as `<name>.before-restore`, with its own WAL or journal
    when it has one (SQLite finds them by name)."""
    kept = db_path.with_name(db_path.name + KEPT_SUFFIX)
    for sidecar in ("", *_SIDECARS):
        _sidecar(kept, sidecar).unlink(missing_ok=True)
    try:
        os.link(db_path, kept)  # the target keeps its name until the new file replaces it
    except OSError:
        shutil.copy2(db_path, kept)
    for sidecar in ("-wal", "-journal"):
        if _sidecar(db_path, sidecar).exists():
            os.replace(_sidecar(db_path, sidecar), _sidecar(kept, sidecar))
    return kept


def _take_owner(tmp: Path, like: Path) -> None:
    """Give the new file the mode and (when allowed) the owner of `like`: a restore run
    as root must leave a database the daemon's user can open."""
    stat = like.stat()
    os.chmod(tmp, stat.st_mode & 0o777)
    with contextlib.suppress(PermissionError):
        os.chown(tmp, stat.st_uid, stat.st_gid)


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[Path]:
    """A new file in `target`'s directory (so that renaming it is atomic), removed
    unless it was renamed into place."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        for sidecar in ("", *_SIDECARS):
            _sidecar(tmp, sidecar).unlink(missing_ok=True)


def _publish(tmp: Path, target: Path) -> None:
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
