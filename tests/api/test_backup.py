"""`itsmd backup` and `itsmd restore` on SQLite files (store/backup.py, cli/backup.py).

The stores are written by the real app; the process that has a store open is a real
second process. A backup during a burst into a running daemon, and a restore into a
new one, are in tests/e2e/test_backup_e2e.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.store.backup import KEPT_SUFFIX, BackupError, backup, restore
from itsmd.store.engine import Database
from itsmd.store.migrate import SchemaState, head_revision, upgrade
from tests.api.api_support import MakeClient

ALERTS = 12

# A second process that opens the store as the daemon does (WAL) and keeps it open.
_OPEN_AS_DAEMON = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
print("open", flush=True)
sys.stdin.read()
"""
# One that holds SQLite's shared lock on a file SQLite itself cannot read.
_HOLD_SHARED_LOCK = """
import fcntl, sys
file = open(sys.argv[1], "rb")
fcntl.lockf(file, fcntl.LOCK_SH, 510, 0x40000002)
print("open", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """These are SQLite tools: one engine only."""
    return sqlite_url


@pytest.fixture
async def store(make_client: MakeClient, sqlite_url: str) -> Path:
    """A store the app wrote: ALERTS alerts, one incident per alert name, closed."""
    client = await make_client()
    await client.generic(
        *({"labels": {"alertname": f"Down{n % 3}", "pod": f"web-{n}"}} for n in range(ALERTS))
    )
    assert len(await client.incidents()) == 3
    await client.close()
    return Path(sqlite_url.split(":///", 1)[1])


@contextmanager
def held_open(path: Path, program: str = _OPEN_AS_DAEMON) -> Iterator[None]:
    with subprocess.Popen(
        [sys.executable, "-c", program, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "open"
            yield
        finally:
            proc.stdin.close()  # it exits
            proc.wait(timeout=10)


def execute(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql)


def count(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        value: int = conn.execute(sql).fetchone()[0]
        return value


def facts(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def leftovers(directory: Path) -> list[str]:
    """Temporary files a command left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_backup_is_a_checked_self_contained_copy(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    result = backup(store, target)
    assert result.path == target
    assert result.size_bytes == target.stat().st_size
    assert result.contents.revision == head_revision()
    assert result.contents.schema is SchemaState.CURRENT
    assert (result.contents.incidents, result.contents.alerts) == (3, ALERTS)
    assert count(target, "SELECT count(*) FROM alerts") == ALERTS
    with closing(sqlite3.connect(target)) as conn:  # no -wal needed beside it
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert target.stat().st_mode & 0o777 == store.stat().st_mode & 0o777
    assert leftovers(tmp_path) == []


def test_backup_names_each_fact_on_its_own_line(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy.db"
    assert main(["backup", str(target), "--db", f"sqlite+aiosqlite:///{store}"]) == 0
    out = facts(capsys.readouterr().out)
    assert out["written"] == str(target)
    assert out["size"].startswith(f"{target.stat().st_size} bytes")
    assert out["revision"] == head_revision()
    assert (out["incidents"], out["alerts"], out["integrity"]) == ("3", str(ALERTS), "ok")


def test_backup_takes_the_store_of_the_config_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "itsmd.yml"
    config.write_text(f"database: sqlite+aiosqlite:///{store}\n")
    target = tmp_path / "copy.db"
    assert main(["backup", str(target), "--config", str(config)]) == 0
    assert facts(capsys.readouterr().out)["alerts"] == str(ALERTS)


def test_backup_refuses_to_overwrite_a_file_unless_forced(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy.db"
    target.write_bytes(b"yesterday's backup")
    url = f"sqlite+aiosqlite:///{store}"
    assert main(["backup", str(target), "--db", url]) == 1
    err = capsys.readouterr().err
    assert err == f"itsmd: backup: {target} exists: give --force to overwrite it\n"
    assert target.read_bytes() == b"yesterday's backup"
    assert main(["backup", str(target), "--db", url, "--force"]) == 0
    assert count(target, "SELECT count(*) FROM alerts") == ALERTS
    assert leftovers(tmp_path) == []


def test_backup_of_a_missing_store_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=f"no database file {tmp_path / 'none.db'}"):
        backup(tmp_path / "none.db", tmp_path / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_backup_refuses_to_write_over_the_store_itself(store: Path) -> None:
    with pytest.raises(BackupError, match="is the database itself"):
        backup(store, store, force=True)


def test_restore_puts_the_backup_in_place_and_keeps_the_previous_store(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy.db"
    backup(store, target)
    execute(store, "DELETE FROM timeline")  # a change made after the backup
    url = f"sqlite+aiosqlite:///{store}"

    assert main(["restore", str(target), "--db", url]) == 0
    out = facts(capsys.readouterr().out)
    kept = store.with_name(store.name + KEPT_SUFFIX)
    assert out["restored"] == f"{store} from {target}"
    assert out["previous store kept"] == str(kept)
    assert (out["alerts"], out["integrity"]) == (str(ALERTS), "ok")
    assert count(store, "SELECT count(*) FROM timeline") > 0
    assert count(kept, "SELECT count(*) FROM timeline") == 0
    assert leftovers(tmp_path) == []


def test_restore_without_keeping_replaces_a_store_with_a_stale_wal(
    store: Path, tmp_path: Path
) -> None:
    target = tmp_path / "copy.db"
    backup(store, target)
    for suffix in ("-wal", "-shm"):  # left by a daemon that crashed, say
        store.with_name(store.name + suffix).write_bytes(b"\0" * 4096)
    result = restore(target, store, keep=False)
    assert result.kept is None
    assert not store.with_name(store.name + KEPT_SUFFIX).exists()
    assert not store.with_name(store.name + "-wal").exists()
    assert not store.with_name(store.name + "-shm").exists()
    assert count(store, "SELECT count(*) FROM alerts") == ALERTS


def test_restore_into_a_new_file(store: Path, tmp_path: Path) -> None:
    new = tmp_path / "new" / "itsmd.db"
    new.parent.mkdir()
    result = restore(store, new)
    assert result.kept is None
    assert (result.contents.incidents, result.contents.alerts) == (3, ALERTS)
    with closing(sqlite3.connect(new)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert count(new, "SELECT count(*) FROM alerts") == ALERTS


def test_restore_refuses_while_another_process_has_the_store_open(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy.db"
    backup(store, target)
    before = store.read_bytes()
    with held_open(store):
        assert main(["restore", str(target), "--db", f"sqlite+aiosqlite:///{store}"]) == 1
    assert f"itsmd: restore: {store} is in use by another process" in capsys.readouterr().err
    assert store.read_bytes() == before
    assert not store.with_name(store.name + KEPT_SUFFIX).exists()
    assert leftovers(tmp_path) == []


def test_restore_over_a_damaged_store_keeps_it_unless_a_process_holds_it(
    store: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"not a database any more" * 300)
    with held_open(damaged, _HOLD_SHARED_LOCK), pytest.raises(BackupError, match="in use"):
        restore(store, damaged)
    result = restore(store, damaged)
    assert result.kept is not None
    assert result.kept.read_bytes() == b"not a database any more" * 300
    assert count(damaged, "SELECT count(*) FROM alerts") == ALERTS


def test_restore_refuses_a_file_that_is_not_an_itsmd_database(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{store}"
    before = store.read_bytes()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n" * 200)
    assert main(["restore", str(junk), "--db", url]) == 1
    assert capsys.readouterr().err == f"itsmd: restore: {junk} is not a SQLite database\n"

    other = tmp_path / "other.db"
    execute(other, "CREATE TABLE t (x)")
    assert main(["restore", str(other), "--db", url]) == 1
    assert f"{other} is not an itsmd database" in capsys.readouterr().err
    assert store.read_bytes() == before
    assert leftovers(tmp_path) == []


async def test_restore_takes_an_older_schema_and_refuses_a_newer_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = tmp_path / "older.db"
    db = Database(f"sqlite+aiosqlite:///{older}", busy_timeout=timedelta(seconds=1))
    await upgrade(db, "0013")
    await db.dispose()
    url = f"sqlite+aiosqlite:///{tmp_path / 'itsmd.db'}"

    assert main(["restore", str(older), "--db", url]) == 0
    revision = facts(capsys.readouterr().out)["revision"]
    assert revision.startswith(f"0013 (older than this itsmd's {head_revision()}")
    assert "`itsmd db upgrade`" in revision

    execute(older, "UPDATE alembic_version SET version_num = '9999'")
    assert main(["restore", str(older), "--db", url, "--no-keep"]) == 1
    err = capsys.readouterr().err
    assert f"{older} has schema revision 9999, newer than this itsmd's" in err


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_postgresql_is_refused_with_a_pointer_to_its_own_tools(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+asyncpg://itsmd:secret@db.example:5432/itsmd"
    assert main([command, str(tmp_path / "x.db"), "--db", url]) == 2
    err = capsys.readouterr().err
    assert "pg_dump" in err
    assert "docs/operations.md" in err
    assert "secret" not in err
    assert list(tmp_path.iterdir()) == []
