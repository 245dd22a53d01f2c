"""Stored alerts found by label matchers, state and time, newest first (docs/api.md,
Searching alerts).

Matching is Prometheus's and Alertmanager's exactly because every match is tested in
Python by the `Selector`s of `correlation.matchers` (RE2, fully anchored regexes, a
missing label reads as ""). SQL only drops candidates that cannot match. States,
times and the cursor are columns. An alert with the value of an `=` matcher is in an
incident holding that value (`incident_labels`, written for every alert that joins an
incident: store/alertfacts.py) or in none, so no newer than their newest alert
(`_newest_alert`: where SQLite walks down the table from when those incidents hold
many alerts). Its labels' JSON text holds the value in quotes, when the value is
plain ASCII (`_json_strings`): a substring test, where extracting the label
(`json_extract`) would cost SQLite four times what reading the row and testing it
here does. Candidates are read in chunks of ids going down, so that a rare label
never holds the whole table in memory, and of those passing the text test only as
many rows as the page still needs are read in full; `search_page` also stops after
a number of rows looked at, so that one request stays short on a large table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    intersect,
    literal_column,
    or_,
    select,
)

from itsmd.correlation.matchers import MatchOp, Selector
from itsmd.models import Action, AlertStatus, StoredAlert
from itsmd.store.repo import alert_from_row
from itsmd.store.tables import LABEL_VALUE_MAX, alerts, incident_labels, incidents

CHUNK = 1000  # candidate rows read at a time (their ids and labels only)
# A value held by at most this many incidents narrows the search to their alerts and
# those of no incident; their alerts are read through an index up to INDEXED_ALERTS.
NARROW_INCIDENTS = 5000
INDEXED_ALERTS = 20_000
# Decisions that placed the alert nowhere: its state is the decision, not its status.
_NOT_PLACED = (Action.SUPPRESSED.value, Action.UNROUTED.value)


class AlertState(StrEnum):
    """Where a stored alert stands; every alert has exactly one state."""

    FIRING = "firing"  # placed in an incident (or a resolve never seen firing): its status
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"  # a maintenance window suppressed it: it has no incident
    UNROUTED = "unrouted"  # no incident rule matched: stored only


def state_of(alert: StoredAlert) -> AlertState:
    action = alert.decision.action
    if action is Action.SUPPRESSED:
        return AlertState.SUPPRESSED
    if action is Action.UNROUTED:
        return AlertState.UNROUTED
    return AlertState.FIRING if alert.status is AlertStatus.FIRING else AlertState.RESOLVED


@dataclass(frozen=True, slots=True)
class AlertQuery:
    selectors: tuple[Selector, ...] = ()  # an alert must match every one
    states: frozenset[AlertState] = frozenset()  # any of them; empty: every state
    since: datetime | None = None  # received (last_received) at or after
    before_id: int | None = None  # cursor: alerts with a smaller id


@dataclass(frozen=True, slots=True)
class Page:
    alerts: list[StoredAlert]  # newest first
    resume_below: int | None  # search again below this id for more; None: no more


def search_alerts(
    conn: Connection, q: AlertQuery, limit: int, *, chunk: int = CHUNK
) -> list[StoredAlert]:
    """At most `limit` alerts matching `q`, newest first (id descending)."""
    return search_page(conn, q, limit, scan=None, chunk=chunk).alerts


def search_page(
    conn: Connection, q: AlertQuery, limit: int, *, scan: int | None, chunk: int = CHUNK
) -> Page:
    """Like `search_alerts`, but stops once `scan` candidate rows were looked at
    (None: never) and says where to go on. A page that stopped early may hold fewer
    than `limit` alerts, even none; `resume_below` is then the last id looked at."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    where = [*_conditions(q), *_below(q.before_id)]
    if not q.selectors:  # SQL decides everything: no need to look at labels
        rows = conn.execute(
            select(alerts).where(*where).order_by(alerts.c.id.desc()).limit(limit + 1)
        ).all()
        found = [alert_from_row(r) for r in rows[:limit]]
        return Page(found, found[-1].id if len(rows) > limit else None)
    where += _held(conn, q)
    if _json_strings(q.selectors):
        found, resume = _scan(conn, q, where, limit, scan, chunk, _alerts_matching)
        if len(found) > limit:
            return Page(found[:limit], found[limit - 1].id)
        return Page(found, resume)
    ids, resume = _scan(conn, q, where, limit, scan, chunk, _ids_matching)
    if len(ids) > limit:
        return Page(_load(conn, ids[:limit]), ids[limit - 1])
    return Page(_load(conn, ids), resume)


