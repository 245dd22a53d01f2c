"""`itsmd backup FILE` and `itsmd restore FILE`: copies of a SQLite store, taken while
the daemon runs and put back while it is stopped (docs/operations.md)."""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itsmd.config import Overrides, Settings, load_settings

if TYPE_CHECKING:
    from itsmd.store.backup import Contents

# The store's modules (SQLAlchemy, Alembic) are imported by the commands that use
# them, not by every `itsmd` command.

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_POSTGRES_HINT = (
    "works on a SQLite store; this one is PostgreSQL: use pg_dump -Fc and pg_restore, "
    "or point-in-time recovery (docs/operations.md, Backup and restore)"
)


def add_commands(sub: Any) -> None:
    bak = sub.add_parser(
        "backup",
        help="copy the SQLite store to FILE, consistent while the daemon runs",
        description="Copies the store with SQLite's online backup API while the daemon "
        "goes on ingesting, checks the copy, and renames it into place. Example: itsmd "
        "backup --config /etc/itsmd/itsmd.yml /var/backups/itsmd-$(date +%F).db",
    )
    bak.add_argument("file", type=Path, metavar="FILE", help="the backup file to write")
    _add_store_args(bak)
    bak.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    bak.set_defaults(func=_backup)

    res = sub.add_parser(
        "restore",
        help="replace the SQLite store with a backup (the daemon must be stopped)",
        description="Checks FILE, then puts it in place of the store; the previous "
        "store is kept as <store>.before-restore. Refused while a process has the "
        "store open.",
    )
    res.add_argument("file", type=Path, metavar="FILE", help="a file written by itsmd backup")
    _add_store_args(res)
    res.add_argument(
        "--no-keep", action="store_true", help="do not keep the previous store beside it"
    )
    res.set_defaults(func=_restore)


def _add_store_args(p: argparse.ArgumentParser) -> None:
    # The store is chosen as `itsmd db upgrade` chooses it.
    p.add_argument("--config", type=Path, help="config file (itsmd.yml)")
    p.add_argument("--db", metavar="URL", help="database URL (env ITSMD_DB)")


def _store_file(args: argparse.Namespace, command: str) -> tuple[Path | None, Settings]:
    from itsmd.store.backup import sqlite_file

    settings = load_settings(args.config, Overrides(database=args.db))
    path = sqlite_file(settings.database)
    if path is None:
        print(f"itsmd: {command} {_POSTGRES_HINT}", file=sys.stderr)
    return path, settings


def _backup(args: argparse.Namespace) -> int:
    from itsmd.store.backup import BackupError, backup

    db_path, settings = _store_file(args, "backup")
    if db_path is None:
        return EXIT_USAGE
    try:
        result = backup(
            db_path,
            args.file,
            force=args.force,
            busy_timeout_s=settings.busy_timeout.total_seconds(),
        )
    except (BackupError, OSError) as exc:  # OSError: a full disk, a permission
        print(f"itsmd: backup: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"written: {result.path}")
    print(f"size: {_size(result.size_bytes)}")
    _print_contents(result.contents)
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from itsmd.store.backup import BackupError, restore

    db_path, _ = _store_file(args, "restore")
    if db_path is None:
        return EXIT_USAGE
    try:
        result = restore(args.file, db_path, keep=not args.no_keep)
    except (BackupError, OSError) as exc:  # OSError: a full disk, a permission
        print(f"itsmd: restore: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"restored: {result.path} from {args.file}")
    if result.kept is not None:
        print(f"previous store kept: {result.kept}")
    print(f"size: {_size(result.size_bytes)}")
    _print_contents(result.contents)
    return EXIT_OK


def _print_contents(contents: Contents) -> None:
    from itsmd.store.migrate import SchemaState

    if contents.schema is SchemaState.OUTDATED:
        print(
            f"revision: {contents.revision} (older than this itsmd's {contents.head}: "
            "`itsmd db upgrade` or `itsmd run --migrate` upgrades it)"
        )
    else:
        print(f"revision: {contents.revision}")
    print(f"incidents: {contents.incidents}")
    print(f"alerts: {contents.alerts}")
    print("integrity: ok")


def _size(size_bytes: int) -> str:
    return f"{size_bytes} bytes ({size_bytes / 2**20:.1f} MiB)"
