"""Table definitions (the schema Alembic migrations create)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no time type: values are stored as
    fixed-width UTC text (`2026-01-31 12:00:00.000000`, SQLAlchemy's own format), so
    that text order is time order and the (fingerprint, starts_at) key stays exact.
    Formatting here directly is also the cheapest bind on the ingest path.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return sqlite_time(value)
        return _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            # The offset parsed with the text, not set after: replace() costs 5 times as
            # much, and a large incident reads thousands of these.
            return datetime.fromisoformat(value + "+00:00")
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_text(value: Any) -> str:
    """A JSON column's value as stored (the engines' serializer)."""
    return orjson.dumps(value).decode()


def _utc(value: datetime) -> datetime:
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
    return value


def sqlite_time(value: datetime) -> str:
    """A time as SQLite stores it (UTCDateTime): fixed-width UTC text."""
    return _sqlite_text(_utc(value))


@lru_cache(maxsize=4096)  # a batch repeats its receive time and often its startsAt
def _sqlite_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


# Literal in the query too: a bound parameter could keep PostgreSQL off the partial index.
SUPPRESSED_FIRING = "action = 'suppressed' AND status = 'firing'"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# What the SLA summary reads of an incident, after the columns it searches by.
_SLA_FACTS = ("priority", "respond_due", "responded_at", "resolved_at", "resolve_due")

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("key", Text, nullable=False),
    # Equal to `key` while the incident takes new alerts of its key, else NULL: the
    # unique constraint keeps at most one such incident per key, across replicas too.
    Column("active_key", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("priority", String(2), nullable=False),
    Column("impact", String(8), nullable=False),
    Column("urgency", String(8), nullable=False),
    Column("service", String(200), nullable=True),
    Column("assignee", String(200), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("responded_at", UTCDateTime, nullable=True),  # a person's first response
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("all_clear_at", UTCDateTime, nullable=True),
    Column("auto_resolve_at", UTCDateTime, nullable=True),
    Column("respond_due", UTCDateTime, nullable=True, index=True),  # the SLA clock scans
    Column("resolve_due", UTCDateTime, nullable=True, index=True),
    Column("alert_count", Integer, nullable=False),
    Column("firing_count", Integer, nullable=False),
    Column("window_s", Float, nullable=False),
    Column("auto_resolve_s", Float, nullable=True),
    Column("reopen_s", Float, nullable=False),
    Column("parent_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("problem_id", Integer, nullable=True),
    Column("problem_key", Text, nullable=True),
    Column("known_error", Text, nullable=True),
    # The timeline's marks, kept by a trigger on `timeline` (migration 0017): times
    # reopened, and who resolved it last (models.ResolvedBy; NULL before a resolution).
    Column("reopens", Integer, nullable=False, server_default=text("0")),
    Column("resolved_by", String(8), nullable=True),
    UniqueConstraint("active_key"),
    # With the id: the lists page through one (status, priority) range newest first
    # without sorting it (SQLite adds the rowid to an index anyway, PostgreSQL does not).
    Index(None, "status", "priority", "id"),
    Index(None, "key"),
    Index(None, "auto_resolve_at"),
    Index(None, "service", "id"),
    # The SLA summary's: covering, so that it counts incidents without reading their
    # rows (store/slaclock.py). The window's also serves every search by time.
    Index("ix_incidents_sla_unresolved", "status", "opened_at", *_SLA_FACTS),
    Index("ix_incidents_sla_window", "opened_at", "status", *_SLA_FACTS),
    Index(None, "problem_key", "opened_at"),
    # Deleting an incident checks that no incident names it as its parent: without
    # this index, by reading every incident (retention deletes thousands).
    Index(None, "parent_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("status", String(10), nullable=False),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("first_received", UTCDateTime, nullable=False),
    Column("last_received", UTCDateTime, nullable=False),
    Column("receive_count", Integer, nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("rule", String(200), nullable=True),
    Column("key", Text, nullable=True),
    Column("action", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # The maintenance window that suppressed it: name and change id.
    Column("suppressed_by", String(200), nullable=True),
    Column("change", String(200), nullable=True),
    # Its placement's timeline entry, when no row holds it: the id of the timeline row
    # written just before it (correlation/joins.py).
    Column("placed_after", Integer, nullable=True),
    # The identity of an alert: one row per firing episode, however often re-sent.
    # It also serves lookups by fingerprint alone: an alert has few episodes.
    UniqueConstraint("fingerprint", "starts_at"),
    Index(None, "incident_id"),
    # The sweep's lookup of alerts to release when a maintenance window ends.
    Index(
        "ix_alerts_suppressed_firing",
        "id",
        sqlite_where=text(SUPPRESSED_FIRING),
        postgresql_where=text(SUPPRESSED_FIRING),
    ),
)

# The label values of each incident's alerts (up to LABEL_VALUE_MAX characters), for
# the incident search: written by triggers on `alerts` (migration 0014), and on SQLite
# for new alerts by the writer, once per batch (store/alertfacts.py). One row per value
# and incident, whatever the count of alerts carrying it.
LABEL_VALUE_MAX = 200
incident_labels = Table(
    "incident_labels",
    metadata,
    Column("value", String(LABEL_VALUE_MAX), primary_key=True),
    Column("incident_id", Integer, primary_key=True),
    Index(None, "incident_id"),  # retention deletes an incident's values
    sqlite_with_rowid=False,
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("alert_id", Integer, nullable=True),
    Column("rule", String(200), nullable=True),
    # A placement written out after the fact: the place it had (correlation/joins.py).
    Column("placed_after", Integer, nullable=True),
    Index(None, "incident_id"),
)

__all__ = ["alerts", "incidents", "metadata", "timeline"]

# Maintenance windows created through the API (rule-file windows live in the files).
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("match", JSON, nullable=False),  # selector strings, any of them
    Column("action", String(16), nullable=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("every", String(200), nullable=True),
    Column("duration_s", Float, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("change", String(200), nullable=True),
    Column("comment", Text, nullable=True),  # why, as its creator said
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)

problems = Table(
    "problems",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("key", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("root_cause", Text, nullable=True),
    Column("workaround", Text, nullable=True),
    Column("incident_count", Integer, nullable=False),
    # Who set the root cause, recorded the known error, resolved it (migration 0018).
    Column("root_cause_by", String(200), nullable=True),
    Column("workaround_by", String(200), nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Index(None, "key", "status"),
)

# The outbox: one row per event and sink, written in the transaction that caused
# the event. `subject` ("INC-42", "PRB-7") orders deliveries: a row waits while an
# earlier pending row of the same subject and sink exists.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("subject", String(32), nullable=False),
    Column("incident_id", Integer, nullable=True),
    Column("route", String(200), nullable=False),
    Column("sink", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | dead | cancelled
    Column("payload", JSON, nullable=False),  # incident or problem JSON at the event
    Column("created_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),  # next attempt (escalations: later)
    Column("unless", String(32), nullable=True),  # escalation: cancel once this holds
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),  # a replica is sending it
    Column("retried_by", String(200), nullable=True),  # who sent a dead letter again
    # The claim's "is an earlier row of this subject and sink pending?". A full index,
    # not a partial one: SQLite's planner (without ANALYZE statistics) prefers
    # (state, id) over a partial index and then scans every earlier pending row.
    Index(None, "state", "subject", "sink", "id"),
    Index(None, "state", "unless"),  # pending escalations, looked at on every claim
    Index(None, "state", "id"),
)

# What a sink answered for an incident's first delivery (ServiceNow sys_id, Jira key).
sink_refs = Table(
    "sink_refs",
    metadata,
    Column("subject", String(32), primary_key=True),
    Column("sink", String(200), primary_key=True),
    Column("ref", Text, nullable=False),
)

# SLA targets an incident missed, each marked once (the primary key says so,
# across replicas too).
sla_breaches = Table(
    "sla_breaches",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # respond | resolve
    Column("due_at", UTCDateTime, nullable=False),
    Column("marked_at", UTCDateTime, nullable=False),
)

# The SLA facts of resolved incidents (final once resolved) summed per UTC day of
# opening and priority: what GET /api/v1/sla reads for whole days instead of every
# incident. Kept by triggers on `incidents` (migration 0014).
sla_days = Table(
    "sla_days",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("priority", String(2), primary_key=True),
    Column("incidents", Integer, nullable=False),
    Column("respond_met", Integer, nullable=False),
    Column("respond_breached", Integer, nullable=False),
    Column("respond_not_needed", Integer, nullable=False),
    Column("resolve_met", Integer, nullable=False),
    Column("resolve_breached", Integer, nullable=False),
    Column("acks", Integer, nullable=False),  # answered by a person: MTTA's count
    Column("ack_s", Float, nullable=False),  # and its sum of seconds
    Column("fixes", Integer, nullable=False),
    Column("fix_s", Float, nullable=False),
)

# The alerts that started in each quarter hour (`quarter`: its Unix time), per rule
# ('' for none) and alertname ('' for none): what the service review counts for the
# periods whose ends fall on quarter hours, as every local midnight does, instead of
# reading every alert. Kept by triggers on `alerts` (migration 0017; on SQLite the
# writer counts the alerts it inserts, store/alertfacts.py), each writer in rows of
# its own (`writer`: PostgreSQL's backend pid, 0 on SQLite), so that replicas never
# update one row; a count is the sum over writers, and one writer's may be < 0.
QUARTER_S = 900
alert_counts = Table(
    "alert_counts",
    metadata,
    Column("quarter", BigInteger, primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("alertname", Text, primary_key=True),
    Column("writer", BigInteger, primary_key=True),
    Column("alerts", Integer, nullable=False),
    sqlite_with_rowid=False,
)

# Availability history: each check's and service's state changes (kept
# RAW_DAYS), and per-day aggregates (kept long) for windows beyond that.
check_changes = Table(
    "check_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(220), nullable=False),  # "check:<name>" or "service:<name>"
    Column("at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # up | down | maintenance | unknown
    Index(None, "subject", "at"),
)
check_daily = Table(
    "check_daily",
    metadata,
    Column("subject", String(220), primary_key=True),
    Column("day", String(10), primary_key=True),  # UTC date, YYYY-MM-DD
    Column("up_s", Float, nullable=False),
    Column("down_s", Float, nullable=False),
    Column("maintenance_s", Float, nullable=False),
    Column("unknown_s", Float, nullable=False),
)
# The latest run of each check, as GET /api/v1/checks and /capacity show it on
# every replica; also how a restarted daemon remembers consecutive failures.
check_status = Table(
    "check_status",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("service", String(200), nullable=True),
    Column("up", Integer, nullable=True),  # 1, 0, or null before the first run
    Column("last_run", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("capacity", JSON, nullable=False),  # [{labels, value, threshold, exhausts_at}]
)
# When an alert last kept each heartbeat check alive, written by whichever replica
# received it, so that the replica running the checks sees beats sent to the others.
heartbeats = Table(
    "heartbeats",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("last_seen", UTCDateTime, nullable=False),
)
# Leader leases: scheduled work that must run on one replica at a time (checks).
leases = Table(
    "leases",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)
