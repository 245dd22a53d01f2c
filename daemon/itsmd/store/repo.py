"""Reads and writes of domain objects; every function takes an open connection."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import StatementError

from itsmd.correlation import joins
from itsmd.correlation.correlate import WorkingSet
from itsmd.correlation.matchers import MatcherError, parse_selectors
from itsmd.correlation.problems import JoinProblem, OpenNewProblem, OpenProblem, recurrence
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow, RuleSet, WindowAction
from itsmd.models import (
    Action,
    AlertStatus,
    Decision,
    Event,
    EventKind,
    Incident,
    IncidentStatus,
    Level,
    Policy,
    Priority,
    ProblemRecord,
    ProblemStatus,
    StoredAlert,
    TimelineEntry,
    TimelineKind,
)
from itsmd.store import alertfacts
from itsmd.store.notes import note_problem, note_timeline
from itsmd.store.tables import (
    LABEL_VALUE_MAX,
    SUPPRESSED_FIRING,
    alerts,
    incident_labels,
    incidents,
    json_text,
    maintenance_windows,
    problems,
    sqlite_time,
    timeline,
)

log = logging.getLogger(__name__)
Identity = tuple[str, datetime]

# ---- row <-> domain


def incident_from_row(row: Row[Any]) -> Incident:
    m = row._mapping
    return Incident(
        id=m["id"],
        rule=m["rule"],
        key=m["key"],
        status=IncidentStatus(m["status"]),
        title=m["title"],
        description=m["description"],
        priority=Priority(m["priority"]),
        impact=Level(m["impact"]),
        urgency=Level(m["urgency"]),
        service=m["service"],
        assignee=m["assignee"],
        labels=m["labels"],
        opened_at=m["opened_at"],
        acknowledged_at=m["acknowledged_at"],
        responded_at=m["responded_at"],
        resolved_at=m["resolved_at"],
        alert_count=m["alert_count"],
        firing_count=m["firing_count"],
        policy=Policy(
            window=timedelta(seconds=m["window_s"]),
            auto_resolve=None
            if m["auto_resolve_s"] is None
            else timedelta(seconds=m["auto_resolve_s"]),
            reopen=timedelta(seconds=m["reopen_s"]),
        ),
        active=m["active_key"] is not None,
        all_clear_at=m["all_clear_at"],
        auto_resolve_at=m["auto_resolve_at"],
        respond_due=m["respond_due"],
        resolve_due=m["resolve_due"],
        parent_id=m["parent_id"],
        problem_id=m["problem_id"],
        problem_key=m["problem_key"],
        known_error=m["known_error"],
    )


def incident_values(inc: Incident) -> dict[str, Any]:
    auto = inc.policy.auto_resolve
    return {
        "rule": inc.rule,
        "key": inc.key,
        "active_key": inc.key if inc.active else None,
        "status": inc.status.value,
        "title": inc.title,
        "description": inc.description,
        "priority": inc.priority.value,
        "impact": inc.impact.value,
        "urgency": inc.urgency.value,
        "service": inc.service,
        "assignee": inc.assignee,
        "labels": dict(inc.labels),
        "opened_at": inc.opened_at,
        "acknowledged_at": inc.acknowledged_at,
        "responded_at": inc.responded_at,
        "resolved_at": inc.resolved_at,
        "all_clear_at": inc.all_clear_at,
        "auto_resolve_at": inc.auto_resolve_at,
        "respond_due": inc.respond_due,
        "resolve_due": inc.resolve_due,
        "alert_count": inc.alert_count,
        "firing_count": inc.firing_count,
        "window_s": inc.policy.window.total_seconds(),
        "auto_resolve_s": None if auto is None else auto.total_seconds(),
        "reopen_s": inc.policy.reopen.total_seconds(),
        "parent_id": inc.parent_id,
        "problem_id": inc.problem_id,
        "known_error": inc.known_error,
        "problem_key": inc.problem_key,
    }


def alert_from_row(row: Row[Any]) -> StoredAlert:
    m = row._mapping
    return StoredAlert(
        id=m["id"],
        fingerprint=m["fingerprint"],
        starts_at=m["starts_at"],
        status=AlertStatus(m["status"]),
        ends_at=m["ends_at"],
        labels=m["labels"],
        annotations=m["annotations"],
        generator_url=m["generator_url"],
        source=m["source"],
        first_received=m["first_received"],
        last_received=m["last_received"],
        receive_count=m["receive_count"],
        incident_id=m["incident_id"],
        decision=Decision(
            Action(m["action"]), m["reason"], m["rule"], m["key"], m["suppressed_by"], m["change"]
        ),
        placed_after=m["placed_after"],
    )


def alert_values(a: StoredAlert) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "starts_at": a.starts_at,
        "status": a.status.value,
        "ends_at": a.ends_at,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "generator_url": a.generator_url,
        "source": a.source,
        "first_received": a.first_received,
        "last_received": a.last_received,
        "receive_count": a.receive_count,
        "incident_id": a.incident_id,
        "rule": a.decision.rule,
        "key": a.decision.key,
        "action": a.decision.action.value,
        "reason": a.decision.reason,
        "suppressed_by": a.decision.suppressed_by,
        "change": a.decision.change,
        "placed_after": a.placed_after,
    }


def timeline_from_row(row: Row[Any]) -> TimelineEntry:
    m = row._mapping
    return TimelineEntry(
        incident_id=m["incident_id"],
        at=m["at"],
        kind=TimelineKind(m["kind"]),
        message=m["message"],
        actor=m["actor"],
        alert_id=m["alert_id"],
        rule=m["rule"],
        placed_after=m["placed_after"],
    )


# ---- loading what a batch touches

_CHUNK = 400  # keeps IN lists under SQLite's bound-parameter limit


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# Hot-path statements are built once: building a statement and its cache key costs
# more than running it (about 75 us against 35 us for a keyed SELECT on SQLite).
_ALERTS_BY_IDENTITY = select(alerts).where(
    # Not `(fingerprint, starts_at) IN (...)`: SQLite scans the table for row values.
    # This form searches the unique index; rows of other episodes are dropped.
    alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    alerts.c.starts_at.between(bindparam("first"), bindparam("last")),
)
# On SQLite the fingerprints go as one JSON array: an expanding IN list is rendered
# and bound anew for each batch, which cost more CPU than the index lookups it asks
# for (about 5% of a batch of new alerts).
_ALERTS_BY_IDENTITY_JSON = select(alerts).where(
    alerts.c.fingerprint.in_(
        select(func.json_each(bindparam("fingerprints")).table_valued("value").c.value)
    ),
    alerts.c.starts_at.between(bindparam("first"), bindparam("last")),
)
_FIRING_EPISODES = select(alerts).where(
    alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    alerts.c.status == AlertStatus.FIRING.value,
)
_SEEN_FINGERPRINTS = (
    select(alerts.c.fingerprint)
    .where(alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))
    .distinct()
)
_INCIDENTS_BY_KEY = select(incidents).where(
    incidents.c.active_key.in_(bindparam("keys", expanding=True))
)
_INCIDENTS_BY_ID = select(incidents).where(incidents.c.id.in_(bindparam("ids", expanding=True)))
_OPEN_OF_SERVICES = select(incidents).where(
    incidents.c.service.in_(bindparam("services", expanding=True)),
    incidents.c.status != IncidentStatus.RESOLVED.value,
)


def load_working_set(
    conn: Connection,
    identities: Iterable[Identity],
    resolve_fingerprints: Iterable[str],
    keys: Iterable[str],
    known: Iterable[Incident] = (),
    services: Iterable[str] = (),
    near: timedelta = timedelta(0),
) -> WorkingSet:
    """Alerts by identity, and firing episodes that start within `near` of one (the
    same alert stamped by another sender), firing episodes of
    `resolve_fingerprints`, the incidents those alerts belong to, the current
    incident of each key, and the unresolved incidents of `services` (upstreams);
    `known` incidents (as committed) are taken as they are."""
    ws = WorkingSet()
    by_json = conn.dialect.name == "sqlite"
    for inc in known:
        ws.load_incident(inc)
    for chunk in _chunks(sorted(set(services))):
        _add_incidents(ws, conn.execute(_OPEN_OF_SERVICES, {"services": chunk}))
    for chunk in _chunks(sorted(set(identities))):
        wanted: dict[str, list[datetime]] = {}
        for fp, starts_at in chunk:
            wanted.setdefault(fp, []).append(starts_at)
        rows = conn.execute(
            _ALERTS_BY_IDENTITY_JSON if by_json else _ALERTS_BY_IDENTITY,
            {
                "fingerprints": json_text(sorted(wanted)) if by_json else sorted(wanted),
                "first": min(starts_at for _, starts_at in chunk) - near,
                "last": max(starts_at for _, starts_at in chunk) + near,
            },
        )
        _add_alerts(ws, (r for r in rows if _wanted(r, wanted, near)))
    missing = sorted({fp for fp in resolve_fingerprints} - ws.seen_fingerprints)
    for chunk in _chunks(missing):
        _add_alerts(ws, conn.execute(_FIRING_EPISODES, {"fingerprints": chunk}))
        seen = conn.execute(_SEEN_FINGERPRINTS, {"fingerprints": chunk})
        ws.seen_fingerprints.update(seen.scalars())
    for chunk in _chunks(sorted(set(keys))):
        _add_incidents(ws, conn.execute(_INCIDENTS_BY_KEY, {"keys": chunk}))
    # Most alerts belong to the current incident of their key, loaded just above.
    incident_ids = sorted(
        {a.incident_id for a in ws.alerts.values() if a.incident_id} - ws.incidents.keys()
    )
    for chunk in _chunks(incident_ids):
        _add_incidents(ws, conn.execute(_INCIDENTS_BY_ID, {"ids": chunk}))
    return ws


def _wanted(row: Row[Any], wanted: dict[str, list[datetime]], near: timedelta) -> bool:
    """The episode asked for, or a firing one that starts within `near` of it."""
    starts = wanted.get(row.fingerprint, ())
    if row.starts_at in starts:
        return True
    firing = row.status == AlertStatus.FIRING.value
    return firing and any(abs(row.starts_at - s) <= near for s in starts)


def _add_alerts(ws: WorkingSet, rows: Iterable[Row[Any]]) -> None:
    for row in rows:
        ws.load_alert(alert_from_row(row))


def _add_incidents(ws: WorkingSet, rows: Iterable[Row[Any]]) -> None:
    for row in rows:
        ws.load_incident(incident_from_row(row))


def load_due_holds(conn: Connection, now: datetime) -> WorkingSet:
    """Incidents whose auto-resolve hold has ended."""
    ws = WorkingSet()
    rows = conn.execute(
        select(incidents).where(
            incidents.c.auto_resolve_at <= now, incidents.c.status != IncidentStatus.RESOLVED
        )
    )
    _add_incidents(ws, rows)
    return ws


_SUPPRESSED_FIRING = select(alerts).where(text(SUPPRESSED_FIRING))


def suppressed_firing(conn: Connection) -> list[StoredAlert]:
    """Alerts a maintenance window suppressed that still fire (a partial index)."""
    return [alert_from_row(r) for r in conn.execute(_SUPPRESSED_FIRING)]


# ---- persisting what correlation changed


_INSERT_INCIDENT = insert(incidents).returning(incidents.c.id)
# Rows come back in any order and are matched by identity: asking for parameter
# order makes SQLite insert them one statement at a time.
_INSERT_ALERTS = insert(alerts).returning(alerts.c.id, alerts.c.fingerprint, alerts.c.starts_at)
_INSERT_TIMELINE = insert(timeline)


_TOUCHED = "itsmd.touched_incidents"


def touched_incidents(conn: Connection) -> set[int]:
    """The ids of the incidents written on `conn` since the last call."""
    touched: set[int] = conn.info.pop(_TOUCHED, set())
    return touched


def _touch(conn: Connection, incident_ids: Iterable[int]) -> None:
    conn.info.setdefault(_TOUCHED, set()).update(incident_ids)


def touch_incidents(conn: Connection, incident_ids: Iterable[int]) -> None:
    """Incidents written (or deleted) outside `flush`: the writer forgets the
    current incidents it keeps in memory."""
    _touch(conn, incident_ids)


def flush(conn: Connection, ws: WorkingSet) -> dict[int, int]:
    """Write the changes of a working set; returns the temporary -> real incident ids."""
    changed = [i for i in sorted(ws.dirty_incidents, reverse=True) if i > 0]
    _touch(conn, changed)
    # Before the inserts: an incident that stops taking alerts frees its key.
    _update_changed(
        conn,
        incidents,
        [
            (i, incident_values(ws.incidents[i]), _values_or_none(ws.loaded_incidents.get(i)))
            for i in changed
        ],
    )
    ids: dict[int, int] = {}
    for temp in sorted((i for i in ws.dirty_incidents if i < 0), reverse=True):
        result = conn.execute(_INSERT_INCIDENT, incident_values(ws.incidents[temp]))
        ids[temp] = result.scalar_one()
    _touch(conn, ids.values())
    implicit = set(ws.implicit.values())  # indexes in ws.made the alert rows hold
    written = [i for i in range(len(ws.made)) if i not in implicit]
    row_ids: list[int | None] = [None] * len(written)
    placed: dict[Identity, int] = {}  # alert -> placed_after, of the implicit ones
    if implicit:  # their places: the ids of the rows written before them
        before, reserved = _reserve_timeline_ids(conn, len(written))
        row_ids = list(reserved)
        places = joins.places(ws.made, implicit, reserved, before)
        placed = {identity: places[index] for identity, index in ws.implicit.items()}
    alert_ids = _flush_alerts(conn, ws, ids, placed)
    rows = [
        _timeline_values(_made(ws, i), ids, alert_ids, row_id)
        for i, row_id in zip(written, row_ids, strict=True)
    ]
    # Superseded implicit placements keep their places (placed_after); written after
    # the rows of reserved ids, as SQLite gives a row without one the next free id.
    written_out = [_timeline_values(e, {}, {}) for e in ws.superseded]
    for batch in (rows, written_out):
        if batch:
            conn.execute(_INSERT_TIMELINE, batch)
    note_timeline(conn, rows + written_out)
    return ids


def _made(ws: WorkingSet, index: int) -> TimelineEntry:
    """An entry made that is not implicit: built (implicit ones are None)."""
    entry = ws.made[index]
    assert entry is not None, index
    return entry


def _reserve_timeline_ids(conn: Connection, count: int) -> tuple[int, list[int]]:
    """An id below every timeline row written so far, and `count` ids for rows of this
    transaction, above it and in order. SQLite (one writer): the next ids of the
    table. PostgreSQL: taken from the table's sequence, which replicas share."""
    if conn.dialect.name == "sqlite":
        top: int = conn.execute(_MAX_TIMELINE_ID).scalar_one()
        return top, list(range(top + 1, top + 1 + count))
    taken = sorted(conn.execute(_NEXT_TIMELINE_IDS, {"n": count + 1}).scalars())
    return taken[0], taken[1:]


