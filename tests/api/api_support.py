"""Helpers for the API tests: an injectable clock, a test client with shortcuts, payloads.

Everything here talks to the app the way a client would (HTTP through aiohttp's test
server) except `ApiClient.stored_alerts()`, which reads the alerts table through the
app's own engine: it is how a test proves that a rejected request stored nothing and
that a resolve for an unknown alert (which belongs to no incident) was stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler, Middleware
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, select

from itsmd.api.keys import CHECKS, RUNTIME
from itsmd.durations import parse_time
from itsmd.models import Incident, IncidentStatus, Level, Policy, Priority
from itsmd.runtime.housekeeping import sweep_holds
from itsmd.runtime.state import Runtime
from itsmd.store.migrate import alembic_config
from itsmd.store.tables import alerts as alerts_table

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager"
WEBHOOK = "/api/v1/webhooks/alertmanager"
GENERIC = "/api/v1/alerts"
INCIDENTS = "/api/v1/incidents"
# Routes every captured payload: alerts with a service label group per service,
# the rest per alertname.
DEFAULT_RULES = """\
incidents:
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
  - name: catch-all
    match: '{}'
    group_by: [alertname]
"""
T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # after every captured payload's times


class FakeClock:
    """The app's clock: time moves only when a test says so."""

    def __init__(self, now: datetime = T0) -> None:
        if now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class MakeClient(Protocol):
    """The `make_client` fixture: rules as YAML text, Settings fields as keywords."""

    def __call__(
        self,
        rules_yaml: str = ...,
        *,
        clock: FakeClock | None = ...,
        remote: str | None = ...,
        **settings: Any,
    ) -> Awaitable[ApiClient]: ...


