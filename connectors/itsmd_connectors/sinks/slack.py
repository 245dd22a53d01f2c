"""The `slack` sink: one message per event through a Slack incoming webhook.

Follows Slack's documented incoming-webhook shape: `POST <webhook URL>` with
`{"text": <fallback>, "blocks": [...]}` (Block Kit: a `header` block, a `section`
with `fields`, and a `section` with a `<url|text>` link when the event has one),
plus the optional `channel`, `username` and `icon_emoji` that legacy webhooks honour
and app webhooks ignore. `text` is what notifications and screen readers show, so it
reads on its own. Mrkdwn text escapes `&`, `<` and `>` as Slack asks.

Slack answers `200 ok`; its errors (400 `invalid_payload`, 403 `invalid_token`,
404 `no_service`, 410 `channel_is_archived`, ...) are permanent, 429 and 5xx are
worth a retry. The webhook URL is the credential, so it is a secret option and no
message ever shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from itsmd.notify.connector import (
    Delivery,
    Notification,
    SinkEnv,
    SinkKind,
    SinkOptions,
    http_post,
    is_http_url,
)

HEADER_MAX = 150  # Block Kit limit for a header's plain text
NONE = "—"  # a field's text may not be empty
PHRASES = {  # "INC-42 <phrase>: <title>"
    "commented": "has a new comment",
    "sla_breached": "breached its SLA",
    "problem_opened": "opened",
    "problem_resolved": "resolved",
}


def build(options: SinkOptions, env: SinkEnv) -> SlackSink:
    url = options.secret("url")
    extras = {key: options.optional_text(key) for key in ("channel", "username", "icon_emoji")}
    if url is not None and not is_http_url(url):
        options.fail("url", "expected an https:// URL (the value is not shown: it is a secret)")
    options.done()
    return SlackSink(url or "", {k: v for k, v in extras.items() if v is not None}, env)


@dataclass(frozen=True, slots=True)
class SlackSink:
    url: str = field(repr=False)  # the credential: kept out of logs and tracebacks
    extras: Mapping[str, str]  # channel, username, icon_emoji
    env: SinkEnv

    async def send(self, notification: Notification) -> Delivery:
        body = {**message(notification), **self.extras}
        return await http_post(self.env, self.url, body, peer="Slack")


def message(notification: Notification) -> dict[str, Any]:
    """The Block Kit message for one incident or problem event."""
    subject, phrase = notification.subject_id, _phrase(notification)
    incident = notification.incident
    if incident is not None:
        service = incident.get("service")
        headline = f"{incident.get('priority')} {subject} {phrase}: {_title(incident)}"
        text = _escape(headline + (f" ({service})" if service else ""))
        facts = [
            ("Priority", incident.get("priority")),
            ("Status", incident.get("status")),
            ("Service", service),
            ("Event", notification.event),
        ]
    else:
        problem = notification.problem or {}
        headline = f"Problem {subject} {phrase}: {_title(problem)}"
        text = _escape(headline)
        facts = [
            ("Status", problem.get("status")),
            ("Incidents", problem.get("incident_count")),
            ("Event", notification.event),
        ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(headline, HEADER_MAX)}},
        {"type": "section", "fields": [_field(name, value) for name, value in facts]},
    ]
    if notification.link:
        link = f"<{_link_url(notification.link)}|View {_escape(subject)} in itsmd>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    return {"text": text, "blocks": blocks}


def _title(doc: Mapping[str, Any]) -> str:
    return str(doc.get("title") or "(no title)")


def _phrase(notification: Notification) -> str:
    if notification.event == "assigned":
        assignee = (notification.incident or {}).get("assignee")
        return f"assigned to {assignee}" if assignee else "unassigned"
    return PHRASES.get(notification.event, notification.event.replace("_", " "))


def _field(name: str, value: object) -> dict[str, str]:
    shown = NONE if value is None or value == "" else _escape(str(value))
    return {"type": "mrkdwn", "text": f"*{name}*\n{shown}"}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_url(url: str) -> str:
    """A URL inside `<url|text>`: the characters that would end it, percent-encoded."""
    return url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


KIND = SinkKind(
    kind="slack",
    build=build,
    doc="post a Block Kit message per event to a Slack incoming webhook",
)