_MAX_TIMELINE_ID = select(func.coalesce(func.max(timeline.c.id), 0))
_NEXT_TIMELINE_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('timeline', 'id')) FROM generate_series(1, :n)"
)


def _flush_alerts(
    conn: Connection, ws: WorkingSet, ids: dict[int, int], placed: Mapping[Identity, int]
) -> dict[int, int]:
    """`placed`: the places of the implicit placements, all of new alerts (first receipt)."""
    rows = [ws.alerts[identity] for identity in ws.dirty_alerts]
    new = [a for a in rows if a.id is None or a.id < 0]
    old = [a for a in rows if a.id is not None and a.id > 0]
    alert_ids: dict[int, int] = {}
    if new and conn.dialect.name == "sqlite":
        alert_ids = _insert_alerts_sqlite(conn, new, ids, placed)
    elif new:
        values = [_with_incident(alert_values(a), ids) for a in new]
        if placed:
            for alert, row in zip(new, values, strict=True):
                row["placed_after"] = placed.get(alert.identity)
        result = conn.execute(_INSERT_ALERTS, values)
        real = {(fp, starts_at): id_ for id_, fp, starts_at in result}
        for alert in new:
            assert alert.id is not None
            alert_ids[alert.id] = real[alert.identity]
    _update_changed(
        conn,
        alerts,
        [
            (
                a.id,
                _with_incident(alert_values(a), ids),
                _values_or_none(ws.loaded_alerts.get(a.identity)),
            )
            for a in old
        ],
    )
    return alert_ids