class ApiClient(TestClient[web.Request, web.Application]):
    """aiohttp's TestClient plus shortcuts; `clock` is the app's injected clock."""

    clock: FakeClock

    @property
    def runtime(self) -> Runtime:
        assert self.app is not None
        return self.app[RUNTIME]

    # ---- ingest

    async def post_raw(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> ClientResponse:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return await self.post(path, data=body, headers=all_headers)

    async def ingest(self, path: str, body: bytes | Any) -> dict[str, Any]:
        """POST a body (bytes as they are, anything else as JSON); expect 200."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = await self.post_raw(path, raw)
        text = await resp.text()
        assert resp.status == 200, f"POST {path} -> {resp.status}: {text}"
        result: dict[str, Any] = json.loads(text)
        return result

    async def webhook(self, *alerts: Mapping[str, Any]) -> dict[str, Any]:
        return await self.ingest(WEBHOOK, webhook_body(*alerts))

    async def generic(self, *alerts: Mapping[str, Any]) -> dict[str, Any]:
        return await self.ingest(GENERIC, list(alerts))

    # ---- reading incidents

    async def get_json(self, path: str, params: Any = None) -> Any:
        resp = await self.get(path, params=params)
        text = await resp.text()
        assert resp.status == 200, f"GET {path} {params} -> {resp.status}: {text}"
        return json.loads(text)

    async def incidents(self, **params: str) -> list[dict[str, Any]]:
        """Every incident matching the filters, following the cursor to the end."""
        found: list[dict[str, Any]] = []
        query = {"limit": "500", **params}
        while True:
            page = await self.get_json(INCIDENTS, query)
            found += page["incidents"]
            if page["next"] is None:
                return found
            query["cursor"] = page["next"]

    async def incident(self, ref: str) -> dict[str, Any]:
        detail: dict[str, Any] = await self.get_json(f"{INCIDENTS}/{ref}")
        return detail

    async def act(self, ref: str, action: str, body: Any = None) -> ClientResponse:
        return await self.post(f"{INCIDENTS}/{ref}/{action}", json=body if body else {})

    # ---- operations

    async def metrics_text(self) -> str:
        resp = await self.get("/metrics")
        assert resp.status == 200
        return await resp.text()

    async def metric(self, name: str, **labels: str) -> float:
        return metric_value(await self.metrics_text(), name, **labels)

    async def run_check(self, name: str) -> None:
        """Run one check now, as its scheduler job would."""
        assert self.app is not None
        await self.app[CHECKS].run(name)

    async def sweep(self) -> int:
        """Run the auto-resolve sweep now, as the scheduler would."""
        return await sweep_holds(self.runtime)

    async def stored_alerts(self) -> list[dict[str, Any]]:
        """Every row of the alerts table (see the module docstring for why)."""
        db = self.runtime.db
        assert db is not None

        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(alerts_table).order_by(alerts_table.c.id))
            return [dict(r._mapping) for r in rows]

        return await db.read(read)


def remote_is(address: str) -> Middleware:
    """A middleware that makes the app see the client at `address`, as a reverse proxy
    would (`request.clone(remote=...)`); the test server itself is on loopback."""

    @web.middleware
    async def remote(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(remote=address))

    return remote


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples `name` carrying `labels` (0 when the family has none yet).

    The family itself must exist, so a misspelt name fails instead of reading 0.
    """
    total, family_found = 0.0, False
    for family in text_string_to_metric_families(exposition):
        if name == family.name or name.startswith(family.name + "_"):
            family_found = True
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    assert family_found, f"no metric family for {name} in the exposition"
    return total


# ---- payloads


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def same_time(a: str | None, b: str | None) -> bool:
    """Equal instants, whatever the spelling (Alertmanager sends nanoseconds)."""
    if a is None or b is None:
        return a is b
    return parse_time(a) == parse_time(b)


def alert(
    alertname: str = "HighErrorRate",
    *,
    status: str = "firing",
    starts_at: datetime | None = T0,
    ends_at: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert in Alertmanager's shape (both the webhook and /api/v1/alerts take it)."""
    item: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": dict(annotations or {}),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    if starts_at is not None:
        item["startsAt"] = rfc3339(starts_at)
    if ends_at is not None:
        item["endsAt"] = rfc3339(ends_at)
    elif status == "resolved":
        raise ValueError("a resolved alert needs ends_at")
    return item


def resolved(firing: Mapping[str, Any], ends_at: datetime) -> dict[str, Any]:
    """The resolve of a firing alert built by `alert()`: same labels and startsAt."""
    return {**firing, "status": "resolved", "endsAt": rfc3339(ends_at)}


def webhook_body(*alerts: Mapping[str, Any]) -> dict[str, Any]:
    """An Alertmanager version 4 webhook body around `alerts`."""
    items = [{"endsAt": "0001-01-01T00:00:00Z", **a} for a in alerts]
    firing = any(a["status"] == "firing" for a in items)
    return {
        "receiver": "itsmd",
        "status": "firing" if firing else "resolved",
        "alerts": items,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }


def capture(name: str) -> dict[str, Any]:
    """One captured Alertmanager delivery file (see fixtures/alertmanager/README.md)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def raw_body(name: str) -> bytes:
    """The exact bytes Alertmanager posted for a single-delivery capture."""
    return str(capture(name)["body_raw"]).encode()


def by_kind(timeline: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [entry for entry in timeline if entry["kind"] == kind]


def stored_incident(key: str, opened_at: datetime, **fields: Any) -> Incident:
    """An incident as a store test writes it directly (no correlation): rule "r",
    title "t", open, P3, one firing alert, holds of a minute; `fields` change any of
    that, `status` following `resolved_at` unless given."""
    minute = timedelta(minutes=1)
    if "status" not in fields and fields.get("resolved_at") is not None:
        fields["status"] = IncidentStatus.RESOLVED
    base = Incident(
        id=None,
        rule="r",
        key=key,
        status=IncidentStatus.OPEN,
        title="t",
        description="",
        priority=Priority.P3,
        impact=Level.MEDIUM,
        urgency=Level.MEDIUM,
        service=None,
        assignee=None,
        labels={},
        opened_at=opened_at,
        acknowledged_at=None,
        resolved_at=None,
        alert_count=1,
        firing_count=1,
        policy=Policy(window=minute, auto_resolve=minute, reopen=minute),
    )
    return dataclasses.replace(base, **fields)


def downgrade(conn: Connection, revision: str) -> None:
    """Migrate the database of `conn` down to `revision`, as alembic's command does."""
    config = alembic_config()
    config.attributes["connection"] = conn
    command.downgrade(config, revision)
