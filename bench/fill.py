"""A large store for the read benchmark (bench/console.py): incidents, their alerts,
timelines and SLA marks, bulk-inserted through SQLAlchemy Core into the schema the
migrations make (the daemon's own tables and triggers).

The shape follows a busy production store over 30 days: about 5% of the incidents
open or acknowledged (most of them recent), priorities from P1 (5%) to P5, services
of very unequal size, 1 to 500 alerts per incident (most have a few), each alert
with alertname/service/severity/env/namespace/pod/instance labels, and a timeline
entry per opening and per human act (a joining alert's entry is derived from its
own row, as the daemon stores it: correlation/joins.py). Seeded: the same arguments
give the same store.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from itsmd.store import alertfacts
from itsmd.store.tables import alerts, incidents, sla_breaches, timeline

SERVICES = [
    *("web", "api", "checkout", "db", "cache", "search", "auth", "payments", "queue"),
    *(f"svc-{n}" for n in range(191)),
]
ALERTNAMES = [
    *("HighErrorRate", "HighLatency", "PodCrashLooping", "InstanceDown", "DiskFull"),
    *("MemoryPressure", "CPUThrottling", "ReplicationLag", "CertificateExpiring"),
    *(f"Custom{n}" for n in range(21)),
]
PEOPLE = [f"oncall-{n}" for n in range(20)]
# Share of incidents per priority; impact and urgency that make it.
PRIORITIES = {"P1": 0.05, "P2": 0.10, "P3": 0.35, "P4": 0.35, "P5": 0.15}
LEVELS = {
    "P1": ("high", "high"),
    "P2": ("high", "medium"),
    "P3": ("medium", "medium"),
    "P4": ("medium", "low"),
    "P5": ("low", "low"),
}
# (respond, resolve) as itsmd.example.yml sets them; P5 has none.
SLA = {
    "P1": (timedelta(minutes=15), timedelta(hours=4)),
    "P2": (timedelta(minutes=30), timedelta(hours=8)),
    "P3": (timedelta(hours=4), timedelta(days=3)),
    "P4": (timedelta(days=1), timedelta(days=7)),
}
SPAN = timedelta(days=30)
MAX_ALERTS = 500
_BATCH = 20_000


@dataclass(frozen=True)
class Filled:
    incidents: int
    alerts: int
    timeline: int
    big_incident: int  # an incident of MAX_ALERTS alerts (the detail page measured)
    unresolved: int


def alert_counts(rng: random.Random, incidents: int, total: int) -> list[int]:
    """1..MAX_ALERTS alerts per incident, heavy-tailed, adding up to `total`."""
    raw = [min(MAX_ALERTS, max(1, int(rng.paretovariate(1.1)))) for _ in range(incidents)]
    scale = total / sum(raw)
    counts = [min(MAX_ALERTS, max(1, round(c * scale))) for c in raw]
    counts[-100] = MAX_ALERTS  # a recent incident of the largest size
    while (missing := total - sum(counts)) != 0:
        i = rng.randrange(incidents - 200)  # keep the one above as it is
        step = max(-counts[i] + 1, min(missing, MAX_ALERTS - counts[i]))
        counts[i] += step
    return counts


def fill(
    conn: Connection,
    now: datetime,
    incident_total: int,
    alert_total: int,
    seed: int = 7,
    span: timedelta = SPAN,
) -> Filled:
    rng = random.Random(seed)
    counts = alert_counts(rng, incident_total, alert_total)
    # About 5% unresolved: four in five among the newest, the rest stuck for longer.
    newest = range(incident_total - incident_total * 6 // 100, incident_total)
    unresolved = set(rng.sample(newest, incident_total * 4 // 100))
    unresolved |= set(rng.sample(range(incident_total), incident_total // 100))
    weights = [1 / (rank + 1) for rank in range(len(SERVICES))]
    rows: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    active: set[str] = set()
    for n in range(incident_total):
        opened = now - span + span * (n + rng.random()) / incident_total
        service = rng.choices(SERVICES, weights)[0]
        row = _incident(rng, n + 1, opened, service, counts[n], n in unresolved, now)
        if row["active_key"] is not None:
            if row["active_key"] in active:
                row["active_key"] = None  # one current incident per key
            active.add(row["key"])
        rows.append(row)
        breaches += _breaches(n + 1, row, now)
    for chunk in _batches(rows):
        conn.execute(insert(incidents), chunk)
    if conn.dialect.name == "postgresql":  # ids were given: move the sequence past them
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('incidents', 'id'), :n)"),
            {"n": incident_total},
        )
    conn.execute(insert(sla_breaches), breaches)
    alert_rows = timeline_rows = 0
    for chunk in _batches(_timeline(rows, counts)):
        conn.execute(insert(timeline), chunk)
        timeline_rows += len(chunk)
    # Each placed alert's entry comes right after its incident's opening, as the
    # writer places those it writes no row for (correlation/joins.py); set as the
    # rows go in (an UPDATE would leave PostgreSQL a dead copy of every alert).
    opening = dict(
        conn.execute(
            select(timeline.c.incident_id, func.min(timeline.c.id)).group_by(timeline.c.incident_id)
        ).all()
    )
    for chunk in _batches(_alerts(rng, rows, counts, now)):
        for alert in chunk:
            alert["placed_after"] = opening[alert["incident_id"]]
        conn.execute(insert(alerts), chunk)
        if conn.dialect.name == "sqlite":  # as its writer does (PostgreSQL: triggers)
            facts = [(a["incident_id"], a["rule"], a["starts_at"], a["labels"]) for a in chunk]
            alertfacts.add_sqlite(conn, facts)
        alert_rows += len(chunk)
    return Filled(
        incidents=incident_total,
        alerts=alert_rows,
        timeline=timeline_rows,
        big_incident=incident_total - 99,
        unresolved=len(unresolved),
    )


def _incident(
    rng: random.Random,
    incident_id: int,
    opened: datetime,
    service: str,
    count: int,
    unresolved: bool,
    now: datetime,
) -> dict[str, Any]:
    priority = rng.choices(list(PRIORITIES), list(PRIORITIES.values()))[0]
    impact, urgency = LEVELS[priority]
    alertname = rng.choice(ALERTNAMES)
    rule = "service-outage" if priority in ("P1", "P2") else "service-degraded"
    key = f'{rule}{{alertname="{alertname}", service="{service}"}}'
    respond, resolve = SLA.get(priority, (None, None))
    responded = opened + timedelta(seconds=rng.lognormvariate(6.5, 1.2))
    acknowledged = responded if rng.random() < 0.8 else None
    status, resolved = "resolved", opened + timedelta(seconds=rng.lognormvariate(8, 1.3))
    if unresolved:
        status, resolved = ("acknowledged" if rng.random() < 0.4 else "open"), None
        if status == "open":
            responded = acknowledged = None
    elif rng.random() < 0.3:  # resolved by itself before anyone answered
        responded = acknowledged = None
    if resolved is not None and resolved > now:
        resolved = now - timedelta(seconds=1)
    if responded is not None and responded > (resolved or now):
        responded = acknowledged = None
    return {
        "id": incident_id,
        "rule": rule,
        "key": key,
        "active_key": key if unresolved else None,
        "status": status,
        "title": f"{alertname} on {service}",
        "description": f"{alertname} fires for {count} pods of {service} in prod",
        "priority": priority,
        "impact": impact,
        "urgency": urgency,
        "service": service,
        "assignee": rng.choice(PEOPLE) if acknowledged and rng.random() < 0.6 else None,
        "labels": {"alertname": alertname, "service": service},
        "opened_at": opened,
        "acknowledged_at": acknowledged,
        "responded_at": responded,
        "resolved_at": resolved,
        "all_clear_at": None,
        "auto_resolve_at": None,
        "respond_due": None if respond is None else opened + respond,
        "resolve_due": None if resolve is None else opened + resolve,
        "alert_count": count,
        "firing_count": count if unresolved else 0,
        "window_s": 900.0,
        "auto_resolve_s": 300.0,
        "reopen_s": 3600.0,
        "parent_id": None,
        "problem_id": None,
        "problem_key": None,
        "known_error": None,
    }


def _breaches(incident_id: int, row: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The SLA marks the daemon's clock would have written by `now`."""
    marks = []
    for kind, met_by in (
        ("respond", [row["resolved_at"], row["responded_at"]]),
        ("resolve", [row["resolved_at"]]),
    ):
        due = row[f"{kind}_due"]
        if due is not None and due <= now and all(m is None or m > due for m in met_by):
            marks.append({"incident_id": incident_id, "kind": kind, "due_at": due})
            marks[-1]["marked_at"] = due + timedelta(seconds=5)
    return marks


