"""Upgrades from every released schema: a database made at each revision of the
migration chain, with rows in every table it has, upgrades to the head revision on
SQLite and on PostgreSQL, the way operators run it (`itsmd db upgrade`, or what
`itsmd run --migrate` runs at start), and keeps its rows: the same keys, the same
values, and the daemon's store code reads them.

The rows are made from the schema the database has at that revision (reflected): a
value per column by its type, parents before children, so a new migration, table or
column is covered without a change here. Where the code or a later migration gives a
column a meaning (a status, a priority, the shape of a JSON document, which
timestamps go together), the value is one the daemon writes (DOMAIN, COHERENT).
"""

from __future__ import annotations

import asyncio
import graphlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.types import TypeEngine

from itsmd.checks.availability import State
from itsmd.checks.spec import CheckType
from itsmd.cli.main import main
from itsmd.correlation.rules import WindowAction
from itsmd.models import (
    Action,
    AlertStatus,
    EventKind,
    IncidentStatus,
    Level,
    Priority,
    ProblemStatus,
    ResolvedBy,
    TimelineKind,
)
from itsmd.notify.routes import UNLESS
from itsmd.store import alertfacts, checkstore, outbox, repo
from itsmd.store.engine import Database
from itsmd.store.migrate import SchemaState, alembic_config, head_revision, schema_state, upgrade
from itsmd.store.tables import (
    QUARTER_S,
    UTCDateTime,
    alert_counts,
    alerts,
    incidents,
    metadata,
    timeline,
)
from itsmd.views import incident_json

REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
]
HEAD = head_revision()
# Half the revisions upgrade through the command, half as `itsmd run --migrate` does.
CASES = [(rev, "cli" if i % 2 == 0 else "migrate") for i, rev in enumerate(REVISIONS)]

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)  # microseconds: kept exactly
NOW = T0 + timedelta(days=30)
ROWS = 3  # per table
NULL_ROW = 1  # the row whose nullable columns are NULL
LIMIT = 100

Value = object
Row = dict[str, Value]
Rows = dict[str, dict[tuple[Value, ...], Row]]  # table -> primary key -> row


def _cycle(values: Iterable[object]) -> Callable[[int], Value]:
    options = [str(v) if isinstance(v, StrEnum) else v for v in values]
    return lambda n: options[n % len(options)]


def _day(n: int) -> str:
    return (T0 + timedelta(days=n)).date().isoformat()


def _capacity(n: int) -> list[dict[str, Value]]:
    """One series of a disk check, as checks.state.capacity_entry writes it."""
    entry: dict[str, Value] = {"check": f"disk-{n}", "labels": {"mountpoint": "/"}}
    entry |= {"value": 0.5, "threshold": {"above": 0.9}, "exhausts_at": None}
    entry |= {"forecast_ready": False, "forecast_since": None, "forecast_reason": None}
    return [entry | {"samples": []}]


# Values the code parses (enums, selectors, cron, time zones) or a migration reads, by
# table and column: a function of the row's number.
DOMAIN: dict[tuple[str, str], Callable[[int], Value]] = {
    ("incidents", "status"): _cycle(IncidentStatus),  # open, acknowledged, resolved
    ("incidents", "priority"): _cycle(Priority),
    ("incidents", "impact"): _cycle(Level),
    ("incidents", "urgency"): _cycle(Level),
    ("alerts", "status"): _cycle(AlertStatus),
    ("alerts", "action"): _cycle([Action.SUPPRESSED, Action.UNROUTED, Action.JOINED]),
    ("timeline", "kind"): _cycle(
        [TimelineKind.COMMENTED, TimelineKind.AUTO_RESOLVED, TimelineKind.ACKNOWLEDGED]
    ),
    ("maintenance_windows", "match"): lambda n: [f'{{service="db-{n}"}}'],
    ("maintenance_windows", "action"): _cycle(WindowAction),
    ("maintenance_windows", "every"): _cycle(["0 2 * * 6"]),
    ("maintenance_windows", "timezone"): _cycle(["Europe/Berlin", "UTC"]),
    ("problems", "status"): _cycle(ProblemStatus),
    ("notifications", "event"): _cycle(EventKind),
    ("notifications", "subject"): lambda n: f"INC-{n + 1}",
    ("notifications", "state"): _cycle(["pending", "sent", "dead"]),
    ("notifications", "unless"): _cycle(UNLESS),
    ("sla_breaches", "kind"): _cycle(["respond", "resolve"]),
    ("check_changes", "state"): _cycle(State),
    ("check_status", "type"): _cycle(CheckType),
    ("check_status", "up"): _cycle([1, 0]),
    ("check_status", "capacity"): _capacity,
    ("check_daily", "day"): _day,
}


