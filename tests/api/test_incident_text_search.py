"""The incident search `q` in titles and keys gives the same incidents whether the
trigram index of SQLite names them (migration 0015) or every title is read: the index
only narrows, LIKE decides (docs/api.md, Listing incidents)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert

from itsmd.models import Priority
from itsmd.store import repo
from itsmd.store.engine import Database
from itsmd.store.tables import incidents
from tests.api.api_support import stored_incident

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TITLES = [
    "Disk full on db-1",
    "Latency of api over 2s",
    "50% of requests fail",
    "under_score in a name",
    'quoted "text" here',
    "ÉCOLE down",  # LIKE folds the case of ASCII letters only
    "école down",
    "Tiny",
    "db-10 disk FULL",
]
NEEDLES = [
    "disk full", "DB-1", "50%", "%", "_", "under_", '"text"', 'd "t', "école", "ÉCOLE",
    "cole d", "ti", "tin", "y", "on", "no such text", "api over 2s", "2s",
]  # fmt: skip


@pytest.fixture
async def stored(db: Database) -> Database:
    minute = timedelta(minutes=1)

    def add(conn: Connection) -> None:
        for n, title in enumerate(TITLES):
            resolved = n % 3 == 0
            inc = stored_incident(
                f"r{{n={n}}}",
                T0 + n * minute,
                title=title,
                priority=list(Priority)[n % 5],
                resolved_at=T0 + 9 * minute if resolved else None,
            )
            conn.execute(insert(incidents).values(repo.incident_values(inc)))

    await db.write(add)
    return db


@pytest.mark.parametrize("order", list(repo.IncidentOrder))
async def test_the_index_names_what_reading_every_title_finds(
    stored: Database, monkeypatch: pytest.MonkeyPatch, order: repo.IncidentOrder
) -> None:
    for q in NEEDLES:
        f = repo.IncidentFilter(q=q, order=order)

        def found(conn: Connection, f: repo.IncidentFilter = f) -> list[str]:
            return [i.title for i in repo.list_incidents(conn, f, 50)]

        indexed = await stored.read(found)
        monkeypatch.setattr(repo, "TEXT_LOOKUP_MAX", -1)  # every title read
        scanned = await stored.read(found)
        monkeypatch.undo()
        assert indexed == scanned, q


async def test_the_index_narrows_only_when_it_names_few(
    stored: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite = stored.sqlite
    named = await stored.read(lambda conn: repo.text_lookup(conn, "down"))
    assert named == ([6, 7] if sqlite else None)  # both écoles: the index folds É
    assert await stored.read(lambda conn: repo.text_lookup(conn, "ti")) is None  # no trigram
    monkeypatch.setattr(repo, "TEXT_LOOKUP_MAX", 1)
    assert await stored.read(lambda conn: repo.text_lookup(conn, "down")) is None  # too many
