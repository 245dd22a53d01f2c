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

from dataclasses import dataclass, field
from typing import Any, Final

from itsmd.notify.connector import (
    Delivered,
    Delivery,
    Failed,
    HttpAnswer,
    Notification,
    Retry,
    SinkEnv,
    SinkKind,
    SinkOptions,
    guard_transport,
    http_request,
)
from itsmd_connectors.sinks._tickets import Incident, event_note, one_line_title

SHORT_DESCRIPTION_MAX: Final = 160  # the column length of a stock instance
CORRELATION_DISPLAY: Final = "itsmd"
LEVELS: Final = {"high": "1", "medium": "2", "low": "3"}  # impact and urgency
IN_PROGRESS, RESOLVED = "2", "6"


def build(options: SinkOptions, env: SinkEnv) -> ServiceNowSink:
    instance_url = options.api_url("instance_url")
    authorization = options.basic_auth("user", "password")
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
        headers={"Accept": "application/json", "Authorization": authorization},
        extra=extra,
        env=env,
    )


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
        return await guard_transport(self.env, self._send(notification, incident), "ServiceNow")

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
        result = result_of(answer)
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
        result = result_of(answer)
        if not isinstance(result, dict) or not result.get("sys_id"):
            # e.g. the HTML page of a hibernating instance, answered with 200
            return Retry(f"create answered without a sys_id: {answer.text[:200]}")
        return str(result["sys_id"])

    async def _call(
        self, method: str, url: str, body: object = None, params: dict[str, str] | None = None
    ) -> HttpAnswer:
        return await http_request(self.env, method, url, body, headers=self.headers, params=params)


def result_of(answer: HttpAnswer) -> Any:
    """The `result` member of a JSON answer, None when the body is not one."""
    body = answer.json()
    return body.get("result") if isinstance(body, dict) else None


def record(n: Notification, incident: Incident, extra: dict[str, str]) -> dict[str, str]:
    """The new incident record: title, text, impact and urgency, and the correlation."""
    body = {
        "short_description": one_line_title(incident, SHORT_DESCRIPTION_MAX),
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
    note = event_note(n, incident)
    if n.event == "resolved":
        return {"state": RESOLVED, "close_code": "Solved (Permanently)", "close_notes": note}
    if n.event in ("acknowledged", "reopened"):
        return {"state": IN_PROGRESS, "work_notes": note}
    return {"work_notes": note}


KIND = SinkKind(
    kind="servicenow",
    build=build,
    doc="ServiceNow Table API: one incident record per incident, updated on every event",
)