_Match = TypeVar("_Match")  # what a scan finds: ids, or the rows it read
# How a chunk of candidates is tested: (conn, q, the chunk's query of ids going down,
# how many matches are still wanted) -> (rows looked at, the lowest id among them, the
# matches going down, no more than wanted).
_ChunkTest = Callable[
    [Connection, AlertQuery, Select[Any], int], tuple[int, int | None, list[_Match]]
]


def _scan(
    conn: Connection,
    q: AlertQuery,
    where: list[ColumnElement[bool]],
    limit: int,
    scan: int | None,
    chunk: int,
    test: _ChunkTest[_Match],
) -> tuple[list[_Match], int | None]:
    """Up to `limit` + 1 matches going down, chunk by chunk of candidates, and where to
    resume when the scan stopped before the end (None: nothing more below)."""
    found: list[_Match] = []
    below, looked = None, 0
    while True:
        size = chunk if scan is None else max(1, min(chunk, scan - looked))
        candidates = select(alerts.c.id).where(*where, *_below(below)).order_by(alerts.c.id.desc())
        seen, lowest, matches = test(conn, q, candidates.limit(size), limit + 1 - len(found))
        found += matches
        if len(found) > limit or seen < size:
            return found, None
        looked += seen
        below = lowest
        if scan is not None and looked >= scan:
            return found, below


def _ids_matching(
    conn: Connection, q: AlertQuery, candidates: Select[Any], wanted: int
) -> tuple[int, int | None, list[int]]:
    """The candidates' labels read and tested here, up to the `wanted`-th match."""
    rows = conn.execute(candidates.add_columns(alerts.c.labels)).all()
    ids = islice((row.id for row in rows if _matches(q, row.labels)), wanted)
    return len(rows), rows[-1].id if rows else None, list(ids)


def _alerts_matching(
    conn: Connection, q: AlertQuery, candidates: Select[Any], wanted: int
) -> tuple[int, int | None, list[StoredAlert]]:
    """The JSON-string test in SQL, one row for the chunk (rows looked at, the lowest
    id, the ids holding every text); then the rows of those ids, read going down no
    more at a time than are still wanted, tested here by the matchers."""
    text = cast(alerts.c.labels, Text)
    holds = and_(*(_contains(conn.dialect.name, text, t) for t in _json_strings(q.selectors)))
    chunk = candidates.add_columns(holds.label("holds")).subquery()
    passing = _ids_where(conn, chunk.c.id, chunk.c.holds)
    rows, lowest, passed = conn.execute(select(func.count(), func.min(chunk.c.id), passing)).one()
    ids = sorted(_parse_ids(passed), reverse=True)
    found: list[StoredAlert] = []
    while ids and len(found) < wanted:
        take, ids = ids[: wanted - len(found)], ids[wanted - len(found) :]
        found += [a for a in _load(conn, take) if _matches(q, a.labels)]
    return rows, lowest, found


def _ids_where(conn: Connection, ids: Any, condition: Any) -> ColumnElement[Any]:
    """The ids of a chunk whose `condition` holds, as one text ("7,5,2")."""
    if conn.dialect.name == "sqlite":
        return func.group_concat(case((condition, ids)))
    return func.string_agg(cast(ids, Text), ",").filter(condition)


def _contains(dialect: str, text: ColumnElement[str], literal: str) -> ColumnElement[bool]:
    """`literal` is part of `text`."""
    where_in = func.instr if dialect == "sqlite" else func.strpos
    return where_in(text, literal) > 0


def _parse_ids(text: str | None) -> list[int]:
    return [int(i) for i in text.split(",")] if text else []


def _json_strings(selectors: Iterable[Selector]) -> list[str]:
    """The values of the `=` matchers as they stand in the JSON of any labels that
    hold them. Printable ASCII other than `"` and `\\` is written as itself by every
    writer that stored labels (orjson, Python's json before it, PostgreSQL); other
    characters may be escaped or not, so such a value is not looked for."""
    return [
        f'"{value}"'
        for _, value in _required_values(selectors)
        if all(" " <= c <= "~" and c not in '"\\' for c in value)
    ]


def _matches(q: AlertQuery, labels: Mapping[str, str]) -> bool:
    return all(s.matches(labels) for s in q.selectors)


