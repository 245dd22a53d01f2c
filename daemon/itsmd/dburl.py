"""What a database URL names, without importing a database library (`itsmd run`
asks before it imports the store)."""

from __future__ import annotations


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")
