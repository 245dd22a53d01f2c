"""The `pagerduty` sink: incidents as alerts through the PagerDuty Events API v2.

Follows PagerDuty's documented `POST https://events.pagerduty.com/v2/enqueue` shape:
`{routing_key, event_action, dedup_key, payload, links, client}` for `trigger`,
`{routing_key, event_action, dedup_key}` for `acknowledge` and `resolve`. The
`dedup_key` is the incident id ("INC-42"), so every event of one incident lands on
one PagerDuty alert. Priority maps to severity: P1 critical, P2 error, P3 warning,
P4 and P5 info.

`opened` and `reopened` trigger. `sla_breached` triggers again with the same
`dedup_key` and the summary prefixed "SLA breached:": while the alert is open
PagerDuty folds it into that alert's log (no new page), and if someone resolved it in
PagerDuty while the incident is still unresolved here, it pages again, which is what
a breached SLA calls for. `assigned`, `commented` and the problem events have no
PagerDuty counterpart: they are acknowledged as delivered without a request.

PagerDuty answers 202 `{"status": "success", "dedup_key": ...}`; 400 (an invalid
event) is permanent, 429 and 5xx are worth a retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from itsmd.notify.connector import (
    Delivered,
    Delivery,
    Notification,
    SinkEnv,
    SinkKind,
    SinkOptions,
    http_post,
    is_http_url,
    rfc3339,
)

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024  # PagerDuty's limit for payload.summary
SEVERITIES = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}
ACTIONS = {
    "opened": "trigger",
    "reopened": "trigger",
    "sla_breached": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
NOT_SENT = Delivered(detail="not sent: PagerDuty has no such event")


def build(options: SinkOptions, env: SinkEnv) -> PagerDutySink:
    routing_key = options.secret("routing_key")
    url = options.text("url", DEFAULT_URL)
    if url and not is_http_url(url):
        options.fail("url", f"expected an http:// or https:// URL, got {url!r}")
    options.done()
    return PagerDutySink(routing_key or "", url, env)


@dataclass(frozen=True, slots=True)
class PagerDutySink:
    routing_key: str = field(repr=False)  # the credential: kept out of logs
    url: str
    env: SinkEnv

    async def send(self, notification: Notification) -> Delivery:
        event = event_body(notification, self.routing_key)
        if event is None:
            return NOT_SENT
        delivery = await http_post(self.env, self.url, event, peer="PagerDuty")
        return Delivered(ref=event["dedup_key"]) if isinstance(delivery, Delivered) else delivery


def event_body(notification: Notification, routing_key: str) -> dict[str, Any] | None:
    """The Events API v2 event for a notification, or None when PagerDuty has none."""
    action = ACTIONS.get(notification.event)
    incident = notification.incident
    if action is None or incident is None:
        return None
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notification.subject_id,
    }
    if action == "trigger":
        event["payload"] = _payload(notification, incident)
        if notification.link:
            event["links"] = [{"href": notification.link, "text": f"{incident['id']} in itsmd"}]
        event["client"] = "itsmd"
    return event


def _payload(notification: Notification, incident: Mapping[str, Any]) -> dict[str, Any]:
    summary = str(incident.get("title") or incident["id"])
    if notification.event == "sla_breached":
        summary = f"SLA breached: {summary}"
    service, rule, priority = (
        incident.get("service"),
        incident.get("rule"),
        incident.get("priority"),
    )
    payload: dict[str, Any] = {
        "summary": summary[:SUMMARY_MAX],
        "source": service or "itsmd",
        "severity": SEVERITIES.get(str(priority), "info"),
        "timestamp": rfc3339(notification.at),
        "class": priority,
        "custom_details": {
            "incident": incident["id"],
            "status": incident.get("status"),
            "priority": priority,
            "labels": incident.get("labels"),
            "description": incident.get("description"),
            "known_error": incident.get("known_error"),
        },
    }
    if service:
        payload["component"] = service
    if rule:
        payload["group"] = rule
    return payload


KIND = SinkKind(
    kind="pagerduty",
    build=build,
    doc="trigger, acknowledge and resolve PagerDuty alerts through the Events API v2",
)
