"""ServiceNow sink: one incident record per itsmd incident, through the Table API.

Follows the documented Table API (`/api/now/table/{table}`, Basic auth, JSON):
`POST` creates a record and answers 201 `{"result": {"sys_id", "number", ...}}`,
`PATCH /{sys_id}` updates fields, `GET ?sysparm_query=...` lists records.
Incident states are the out-of-box ones: 2 In Progress, 6 Resolved.

`opened` creates the record; later events PATCH it by the sys_id the outbox kept
as `ref`. When there is no ref (the route began after the incident opened), the
record is looked up by `correlation_id` (the itsmd incident id, with
`correlation_display` "itsmd") and created when absent, so the update always
lands. A retried `opened` (attempt > 1) also looks first: the answer to a create
that ServiceNow carried out may have been lost, and a second record would split
the incident. Problem events are not sent: they have no incident record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson

from itsmd.connector import (
    Delivered,
    Delivery,
    Failed,
    Notification,
    Retry,
    SinkEnv,
    SinkKind,
    SinkOptions,
    http_delivery,
)

SHORT_DESCRIPTION_MAX: Final = 160  # the column length of a stock instance
CORRELATION_DISPLAY: Final = "itsmd"
LEVELS: Final = {"high": "1", "medium": "2", "low": "3"}  # impact and urgency
IN_PROGRESS, RESOLVED = "2", "6"
JSON_BODY: Final = {"Content-Type": "application/json"}
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})

Incident = Mapping[str, Any]  # the Incident JSON of the API (DESIGN section 3)


def build(options: SinkOptions, env: SinkEnv) -> ServiceNowSink:
    instance_url = base_url(options, "instance_url")
    user = options.text("user")
    if ":" in user:
        options.fail("user", "a Basic auth user name has no ':'")
    password = options.secret("password")
    table = options.text("table", "incident")
    if table and not table.replace("_", "").isalnum():
        options.fail("table", f"expected a table name like u_itsmd_incident, got {table!r}")
    extra = {
        key: value
        for key in ("assignment_group", "caller_id", "category")
        if (value := options.optional_text(key))
    }
    options.done()
    return ServiceNowSink(
        table_url=f"{instance_url}/api/now/table/{table}",
        headers=headers(user, password or ""),
        extra=extra,
        env=env,
    )


def headers(user: str, secret: str) -> dict[str, str]:
    authorization = aiohttp.encode_basic_auth(user, secret)
    return {"Accept": "application/json", "Authorization": authorization}


def base_url(options: SinkOptions, key: str) -> str:
    """An https URL without a trailing slash; plain http only to loopback (tests),
    since the sink sends a password with every request."""
    url = options.text(key)
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    if url and (not secure or not parts.hostname or parts.query or parts.fragment):
        options.fail(key, f"expected an https:// URL (http:// only to loopback), got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    retry_after: str | None

    def delivery(self) -> Delivery:
        return http_delivery(self.status, self.text, self.retry_after)

    def result(self) -> Any:
        """The `result` member of a JSON answer, None when the body is not one."""
        try:
            body = orjson.loads(self.text)
        except orjson.JSONDecodeError:
            return None
        return body.get("result") if isinstance(body, dict) else None


@dataclass(frozen=True, slots=True)
class ServiceNowSink:
    table_url: str
    headers: dict[str, str] = field(repr=False)  # Accept and Authorization (a secret)
    extra: dict[str, str]  # assignment_group, caller_id, category as configured
    env: SinkEnv

    async def send(self, notification: Notification) -> Delivery:
        incident = notification.incident
        if incident is None:
            return Delivered(detail="not sent: ServiceNow gets incident events only")
        try:
            return await self._send(notification, incident)
        except TimeoutError:
            return Retry(f"no answer from ServiceNow within {self.env.timeout_s:g}s")
        except aiohttp.ClientError as exc:
            return Retry(unreachable(exc))

    async def _send(self, n: Notification, incident: Incident) -> Delivery:
        sys_id = n.ref
        if sys_id is None and (n.event != "opened" or n.attempt > 1):
            found = await self._find(str(incident["id"]))
            if isinstance(found, Retry | Failed):
                return found
            sys_id = found
        if sys_id is None:
            created = await self._create(n, incident)
            if not isinstance(created, str):
                return created
            sys_id = created
        if n.event == "opened":
            return Delivered(ref=sys_id)
        answer = await self._call("PATCH", f"{self.table_url}/{sys_id}", update(n, incident))
        outcome = answer.delivery()
        return Delivered(ref=sys_id) if isinstance(outcome, Delivered) else outcome

    async def _find(self, incident_id: str) -> str | Retry | Failed | None:
        query = f"correlation_id={incident_id}^correlation_display={CORRELATION_DISPLAY}"
        params = {"sysparm_query": query, "sysparm_fields": "sys_id", "sysparm_limit": "1"}
        answer = await self._call("GET", self.table_url, params=params)
        outcome = answer.delivery()
        if not isinstance(outcome, Delivered):
            return outcome
        result = answer.result()
        if not isinstance(result, list):
            return Retry(f"lookup answered without a result list: {answer.text[:200]}")
        found = [
            str(row["sys_id"]) for row in result if isinstance(row, dict) and row.get("sys_id")
        ]
        return found[0] if found else None

    async def _create(self, n: Notification, incident: Incident) -> str | Retry | Failed:
        answer = await self._call("POST", self.table_url, record(n, incident, self.extra))
        outcome = answer.delivery()
        if not isinstance(outcome, Delivered):
            return outcome
        result = answer.result()
        if not isinstance(result, dict) or not result.get("sys_id"):
            # e.g. the HTML page of a hibernating instance, answered with 200
            return Retry(f"create answered without a sys_id: {answer.text[:200]}")
        return str(result["sys_id"])

    async def _call(
        self,
        method: str,
        url: str,
        body: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        async with self.env.http().request(
            method,
            url,
            params=params,
            data=None if body is None else orjson.dumps(body),
            headers=self.headers if body is None else self.headers | JSON_BODY,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=self.env.timeout_s),
        ) as resp:
            text = await resp.text(errors="replace")
            return Answer(resp.status, text, resp.headers.get("Retry-After"))


def record(n: Notification, incident: Incident, extra: dict[str, str]) -> dict[str, str]:
    """The new incident record: title, text, impact and urgency, and the correlation."""
    title = " ".join(str(incident.get("title") or incident["id"]).split())
    if len(title) > SHORT_DESCRIPTION_MAX:
        title = title[: SHORT_DESCRIPTION_MAX - 1] + "…"
    body = {
        "short_description": title,
        "description": description(n, incident),
        "correlation_id": str(incident["id"]),
        "correlation_display": CORRELATION_DISPLAY,
    }
    for key in ("impact", "urgency"):
        if (level := LEVELS.get(str(incident.get(key)))) is not None:
            body[key] = level
    return body | extra


def description(n: Notification, incident: Incident) -> str:
    facts = [f"itsmd incident {incident['id']}"]
    facts += [f"{key} {incident[key]}" for key in ("priority", "service") if incident.get(key)]
    lines = [str(incident.get("description") or "").strip(), ", ".join(facts), n.link]
    return "\n\n".join(line for line in lines if line)


def update(n: Notification, incident: Incident) -> dict[str, str]:
    """The PATCH body for every event after `opened`."""
    note = work_note(n, incident)
    if n.event == "resolved":
        return {"state": RESOLVED, "close_code": "Solved (Permanently)", "close_notes": note}
    if n.event in ("acknowledged", "reopened"):
        return {"state": IN_PROGRESS, "work_notes": note}
    return {"work_notes": note}


def work_note(n: Notification, incident: Incident) -> str:
    who = incident.get("assignee")
    what = {
        "acknowledged": f"acknowledged by {who}" if who else "acknowledged",
        "resolved": "resolved",
        "reopened": "reopened",
        "assigned": f"assigned to {who}" if who else "unassigned",
        "commented": "has a new comment",
        "sla_breached": "breached its SLA",
    }.get(n.event, n.event.replace("_", " "))
    line = f"itsmd: {incident['id']} {what} at {rfc3339(n.at)}."
    return f"{line}\n{n.link}" if n.link else line


def unreachable(exc: aiohttp.ClientError) -> str:
    """Why a request failed: aiohttp's connection errors name host and port only."""
    if isinstance(exc, aiohttp.ClientConnectionError) and str(exc):
        return str(exc)
    return f"request failed: {type(exc).__name__}"


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


KIND = SinkKind(
    kind="servicenow",
    build=build,
    doc="ServiceNow Table API: one incident record per incident, updated on every event",
)