_ALERT_COLUMNS = tuple(c.name for c in alerts.columns)
_QUOTED_ALERT_COLUMNS = ", ".join(f'"{name}"' for name in _ALERT_COLUMNS)
_ALERT_PARAMETERS = ", ".join("?" * len(_ALERT_COLUMNS))
# The table's own column names: nothing from outside.
_SQLITE_INSERT_ALERTS = f"INSERT INTO alerts ({_QUOTED_ALERT_COLUMNS}) VALUES ({_ALERT_PARAMETERS})"  # noqa: S608
_MAX_ALERT_ID = select(func.coalesce(func.max(alerts.c.id), 0))


def _insert_alerts_sqlite(
    conn: Connection,
    new: Sequence[StoredAlert],
    ids: dict[int, int],
    placed: Mapping[Identity, int],
) -> dict[int, int]:
    """New alert rows as plain tuples through the driver's `executemany`, with ids
    taken in order above the table's highest (SQLite has one writer, so no RETURNING
    is needed): SQLAlchemy's handling of each row's parameters in a compiled insert
    cost about as much CPU as SQLite's insert. The values are those `alert_values`
    binds through the table's types (tests/api/test_writer_batches.py compares the
    rows both ways store). The facts kept beside them go in with them (alertfacts)."""
    top: int = conn.execute(_MAX_ALERT_ID).scalar_one()
    rows = []
    facts: list[alertfacts.AlertFacts] = []
    alert_ids: dict[int, int] = {}
    try:
        for row_id, a in enumerate(new, top + 1):
            assert a.id is not None
            alert_ids[a.id] = row_id
            incident_id = a.incident_id
            if incident_id is not None and incident_id < 0:
                incident_id = ids[incident_id]
            placed_after = placed.get(a.identity) if placed else a.placed_after
            rows.append(_sqlite_alert_row(row_id, a, incident_id, placed_after))
            facts.append((incident_id, a.decision.rule, a.starts_at, a.labels))
    except (TypeError, ValueError) as exc:  # a value the store cannot hold, as a bind fails
        raise StatementError(str(exc), _SQLITE_INSERT_ALERTS, None, exc) from exc
    conn.exec_driver_sql(_SQLITE_INSERT_ALERTS, rows)
    alertfacts.add_sqlite(conn, facts)
    return alert_ids