def _incident(row: Row, n: int) -> None:
    """Resolved means a resolved_at (0014 sums the time to resolve of each resolved
    incident) and no more alerts taken (active_key); open means not acknowledged."""
    opened, status = row["opened_at"], row["status"]
    assert isinstance(opened, datetime)
    row["resolved_at"] = opened + timedelta(hours=2) if status == "resolved" else None
    row["active_key"] = None if status == "resolved" else row["key"]
    row["acknowledged_at"] = None if status == "open" else opened + timedelta(minutes=5)


def _alert(row: Row, n: int) -> None:
    """An end time comes with the resolve; a suppressed alert joins no incident, and
    its reason names the window in the words of earlier versions (0011 parses them)."""
    starts = row["starts_at"]
    assert isinstance(starts, datetime)
    row["ends_at"] = starts + timedelta(minutes=30) if row["status"] == "resolved" else None
    if row["action"] == "suppressed":
        window, change = f"window-{n}", f"CHG-{n}"
        row["incident_id"] = None
        row["reason"] = f"suppressed by maintenance window {window} (suppress, change {change})"
        if "suppressed_by" in row:  # 0011 and later: the window as fields too
            row |= {"suppressed_by": window, "change": change}


def _window(row: Row, n: int) -> None:
    """A window recurs (`every`) or has a start and an end."""
    if row.get("every") is None:
        row["starts_at"] = T0 + timedelta(days=n)
        row["ends_at"] = T0 + timedelta(days=n, hours=2)


COHERENT: dict[str, Callable[[Row, int], None]] = {
    "incidents": _incident,
    "alerts": _alert,
    "maintenance_windows": _window,
}

# Tables only triggers write (0014, 0017), from the rows of incidents and alerts, and
# from 0021 SQLite's writer for the alerts it inserts: filled as the daemon fills them.
DERIVED = {"incident_labels", "sla_days", "alert_counts"}
# Columns only triggers write (0017, from the timeline): left to them.
DERIVED_COLUMNS = {("incidents", "reopens"), ("incidents", "resolved_by")}

# Columns whose stored values an upgrade changes on purpose: (table, column) -> the
# migration and why. None so far: every data step fills a column or a table it adds
# itself (FILLED; 0014 fills incident_labels and sla_days, 0015 the text index, 0017
# alert_counts).
REWRITTEN: dict[tuple[str, str], str] = {}
# Columns an upgrade adds and fills from the rows already stored (some value in the
# rows made here, so the data step ran on them); every other column an upgrade adds
# is NULL in those rows.
FILLED: dict[tuple[str, str], str] = {
    ("alerts", "suppressed_by"): "0011: the window's name, parsed from the reason",
    ("alerts", "change"): "0011: the window's change id, parsed from the reason",
    ("incidents", "responded_at"): "0012: a person's first response, from the timeline",
    ("incidents", "reopens"): "0017: times reopened, from the timeline (0 if never)",
    ("incidents", "resolved_by"): "0017: who resolved it last, from the timeline",
}


