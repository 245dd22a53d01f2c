"""incidents_text: a trigram index of incident titles and keys (SQLite FTS5), so that
the incident search `q` looks text up instead of reading every title

Kept by triggers on incidents (an update that leaves the title and key as they were
touches nothing). A SQLite without FTS5's trigram tokenizer (before 3.34) gets no
index, and the search reads every title as before; PostgreSQL too (its `ILIKE` scan).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import OperationalError

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

_ADD = "INSERT INTO incidents_text (rowid, title, key) VALUES (NEW.id, NEW.title, NEW.key);"
_REMOVE = (
    "INSERT INTO incidents_text (incidents_text, rowid, title, key) "
    "VALUES ('delete', OLD.id, OLD.title, OLD.key);"
)
_TRIGGERS = [
    f"CREATE TRIGGER incidents_text_insert AFTER INSERT ON incidents BEGIN {_ADD} END",
    f"CREATE TRIGGER incidents_text_delete AFTER DELETE ON incidents BEGIN {_REMOVE} END",
    "CREATE TRIGGER incidents_text_update AFTER UPDATE OF title, key ON incidents "
    "WHEN OLD.title IS NOT NEW.title OR OLD.key IS NOT NEW.key "
    f"BEGIN {_REMOVE} {_ADD} END",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    try:
        op.execute(
            "CREATE VIRTUAL TABLE incidents_text USING fts5(title, key, content='incidents', "
            "content_rowid='id', tokenize='trigram')"
        )
    except OperationalError as exc:  # no FTS5, or no trigram tokenizer
        log.warning("no text index of incidents (the search reads every title): %s", exc)
        return
    for statement in _TRIGGERS:
        op.execute(statement)
    op.execute("INSERT INTO incidents_text (incidents_text) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("incidents_text_insert", "incidents_text_delete", "incidents_text_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS incidents_text")