def _alerts(
    rng: random.Random, rows: list[dict[str, Any]], counts: list[int], now: datetime
) -> Iterator[dict[str, Any]]:
    for row, count in zip(rows, counts, strict=True):
        service, alertname = row["service"], row["labels"]["alertname"]
        severity = "critical" if row["rule"] == "service-outage" else "warning"
        firing = row["status"] != "resolved"
        for k in range(count):
            starts = row["opened_at"] + timedelta(seconds=k * 2)
            ends = None if firing else max(starts, row["resolved_at"] or starts)
            pod = f"{service}-{rng.randrange(60)}"
            labels = {
                "alertname": alertname,
                "service": service,
                "severity": severity,
                "env": "prod",
                "namespace": f"ns-{service}",
                "pod": pod,
                "instance": f"10.{row['id'] % 250}.{k % 250}.{rng.randrange(250)}:9100",
            }
            yield {
                "fingerprint": f"{row['id']:012x}{k:04x}",
                "starts_at": starts,
                "status": "firing" if firing else "resolved",
                "ends_at": ends,
                "labels": labels,
                "annotations": {"summary": f"{alertname} on {pod}", "runbook": "RB-17"},
                "generator_url": "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0",
                "source": "alertmanager",
                "first_received": starts,
                "last_received": min(now, ends or now),
                "receive_count": 1 + k % 7,
                "incident_id": row["id"],
                "rule": row["rule"],
                "key": row["key"],
                "action": "opened" if k == 0 else "joined",
                "reason": f'matched rule {row["rule"]} {{severity="{severity}"}}; key {row["key"]}',
                "suppressed_by": None,
                "change": None,
            }


def _timeline(rows: list[dict[str, Any]], counts: list[int]) -> Iterator[dict[str, Any]]:
    for row, _count in zip(rows, counts, strict=True):
        base = {"incident_id": row["id"], "alert_id": None, "rule": row["rule"]}
        yield {**base, "at": row["opened_at"], "kind": "opened", "message": "opened"}
        if row["acknowledged_at"] is not None:
            yield {**base, "at": row["acknowledged_at"], "kind": "acknowledged"}
        if row["resolved_at"] is not None:
            yield {**base, "at": row["resolved_at"], "kind": "resolved"}


def _batches(rows: Any) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(_complete(row))
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Timeline rows need a message and an actor; the others are complete."""
    if "kind" in row:
        row.setdefault("message", row["kind"])
        row.setdefault("actor", "itsmd" if row["kind"] == "opened" else "bob")
    return row