@dataclass(frozen=True, slots=True)
class Shape:
    """A table as the database has it at some revision."""

    name: str
    types: dict[str, TypeEngine[Any]]
    nullable: frozenset[str]
    key: tuple[str, ...]
    parents: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...]  # local, table, remote

    @property
    def generated_key(self) -> bool:
        """A single integer key, which the database assigns."""
        return len(self.key) == 1 and isinstance(self.types[self.key[0]], sa.Integer)

    def table(self) -> sa.TableClause:
        return sa.table(self.name, *(sa.column(c, t) for c, t in self.types.items()))


def _declared(name: str | None, kind: str, parent: object) -> bool:
    """Not the text index of incidents (0015), a SQLite FTS5 virtual table and its
    shadow tables, made and used by SQL of its own."""
    return not (kind == "table" and name is not None and name.startswith("incidents_text"))


def _differences(conn: Connection) -> list[object]:
    opts = {"compare_type": False, "include_name": _declared}
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))


def _type(table: str, column: str, reflected: TypeEngine[Any]) -> TypeEngine[Any]:
    """The declared type where the code declares the column: SQLite stores timestamps
    as text, which its reflected type cannot tell from other text."""
    declared = metadata.tables.get(table)
    if declared is not None and column in declared.c:
        return declared.c[column].type
    return reflected


