"""Stored alerts found by label matchers, state and time, newest first (docs/api.md,
Searching alerts).

Matching is Prometheus's and Alertmanager's exactly because every candidate row is
tested in Python by the `Selector`s of `correlation.matchers` (RE2, fully anchored
regexes, a missing label reads as ""). SQL only narrows the candidates where that
cannot drop a match: states, times and the cursor are columns, and an `=` matcher
with a non-empty value needs the label to hold exactly that value. Candidates are
read in chunks of ids going down, so that a rare label never holds the whole table
in memory; `search_page` also stops after a number of rows looked at, so that one
request stays short on a large table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, func, literal_column, or_, select

from itsmd.correlation.matchers import MatchOp, Selector
from itsmd.models import Action, AlertStatus, StoredAlert
from itsmd.store.repo import alert_from_row
from itsmd.store.tables import alerts

CHUNK = 1000  # candidate rows read at a time (their ids and labels only)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
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
    where = _conditions(conn.dialect.name, q)
    if not q.selectors:  # SQL decides everything: no need to look at labels
        query = select(alerts).where(*where, *_below(q.before_id))
        rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(limit + 1)).all()
        found = [alert_from_row(r) for r in rows[:limit]]
        return Page(found, found[-1].id if len(rows) > limit else None)
    ids: list[int] = []  # one more than `limit` tells that there are more
    below, looked = q.before_id, 0
    while True:
        size = chunk if scan is None else max(1, min(chunk, scan - looked))
        query = select(alerts.c.id, alerts.c.labels).where(*where, *_below(below))
        rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(size)).all()
        looked += len(rows)
        for row in rows:
            if all(s.matches(row.labels) for s in q.selectors):
                ids.append(row.id)
                if len(ids) > limit:
                    return Page(_load(conn, ids[:limit]), ids[limit - 1])
        if len(rows) < size:
            return Page(_load(conn, ids), None)
        below = rows[-1].id
        if scan is not None and looked >= scan:
            return Page(_load(conn, ids), below)


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


def _conditions(dialect: str, q: AlertQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.states and len(q.states) < len(AlertState):
        where.append(or_(*(_state(s) for s in sorted(q.states))))
    if q.since is not None:
        where.append(alerts.c.last_received >= q.since)
    for name, value in _required_values(q.selectors):
        where.append(label_value(dialect, name) == value)
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


def label_value(dialect: str, name: str) -> ColumnElement[Any]:
    """The text of one label, NULL when missing. The name is written into the
    statement, not bound, so that an expression index on the same expression
    (`json_extract(labels, '$."pod"')`, `(labels ->> 'pod')`) serves it; label names
    are `[a-zA-Z_][a-zA-Z0-9_]*`, which cannot break out of the quotes."""
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"invalid label name {name!r}")
    if dialect == "postgresql":
        return alerts.c.labels.op("->>")(literal_column(f"'{name}'", String))
    return func.json_extract(alerts.c.labels, literal_column(f"'$.\"{name}\"'", String))