def _held(conn: Connection, q: AlertQuery) -> list[ColumnElement[bool]]:
    """Where the alerts with the values of the `=` matchers can be: in the incidents
    holding all of them (`incident_labels`) or in none. [] when those are too many (the
    matches are then dense, and a plain scan finds them soon) or no value can be held."""
    held = incident_labels.c
    each = [
        select(held.incident_id).where(held.value == value)
        for _, value in _required_values(q.selectors)
        if len(value) <= LABEL_VALUE_MAX
    ]
    if not each:
        return []
    holding = intersect(*each) if len(each) > 1 else each[0]  # incidents holding every one
    # The database keeps the list (as a subquery) rather than Python sending it back
    # as thousands of parameters with every chunk.
    some = holding.limit(NARROW_INCIDENTS + 1).subquery()
    found = conn.execute(select(func.count()).select_from(some)).scalar_one()
    if found > NARROW_INCIDENTS:
        return []
    if found == 0:
        return [alerts.c.incident_id.is_(None)]
    column: ColumnElement[Any] = alerts.c.incident_id
    if conn.dialect.name == "sqlite":
        # SQLite has no statistics to choose a plan by. The few alerts of a few
        # incidents come fastest through the incident_id index (then sorted); many
        # come fastest going down the table, testing each row's incident_id (no JSON
        # to read) without the index: a unary `+` keeps SQLite off it.
        count = select(func.coalesce(func.sum(incidents.c.alert_count), 0))
        if conn.execute(count.where(incidents.c.id.in_(holding))).scalar_one() > INDEXED_ALERTS:
            column = literal_column("+alerts.incident_id", Integer)
            # Going down the table starts at the newest alert that can match: the
            # alerts of other incidents above it (a storm elsewhere) are not walked.
            newest = _newest_alert(conn, holding.subquery())
            return [or_(column.in_(holding), column.is_(None)), alerts.c.id <= newest]
    return [or_(column.in_(holding), column.is_(None))]


def _newest_alert(conn: Connection, holding: Any) -> int:
    """The id of the newest alert of the incidents `holding` names or of none (0 when
    there is none): one seek of the incident_id index per incident."""
    newest_of = (
        select(alerts.c.id)
        .where(alerts.c.incident_id == holding.c.incident_id)
        .order_by(alerts.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    held = conn.execute(select(func.max(newest_of)).select_from(holding)).scalar()
    unplaced = conn.execute(
        select(func.max(alerts.c.id)).where(alerts.c.incident_id.is_(None))
    ).scalar()
    return max(held or 0, unplaced or 0)


def episodes(conn: Connection, fingerprint: str) -> list[StoredAlert]:
    """Every stored episode of one fingerprint, newest first (the unique index on
    fingerprint and startsAt serves it)."""
    query = (
        select(alerts)
        .where(alerts.c.fingerprint == fingerprint)
        .order_by(alerts.c.starts_at.desc(), alerts.c.id.desc())
    )
    return [alert_from_row(r) for r in conn.execute(query)]


def _load(conn: Connection, ids: list[int]) -> list[StoredAlert]:
    if not ids:
        return []
    rows = conn.execute(select(alerts).where(alerts.c.id.in_(ids)).order_by(alerts.c.id.desc()))
    return [alert_from_row(r) for r in rows]


def _below(before_id: int | None) -> list[ColumnElement[bool]]:
    return [] if before_id is None else [alerts.c.id < before_id]


def _conditions(q: AlertQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.states and len(q.states) < len(AlertState):
        where.append(or_(*(_state(s) for s in sorted(q.states))))
    if q.since is not None:
        where.append(alerts.c.last_received >= q.since)
    return where


def _state(state: AlertState) -> ColumnElement[bool]:
    action = alerts.c.action
    match state:
        case AlertState.SUPPRESSED:
            return action == Action.SUPPRESSED.value
        case AlertState.UNROUTED:
            return action == Action.UNROUTED.value
        case AlertState.FIRING | AlertState.RESOLVED:
            return and_(action.not_in(_NOT_PLACED), alerts.c.status == state.value)


def _required_values(selectors: Iterable[Selector]) -> list[tuple[str, str]]:
    """(name, value) pairs every match holds: `=` matchers with a non-empty value (an
    empty one also matches a missing label, which SQL equality would drop)."""
    return sorted(
        {(m.name, m.value) for s in selectors for m in s.matchers if m.op is MatchOp.EQ and m.value}
    )