def _sqlite_alert_row(
    row_id: int, a: StoredAlert, incident_id: int | None, placed_after: int | None
) -> tuple[Any, ...]:
    d, ends_at = a.decision, a.ends_at
    return (
        row_id,
        a.fingerprint,
        sqlite_time(a.starts_at),
        a.status.value,
        None if ends_at is None else sqlite_time(ends_at),
        json_text(a.labels if type(a.labels) is dict else dict(a.labels)),
        json_text(a.annotations if type(a.annotations) is dict else dict(a.annotations)),
        a.generator_url,
        a.source,
        sqlite_time(a.first_received),
        sqlite_time(a.last_received),
        a.receive_count,
        incident_id,
        d.rule,
        d.key,
        d.action.value,
        d.reason,
        d.suppressed_by,
        d.change,
        placed_after,
    )


def _values_or_none(row: Incident | StoredAlert | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return incident_values(row) if isinstance(row, Incident) else alert_values(row)


# The SET clause comes from each execution's parameters.
_UPDATE_BY_ID = {t.name: update(t).where(t.c.id == bindparam("_id")) for t in (incidents, alerts)}


def _update_changed(
    conn: Connection,
    table: Table,
    rows: Sequence[tuple[int | None, dict[str, Any], dict[str, Any] | None]],
) -> None:
    """UPDATE only the columns that differ from the row as loaded (id, values,
    values as loaded): rewriting every column also rewrites every index."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row_id, values, loaded in rows:
        if loaded is not None:
            values = {k: v for k, v in values.items() if v != loaded[k]}
            if not values:
                continue
        # One executemany per set of columns: its rows must bind the same names.
        groups.setdefault(frozenset(values), []).append({"_id": row_id, **values})
    for params in groups.values():
        conn.execute(_UPDATE_BY_ID[table.name], params)


def _with_incident(values: dict[str, Any], ids: dict[int, int]) -> dict[str, Any]:
    incident_id = values["incident_id"]
    if incident_id is not None and incident_id < 0:
        values["incident_id"] = ids[incident_id]
    return values


def _timeline_values(
    e: TimelineEntry, ids: dict[int, int], alert_ids: dict[int, int], row_id: int | None = None
) -> dict[str, Any]:
    alert_id = e.alert_id
    if alert_id is not None and alert_id < 0:
        alert_id = alert_ids.get(alert_id)
    return {
        **({} if row_id is None else {"id": row_id}),
        "incident_id": ids.get(e.incident_id, e.incident_id),
        "at": e.at,
        "kind": e.kind.value,
        "message": e.message,
        "actor": e.actor,
        "alert_id": alert_id,
        "rule": e.rule,
        "placed_after": e.placed_after,
    }


# ---- single incidents and reads for the API


def get_incident(conn: Connection, incident_id: int) -> Incident | None:
    row = (conn.execute(select(incidents).where(incidents.c.id == incident_id))).first()
    return incident_from_row(row) if row is not None else None


def get_incidents(conn: Connection, incident_ids: Iterable[int]) -> dict[int, Incident]:
    found: dict[int, Incident] = {}
    for chunk in _chunks(sorted(set(incident_ids))):
        for row in conn.execute(_INCIDENTS_BY_ID, {"ids": list(chunk)}):
            found[row.id] = incident_from_row(row)
    return found


def save_incident(conn: Connection, inc: Incident) -> None:
    assert inc.id is not None
    _touch(conn, [inc.id])
    conn.execute(update(incidents).where(incidents.c.id == inc.id).values(incident_values(inc)))


def add_timeline(
    conn: Connection, entries: Sequence[TimelineEntry], *, notify: bool = True
) -> None:
    """Write timeline entries; with `notify`, those that are events reach the routes."""
    if entries:
        rows = [_timeline_values(e, {}, {}) for e in entries]
        conn.execute(insert(timeline), rows)
        if notify:
            note_timeline(conn, rows)


def alerts_of(conn: Connection, incident_id: int) -> list[StoredAlert]:
    rows = conn.execute(
        select(alerts).where(alerts.c.incident_id == incident_id).order_by(alerts.c.id)
    )
    return [alert_from_row(r) for r in rows]


def timeline_of(
    conn: Connection, incident_id: int, alerts_read: Sequence[StoredAlert]
) -> list[TimelineEntry]:
    """The incident's timeline in the order it was written: its rows, and the
    placements its alerts (`alerts_of`, read by the caller) hold (correlation/joins.py)."""
    rows = conn.execute(
        select(timeline).where(timeline.c.incident_id == incident_id).order_by(timeline.c.id)
    )
    stored = [(r.id, timeline_from_row(r)) for r in rows]
    return joins.in_order(stored, (a for a in alerts_read if a.incident_id == incident_id))


class IncidentOrder(StrEnum):
    """The order of an incident list."""

    NEWEST = "newest"  # id descending
    # Unresolved (open and acknowledged) before resolved, then P1 first, then newest.
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class IncidentCursor:
    """Where a page ended: the place of its last incident in the list's order. The API
    and the console pass it on as the opaque text of `encode_cursor`."""

    order: IncidentOrder
    id: int
    resolved: bool = False  # URGENT: the status group and priority of that incident
    priority: Priority = Priority.P1

    @classmethod
    def after(cls, inc: Incident, order: IncidentOrder) -> IncidentCursor:
        assert inc.id is not None
        resolved = inc.status is IncidentStatus.RESOLVED
        return cls(order, inc.id, resolved, inc.priority)


_MAX_CURSOR_ID = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL
_PRIORITIES = frozenset(p.value for p in Priority)


def encode_cursor(cursor: IncidentCursor) -> str:
    if cursor.order is IncidentOrder.NEWEST:
        text = f"id:{cursor.id}"  # as cursors were before orders existed
    else:
        text = f"{cursor.order}:{int(cursor.resolved)}:{cursor.priority}:{cursor.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> IncidentCursor:
    """The cursor `encode_cursor` made; ValueError for any other text."""
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):  # not base64, not ASCII
        raise ValueError("not a cursor") from None
    match decoded.split(":"):
        case ["id", digits]:
            return IncidentCursor(IncidentOrder.NEWEST, _cursor_id(digits))
        case ["urgent", "0" | "1" as resolved, priority, digits] if priority in _PRIORITIES:
            return IncidentCursor(
                IncidentOrder.URGENT, _cursor_id(digits), resolved == "1", Priority(priority)
            )
    raise ValueError("not a cursor")


def _cursor_id(digits: str) -> int:
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10:
        raise ValueError("not a cursor")
    if int(digits) > _MAX_CURSOR_ID:
        raise ValueError("not a cursor")
    return int(digits)


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    status: Sequence[IncidentStatus] = ()
    priority: Sequence[Priority] = ()
    service: str | None = None
    assignee: str | None = None
    q: str | None = None
    since: datetime | None = None
    order: IncidentOrder = IncidentOrder.NEWEST
    after: IncidentCursor | None = None  # the page that ends there came before


def list_incidents(conn: Connection, f: IncidentFilter, limit: int) -> list[Incident]:
    """At most `limit` incidents in the filter's order, after its cursor."""
    if f.after is not None and f.after.order is not f.order:
        raise ValueError(f"a cursor of order {f.after.order} given to order {f.order}")
    named = text_lookup(conn, f.q) if f.q else None
    conditions = _incident_conditions(f, conn.dialect.name, named)
    if f.order is IncidentOrder.NEWEST:
        if f.status:
            conditions.append(incidents.c.status.in_([s.value for s in f.status]))
        if f.priority:
            conditions.append(incidents.c.priority.in_([p.value for p in f.priority]))
        if f.after is not None:
            conditions.append(incidents.c.id < f.after.id)
        return _newest(conn, conditions, limit)
    found: list[Incident] = []
    # One index range per status group and priority, taken in urgency order until the
    # page is full: no sort of every match, and keyset paging within each range.
    for resolved, priority in _urgent_segments(f):
        statuses = _RESOLVED if resolved else _UNRESOLVED
        if f.status:
            statuses = [s for s in statuses if s in f.status]
        if not statuses:
            continue
        segment = [*conditions, incidents.c.priority == priority.value]
        segment.append(incidents.c.status.in_([s.value for s in statuses]))
        if f.after is not None and (f.after.resolved, f.after.priority) == (resolved, priority):
            segment.append(incidents.c.id < f.after.id)
        found += _newest(conn, segment, limit - len(found))
        if len(found) >= limit:
            break
    return found


TEXT_LOOKUP_MAX = 2000  # incidents the trigram index may name before a scan is faster


def text_lookup(conn: Connection, q: str) -> list[int] | None:
    """The incidents whose title or key may hold `q`, from the trigram index of SQLite
    (migration 0015), when they are few. None: no index, a text under three
    characters (no trigram), or so many that reading titles newest first fills a page
    sooner. The index folds the case of every letter, LIKE of ASCII ones only: what
    it names is then tested by LIKE too."""
    needle = q.lower()
    if conn.dialect.name != "sqlite" or len(needle) < 3:
        return None
    indexed = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'incidents_text'"
    if conn.execute(text(indexed)).first() is None:
        return None
    phrase = '"' + needle.replace('"', '""') + '"'  # a phrase of trigrams: a substring
    found = conn.execute(
        text("SELECT rowid FROM incidents_text WHERE incidents_text MATCH :phrase LIMIT :n"),
        {"phrase": phrase, "n": TEXT_LOOKUP_MAX + 1},
    )
    ids = list(found.scalars())
    return None if len(ids) > TEXT_LOOKUP_MAX else ids


def _search(q: str, dialect: str, named: list[int] | None) -> ColumnElement[bool]:
    """Case-insensitive text in the title or the key (among the incidents `named` by
    `text_lookup`, if it did), or the whole value of a label of one of the incident's
    alerts (exact: label values are case-sensitive)."""
    needle = q.lower()
    # SQLite's LIKE ignores the case of ASCII letters, exactly what its lower() folds:
    # the same matches as lower(title) LIKE, without a lower() per row (half the time).
    # autoescape: `%` and `_` in the search text match themselves.
    if dialect == "sqlite":
        title = or_(
            incidents.c.title.contains(needle, autoescape=True),
            incidents.c.key.contains(needle, autoescape=True),
        )
    else:
        title = or_(
            incidents.c.title.icontains(needle, autoescape=True),
            incidents.c.key.icontains(needle, autoescape=True),
        )
    found = [title if named is None else and_(incidents.c.id.in_(named), title)]
    if len(q) <= LABEL_VALUE_MAX:
        # Collected once, not probed for each incident scanned.
        labelled = select(incident_labels.c.incident_id).where(incident_labels.c.value == q)
        found.append(incidents.c.id.in_(labelled))
    return or_(*found)


_UNRESOLVED = [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED]
_RESOLVED = [IncidentStatus.RESOLVED]


def _urgent_segments(f: IncidentFilter) -> list[tuple[bool, Priority]]:
    """(resolved, priority) ranges of the URGENT order from the cursor's on."""
    priorities = sorted(set(f.priority or Priority))
    segments = [(resolved, p) for resolved in (False, True) for p in priorities]
    if f.after is None:
        return segments
    return [s for s in segments if s >= (f.after.resolved, f.after.priority)]


def _newest(conn: Connection, conditions: list[Any], limit: int) -> list[Incident]:
    """The page's ids first, then its rows: the database sorts the ids of every match
    (1,746 incidents hold the label value `web-7` in the bench's store), not their rows."""
    page = select(incidents.c.id).where(*conditions).order_by(incidents.c.id.desc()).limit(limit)
    query = select(incidents).where(incidents.c.id.in_(page)).order_by(incidents.c.id.desc())
    return [incident_from_row(r) for r in conn.execute(query)]


def _incident_conditions(f: IncidentFilter, dialect: str, named: list[int] | None) -> list[Any]:
    """The conditions of every order: all but status and priority."""
    conditions: list[Any] = []
    if f.service:
        conditions.append(incidents.c.service == f.service)
    if f.assignee:
        conditions.append(incidents.c.assignee == f.assignee)
    if f.q:
        conditions.append(_search(f.q, dialect, named))
    if f.since:
        conditions.append(incidents.c.opened_at >= f.since)
    return conditions


def open_counts(conn: Connection) -> dict[str, int]:
    """Unresolved incidents per priority."""
    rows = conn.execute(
        select(incidents.c.priority, func.count())
        .where(incidents.c.status != IncidentStatus.RESOLVED)
        .group_by(incidents.c.priority)
    )
    return {priority: count for priority, count in rows}


def alerts_received_since(conn: Connection, since: datetime) -> list[StoredAlert]:
    """Alerts received at or after `since`, in the order their episodes started."""
    rows = conn.execute(
        select(alerts).where(alerts.c.last_received >= since).order_by(alerts.c.starts_at)
    )
    return [alert_from_row(r) for r in rows]


# ---- maintenance windows created through the API


def api_windows(conn: Connection) -> list[MaintenanceWindow]:
    """The windows created through the API. One stored by an earlier version with a
    regex RE2 refuses is left out (and logged) rather than stopping the daemon."""
    windows = []
    for row in conn.execute(select(maintenance_windows).order_by(maintenance_windows.c.id)):
        try:
            windows.append(_window_from_row(row))
        except MatcherError as exc:
            log.warning("maintenance window %s is not in force: %s; delete it", row.name, exc)
    return windows


def _window_from_row(r: Row[Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        name=r.name,
        match=parse_selectors(list(r.match)),
        action=WindowAction(r.action),
        start=r.starts_at,
        end=r.ends_at,
        every=r.every,
        duration=timedelta(seconds=r.duration_s),
        timezone=r.timezone,
        change=r.change,
        file=API_WINDOWS,
        comment=r.comment,
        created_by=r.created_by,
    )


def add_window(conn: Connection, w: MaintenanceWindow, by: str, now: datetime) -> None:
    """Raises IntegrityError when the name is taken."""
    conn.execute(
        insert(maintenance_windows).values(
            name=w.name,
            match=[str(s) for s in w.match],
            action=w.action.value,
            starts_at=w.start,
            ends_at=w.end,
            every=w.every,
            duration_s=w.duration.total_seconds(),
            timezone=w.timezone,
            change=w.change,
            comment=w.comment,
            created_at=now,
            created_by=by,
        )
    )


def window_exists(conn: Connection, name: str) -> bool:
    """Whether a window of that name is stored (one api_windows leaves out included)."""
    found = conn.execute(
        select(maintenance_windows.c.id).where(maintenance_windows.c.name == name)
    ).first()
    return found is not None


def end_window(conn: Connection, name: str, end: datetime) -> bool:
    """Set the window's end (to end it early); False when no window has that name."""
    result = conn.execute(
        update(maintenance_windows).where(maintenance_windows.c.name == name).values(ends_at=end)
    )
    return result.rowcount > 0


def delete_window(conn: Connection, name: str) -> bool:
    result = conn.execute(delete(maintenance_windows).where(maintenance_windows.c.name == name))
    return result.rowcount > 0


# ---- problems: recurrence of incidents of one key


def link_problems(
    conn: Connection, ws: WorkingSet, ids: dict[int, int], rules: RuleSet, now: datetime
) -> list[Event]:
    """After a batch's incidents are inserted: carry out what recurrence decides for
    each new incident that has a recurrence key (join the key's open problem, or open
    one; see correlation/problems.py)."""
    events: list[Event] = []
    linked: set[int] = set()  # a problem opened by this batch links its other incidents too
    for temp, real in ids.items():
        inc = ws.incidents[temp]
        rule = rules.problem_rule_of(inc.problem_key)
        if real in linked or rule is None or inc.problem_key is None:
            continue
        found = _open_problem(conn, inc.problem_key)
        recent = [] if found is not None else _unlinked(conn, inc.problem_key, now - rule.within)
        match recurrence(rule, inc, found, recent, ws.opener(temp)):
            case JoinProblem(problem_id, why, workaround):
                _link(conn, problem_id, [real], now, why)
                if workaround is not None:
                    _known_error(conn, real, problem_id, workaround, now)
            case OpenNewProblem(incident_ids, title, why):
                problem_id = _insert_problem(conn, rule.name, inc.problem_key, title, now)
                _link(conn, problem_id, list(incident_ids), now, why)
                linked.update(incident_ids)
                events.append(Event(EventKind.PROBLEM_OPENED, problem_id, rule=rule.name))
                note_problem(conn, "problem_opened", problem_id, now)
    return events


def _open_problem(conn: Connection, key: str) -> OpenProblem | None:
    row = conn.execute(
        select(problems.c.id, problems.c.status, problems.c.workaround)
        .where(problems.c.key == key, problems.c.status != ProblemStatus.RESOLVED.value)
        .order_by(problems.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    known = row.status == ProblemStatus.KNOWN_ERROR.value
    return OpenProblem(row.id, row.workaround if known else None)


def _unlinked(conn: Connection, key: str, since: datetime) -> list[int]:
    """Incidents of a recurrence key opened since `since` that no problem links."""
    query = select(incidents.c.id).where(
        incidents.c.problem_key == key,
        incidents.c.opened_at >= since,
        incidents.c.problem_id.is_(None),
    )
    return list(conn.execute(query).scalars())


def _insert_problem(conn: Connection, rule: str, key: str, title: str, now: datetime) -> int:
    values: dict[str, Any] = {"rule": rule, "key": key, "title": title, "opened_at": now}
    values |= {"status": ProblemStatus.OPEN.value, "incident_count": 0}
    query = insert(problems).values(**values).returning(problems.c.id)
    problem_id: int = conn.execute(query).scalar_one()
    return problem_id


def _link(
    conn: Connection, problem_id: int, incident_ids: list[int], now: datetime, why: str
) -> None:
    conn.execute(
        update(incidents).where(incidents.c.id.in_(incident_ids)).values(problem_id=problem_id)
    )
    conn.execute(
        update(problems)
        .where(problems.c.id == problem_id)
        .values(incident_count=problems.c.incident_count + len(incident_ids))
    )
    message = f"linked to problem PRB-{problem_id}: {why}"
    add_timeline(
        conn, [TimelineEntry(i, now, TimelineKind.PROBLEM_LINKED, message) for i in incident_ids]
    )


def _known_error(
    conn: Connection, incident_id: int, problem_id: int, workaround: str, now: datetime
) -> None:
    """A problem marked as a known error lends its workaround to its new incidents."""
    conn.execute(
        update(incidents).where(incidents.c.id == incident_id).values(known_error=workaround)
    )
    message = f"known error PRB-{problem_id}: workaround attached: {workaround}"
    add_timeline(conn, [TimelineEntry(incident_id, now, TimelineKind.KNOWN_ERROR, message)])


def problem_from_row(row: Row[Any]) -> ProblemRecord:
    m = row._mapping
    return ProblemRecord(
        id=m["id"],
        rule=m["rule"],
        key=m["key"],
        status=ProblemStatus(m["status"]),
        title=m["title"],
        opened_at=m["opened_at"],
        resolved_at=m["resolved_at"],
        root_cause=m["root_cause"],
        workaround=m["workaround"],
        incident_count=m["incident_count"],
        root_cause_by=m["root_cause_by"],
        workaround_by=m["workaround_by"],
        resolved_by=m["resolved_by"],
    )


def list_problems(
    conn: Connection, limit: int, before_id: int | None = None
) -> list[ProblemRecord]:
    query = select(problems).order_by(problems.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(problems.c.id < before_id)
    return [problem_from_row(r) for r in conn.execute(query)]


def get_problem(conn: Connection, problem_id: int) -> tuple[ProblemRecord, list[Incident]] | None:
    row = conn.execute(select(problems).where(problems.c.id == problem_id)).first()
    if row is None:
        return None
    linked = conn.execute(
        select(incidents).where(incidents.c.problem_id == problem_id).order_by(incidents.c.id)
    )
    return problem_from_row(row), [incident_from_row(r) for r in linked]


def update_problem(conn: Connection, problem_id: int, **values: Any) -> None:
    conn.execute(update(problems).where(problems.c.id == problem_id).values(**values))