def _shapes(conn: Connection) -> dict[str, Shape]:
    inspector = inspect(conn)
    shapes = {}
    for name in inspector.get_table_names():
        if name == "alembic_version" or not _declared(name, "table", None):
            continue
        columns = inspector.get_columns(name)
        parents = [
            (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
            for fk in inspector.get_foreign_keys(name)
        ]
        shapes[name] = Shape(
            name,
            {c["name"]: _type(name, c["name"], c["type"]) for c in columns},
            frozenset(c["name"] for c in columns if c["nullable"]),
            tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            tuple((tuple(local), table, tuple(remote)) for local, table, remote in parents),
        )
    return shapes


def _generic(table: str, column: str, type_: TypeEngine[Any], n: int, i: int) -> Value:
    """A value of the column's type, distinct per row `n` (unique constraints hold)."""
    if isinstance(type_, (UTCDateTime, sa.DateTime)):
        return T0 + timedelta(days=n, minutes=i)
    if isinstance(type_, sa.Boolean):
        return n % 2 == 0
    if isinstance(type_, sa.Integer):
        return 10 * n + i
    if isinstance(type_, sa.Float):
        return n + i / 4
    if isinstance(type_, sa.JSON):
        return {column: f"{column}-{n}"}  # an object of text values, as labels are (0014)
    if isinstance(type_, sa.String):
        text = f"{column}-{n}"
        return text if type_.length is None else text[-type_.length :]
    raise AssertionError(f"no value for {table}.{column} of type {type_!r}: add one here")


def _row(shape: Shape, n: int, made: dict[str, list[Row]]) -> Row:
    local_keys = {c for local, _, _ in shape.parents for c in local}
    row: Row = {}
    for i, (column, type_) in enumerate(shape.types.items()):
        if column in local_keys or (shape.generated_key and column == shape.key[0]):
            continue
        if (shape.name, column) in DERIVED_COLUMNS:
            continue
        domain = DOMAIN.get((shape.name, column))
        if column in shape.nullable and n == NULL_ROW:
            row[column] = None
        elif domain is not None:
            row[column] = domain(n)
        else:
            row[column] = _generic(shape.name, column, type_, n, i)
    for local, parent, remote in shape.parents:
        optional = set(local) <= shape.nullable
        rows = made[parent]  # of the same table: the rows made before this one
        if rows and not (optional and n == NULL_ROW):
            row.update(zip(local, (rows[n % len(rows)][c] for c in remote), strict=True))
        else:
            assert optional, f"{shape.name}{local}: no row of {parent} to refer to"
            row.update(dict.fromkeys(local, None))
    if (coherent := COHERENT.get(shape.name)) is not None:
        coherent(row, n)
    return row


def _seed(conn: Connection) -> None:
    """ROWS rows in every table, parents first."""
    shapes = _shapes(conn)
    graph = {s.name: {p for _, p, _ in s.parents if p != s.name} for s in shapes.values()}
    made: dict[str, list[Row]] = {}
    for name in graphlib.TopologicalSorter(graph).static_order():
        shape, made[name] = shapes[name], []
        if name in DERIVED:
            continue
        table = shape.table()
        for n in range(ROWS):
            row = _row(shape, n, made)
            if shape.generated_key:
                key = shape.key[0]
                query = sa.insert(table).values(row).returning(table.c[key])
                row[key] = conn.execute(query).scalar_one()
            else:
                conn.execute(sa.insert(table).values(row))
            made[name].append(row)
        if name == "alerts" and _writer_adds_facts(conn):
            facts = [(r["incident_id"], r["rule"], r["starts_at"], r["labels"]) for r in made[name]]
            alertfacts.add_sqlite(conn, facts)


def _writer_adds_facts(conn: Connection) -> bool:
    """From 0021 on, SQLite's writer adds the facts of the alerts it inserts, where
    triggers did before (store/alertfacts.py): the seed adds them as the writer does."""
    revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    return conn.dialect.name == "sqlite" and revision >= "0021"


def _snapshot(conn: Connection) -> Rows:
    found: Rows = {}
    for name, shape in _shapes(conn).items():
        rows = (r._asdict() for r in conn.execute(sa.select(shape.table())))
        found[name] = {tuple(r[k] for k in shape.key): r for r in rows}
    return found


def _changes(before: Rows, after: Rows) -> list[str]:
    """What the upgrade lost or changed of the rows stored before it."""
    changes = []
    for table, rows in before.items():
        if table not in after:  # dropped by a migration (none so far)
            continue
        for key, old in rows.items():
            new = after[table].get(key)
            if new is None:
                changes.append(f"{table} {key}: gone")
                continue
            for column, value in new.items():
                if column in old and (table, column) not in REWRITTEN and value != old[column]:
                    changes.append(f"{table} {key} {column}: {old[column]!r} -> {value!r}")
                elif column not in old and (table, column) not in FILLED and value is not None:
                    changes.append(f"{table} {key} {column} (added): {value!r}, not NULL")
    return changes


def _filled(before: Rows, after: Rows) -> list[tuple[str, str]]:
    """The FILLED columns the upgrade added to tables with rows, and left all NULL."""
    empty = []
    for table, column in FILLED:
        old = before.get(table, {})
        added = bool(old) and column not in next(iter(old.values()))
        if added and all(after[table][key][column] is None for key in old):
            empty.append((table, column))
    return empty


# What the daemon reads of each table besides incidents, alerts and the timeline (the
# windows are loaded at start: one it cannot parse is left out, so the counts tell).
READS: dict[str, Callable[[Connection], list[Any]]] = {
    "maintenance_windows": repo.api_windows,
    "problems": lambda conn: repo.list_problems(conn, LIMIT),
    "notifications": lambda conn: outbox.list_notifications(conn, None, None, LIMIT),
    "check_status": checkstore.statuses,
}


def _read_by_the_store(conn: Connection, before: Rows) -> None:
    """The upgraded rows as the API and the console read them."""
    newest = repo.list_incidents(conn, repo.IncidentFilter(), LIMIT)
    urgent = repo.IncidentFilter(order=repo.IncidentOrder.URGENT)
    assert {i.id for i in repo.list_incidents(conn, urgent, LIMIT)} == {i.id for i in newest}
    assert {(i.id,) for i in newest} == set(before["incidents"])
    alerts, entries = [], []
    for inc in newest:
        assert inc.id is not None
        assert repo.get_incident(conn, inc.id) == inc
        incident_json(inc, NOW)
        alerts += repo.alerts_of(conn, inc.id)
        entries += repo.timeline_of(conn, inc.id, repo.alerts_of(conn, inc.id))
    placed = [r for r in before["alerts"].values() if r["incident_id"] is not None]
    assert len(alerts) == len(placed)
    # Every row, and the placements alert rows hold (0020: correlation/joins.py).
    held = [r for r in placed if r.get("placed_after") is not None]
    assert len(entries) == len(before["timeline"]) + len(held)
    for table, read in READS.items():
        assert len(read(conn)) == len(before.get(table, {})), table


def _derived_agree(conn: Connection) -> None:
    """What 0017 fills and its triggers keep agrees with the rows it is made from: the
    alerts per quarter hour, rule and alertname; each incident's times reopened and who
    resolved it last, from its timeline."""
    counted: dict[tuple[int, str, str], int] = {}
    for starts_at, rule, labels in conn.execute(
        sa.select(alerts.c.starts_at, alerts.c.rule, alerts.c.labels)
    ):
        key = (
            int(starts_at.timestamp()) // QUARTER_S * QUARTER_S,
            rule or "",
            labels.get("alertname") or "",
        )
        counted[key] = counted.get(key, 0) + 1
    c = alert_counts.c
    stored = conn.execute(
        sa.select(c.quarter, c.rule, c.alertname, sa.func.sum(c.alerts)).group_by(
            c.quarter, c.rule, c.alertname
        )
    )
    assert {(q, r, n): int(count) for q, r, n, count in stored if count} == counted
    marks: dict[int, tuple[int, str | None]] = {}
    entries = sa.select(timeline.c.incident_id, timeline.c.kind).order_by(timeline.c.id)
    for incident_id, kind in conn.execute(entries):
        reopens, by = marks.get(incident_id, (0, None))
        if kind == TimelineKind.REOPENED:
            reopens += 1
        elif kind in (TimelineKind.RESOLVED, TimelineKind.AUTO_RESOLVED):
            by = ResolvedBy.AUTO if kind == TimelineKind.AUTO_RESOLVED else ResolvedBy.MANUAL
        marks[incident_id] = (reopens, by)
    i = incidents.c
    for incident_id, reopens, by in conn.execute(sa.select(i.id, i.reopens, i.resolved_by)):
        assert (reopens, by) == marks.get(incident_id, (0, None)), incident_id
    assert any(by is not None for _, by in marks.values())  # the fill had something to do


def _database(url: str) -> Database:
    return Database(url, busy_timeout=timedelta(seconds=3))


async def _upgrade_as_operators_do(url: str, how: str) -> None:
    if how == "cli":
        # The command runs its own event loop, as from a shell: in a thread of its own.
        assert await asyncio.to_thread(main, ["db", "upgrade", "--db", url]) == 0
        return
    db = _database(url)
    try:
        await upgrade(db)  # what `itsmd run --migrate` runs on an outdated schema
    finally:
        await db.dispose()


@pytest.mark.parametrize(("revision", "how"), CASES, ids=[f"{r}-{h}" for r, h in CASES])
async def test_a_database_of_every_revision_upgrades_with_its_rows(
    db_url: str, revision: str, how: str
) -> None:
    db = _database(db_url)
    try:
        await upgrade(db, revision)
        await db.write(_seed)
        before = await db.read(_snapshot)
        state = await schema_state(db)
    finally:
        await db.dispose()  # stopped: the upgrade runs alone, as operators run it
    assert state == (SchemaState.CURRENT if revision == HEAD else SchemaState.OUTDATED, revision)
    assert [table for table, rows in before.items() if not rows] == []

    await _upgrade_as_operators_do(db_url, how)

    db = _database(db_url)
    try:
        assert await schema_state(db) == (SchemaState.CURRENT, HEAD)
        assert await db.read(_differences) == []
        after = await db.read(_snapshot)
        assert _changes(before, after) == []
        assert _filled(before, after) == []
        await db.read(lambda conn: _read_by_the_store(conn, before))
        await db.read(_derived_agree)
    finally:
        await db.dispose()
