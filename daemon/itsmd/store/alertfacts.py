"""What is kept beside the alert rows for reads at scale: the label values of each
incident's alerts (`incident_labels`, for the incident search) and the alerts that
started in each quarter hour per rule and alertname (`alert_counts`, for the service
review).

On PostgreSQL, triggers on `alerts` keep both (migrations 0014 and 0017). On SQLite the
writer adds those of the alerts it inserts, one statement for each table and batch
(migration 0021): the triggers ran once per row and cost about a fifth of the writer's
CPU, while the 20 alerts of one webhook mostly share their values and their count's
key. Alerts that move to another incident, are re-routed or are deleted stay with the
triggers on both stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from itsmd.store.tables import LABEL_VALUE_MAX, QUARTER_S

# (incident id or None, rule or None, starts_at, labels) of one inserted alert.
AlertFacts = tuple[int | None, str | None, datetime, Mapping[str, str]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

_ADD_LABELS = "INSERT OR IGNORE INTO incident_labels (value, incident_id) VALUES (?, ?)"
_ADD_COUNTS = (
    "INSERT INTO alert_counts (quarter, rule, alertname, writer, alerts) VALUES (?, ?, ?, 0, ?) "
    "ON CONFLICT (quarter, rule, alertname, writer) "
    "DO UPDATE SET alerts = alert_counts.alerts + excluded.alerts"
)


def quarter_of(starts_at: datetime) -> int:
    """The Unix time of the quarter hour an alert started in, as migration 0017's
    triggers compute it: whole seconds (the fraction dropped), then SQL's integer
    division, which truncates towards zero."""
    seconds = (starts_at - _EPOCH) // _SECOND
    quarter = abs(seconds) // QUARTER_S * QUARTER_S
    return quarter if seconds >= 0 else -quarter


def add_sqlite(conn: Connection, inserted: Iterable[AlertFacts]) -> None:
    """Add the facts of newly inserted alert rows (SQLite, whose writer is the only one:
    its counts are writer 0's)."""
    values: dict[tuple[str, int], None] = {}  # in order, each pair once
    counts: dict[tuple[int, str, str], int] = {}
    # The alerts of a webhook mostly share startsAt. Only UTC times are remembered:
    # two equal times of another zone can be different instants, a fold apart.
    quarters: dict[datetime, int] = {}
    for incident_id, rule, starts_at, labels in inserted:
        if incident_id is not None:
            for value in labels.values():
                if len(value) <= LABEL_VALUE_MAX:
                    values[value, incident_id] = None
        utc = starts_at.tzinfo is UTC
        quarter = quarters.get(starts_at) if utc else None
        if quarter is None:
            quarter = quarter_of(starts_at)
            if utc:
                quarters[starts_at] = quarter
        key = (quarter, rule or "", labels.get("alertname") or "")
        counts[key] = counts.get(key, 0) + 1
    if values:
        conn.exec_driver_sql(_ADD_LABELS, list(values))
    if counts:
        conn.exec_driver_sql(_ADD_COUNTS, [(*key, n) for key, n in counts.items()])
