"""Jira sink: one issue per itsmd incident, through the REST API v2.

Follows the documented v2 API that both Jira Cloud and Server/Data Center serve,
with Basic auth `user:token` (a Cloud account's email and API token; on Server
and Data Center a user's password, as their personal access tokens need Bearer).
`POST /rest/api/2/issue` answers 201 `{"id", "key", "self"}`,
`POST /rest/api/2/issue/{key}/comment` takes `{"body"}` (wiki text), and
`GET`/`POST /rest/api/2/issue/{key}/transitions` list and apply workflow moves.

`opened` creates the issue; every later event is a comment on the issue whose key
the outbox kept as `ref`; `resolved` also applies the transition named
`resolve_transition`. Without a ref (the route began after the incident opened)
the issue is created first, from the incident as it is now: issue search is not
used, because Cloud and Server differ there and Cloud's index lags. Hence two
known duplicates, both preferred to a lost update: a create whose answer was lost
is retried as a second issue, and a `resolved` whose transition failed after the
comment went in posts that comment again on retry. Problem events are not sent.

Descriptions and comments are wiki markup, which Jira renders: text taken from the
incident (its description, which rules fill from alert annotations, service, rule,
assignee...) goes through `wiki_text`, so that a link `[text|http://...]`, an image
`!http://...!`, a mention `[~user]`, a macro `{noformat}`... in it shows as the
characters it is, as Slack's mrkdwn is escaped by the slack sink. The summary is
plain text in Jira (never rendered) and goes as it is.
"""

from __future__ import annotations

import re
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

SUMMARY_MAX: Final = 255  # Jira refuses longer summaries
LABEL: Final = "itsmd"
PRIORITIES: Final = ("P1", "P2", "P3", "P4", "P5")

# What Jira's renderer un-escapes after a backslash (its BackslashEscapeRendererComponent):
# the characters of links, images, mentions, macros, tables, lists, text effects and
# emoticons. A backslash itself cannot be escaped (two make a line break), so it goes as
# an HTML entity, as does `&` so that an entity in the text shows as typed.
WIKI_SPECIAL: Final = "-#*_+?^~|%{}[]()!@"
_WIKI_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "\\": "&#92;", **{c: "\\" + c for c in WIKI_SPECIAL}}
)
# A bare URL is left whole, for Jira to link as written (escapes would cut it): it
# stops before any character that could open or close markup around it.
_BARE_URL: Final = re.compile(r"https?://[^\s\[\]{}|!\\<>\"]+")
# Line starts that make a heading or a quote, which no backslash escapes.
_BLOCK_START: Final = re.compile(r"^([ \t]*)(h[1-6]|bq)(?=\.)", re.M)


def build(options: SinkOptions, env: SinkEnv) -> JiraSink:
    url = options.api_url("url")
    project = options.text("project")
    authorization = options.basic_auth("user", "token")
    issue_type = options.text("issue_type", "Task")
    resolve_transition = options.text("resolve_transition", "Done")
    labels = options.texts("labels") if "labels" in options.values else []
    if any(len(label.split()) != 1 for label in labels):
        options.fail("labels", f"Jira labels have no spaces, got {labels!r}")
    priority_map = options.mapping("priority_map")
    if unknown := sorted(set(priority_map) - set(PRIORITIES)):
        options.fail("priority_map", f"keys are priorities P1..P5, got {unknown!r}")
    options.done()
    return JiraSink(
        api=f"{url}/rest/api/2",
        headers={"Accept": "application/json", "Authorization": authorization},
        project=project,
        issue_type=issue_type,
        resolve_transition=resolve_transition,
        labels=[*dict.fromkeys([*labels, LABEL])],
        priority_map=priority_map,
        env=env,
    )


@dataclass(frozen=True, slots=True)
class JiraSink:
    api: str  # {url}/rest/api/2
    headers: dict[str, str] = field(repr=False)  # Accept and Authorization (a secret)
    project: str
    issue_type: str
    resolve_transition: str
    labels: list[str]  # the configured ones and "itsmd"
    priority_map: dict[str, str]  # itsmd priority -> Jira priority name
    env: SinkEnv

    async def send(self, notification: Notification) -> Delivery:
        incident = notification.incident
        if incident is None:
            return Delivered(detail="not sent: Jira gets incident events only")
        return await guard_transport(self.env, self._send(notification, incident), "Jira")

    async def _send(self, n: Notification, incident: Incident) -> Delivery:
        key = n.ref
        if key is None:
            created = await self._create(n, incident)
            if not isinstance(created, str):
                return created
            key = created
        if n.event == "opened":
            return Delivered(ref=key)
        body = {"body": event_note(n, incident, wiki_text)}
        outcome = (await self._call("POST", f"{self.api}/issue/{key}/comment", body)).delivery()
        if not isinstance(outcome, Delivered):
            return outcome
        if n.event == "resolved":
            return await self._resolve(key)
        return Delivered(ref=key)

    async def _create(self, n: Notification, incident: Incident) -> str | Retry | Failed:
        answer = await self._call("POST", f"{self.api}/issue", {"fields": self.fields(n, incident)})
        outcome = answer.delivery()
        if not isinstance(outcome, Delivered):
            return outcome
        created = answer.json()
        if not isinstance(created, dict) or not created.get("key"):
            return Retry(f"create answered without an issue key: {answer.text[:200]}")
        return str(created["key"])

    async def _resolve(self, key: str) -> Delivery:
        """Apply the transition named `resolve_transition`; the comment is already in."""
        url = f"{self.api}/issue/{key}/transitions"
        answer = await self._call("GET", url)
        outcome = answer.delivery()
        if not isinstance(outcome, Delivered):
            return after_comment(outcome)
        listed = answer.json()
        offered = listed.get("transitions") if isinstance(listed, dict) else None
        moves = {
            str(move["name"]): str(move["id"])
            for move in offered or ()
            if isinstance(move, dict) and "name" in move and "id" in move
        }
        wanted = self.resolve_transition.casefold()
        move_id = next((i for name, i in moves.items() if name.casefold() == wanted), None)
        if move_id is None:
            available = ", ".join(moves) or "none"
            detail = f"commented; {key} offers no transition {self.resolve_transition!r}"
            return Delivered(ref=key, detail=f"{detail} (offered: {available})")
        outcome = (await self._call("POST", url, {"transition": {"id": move_id}})).delivery()
        if not isinstance(outcome, Delivered):
            return after_comment(outcome)
        return Delivered(ref=key, detail=f"commented and applied {self.resolve_transition!r}")

    def fields(self, n: Notification, incident: Incident) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "summary": one_line_title(incident, SUMMARY_MAX),
            "description": description(n, incident),
            "issuetype": {"name": self.issue_type},
            "labels": self.labels,
        }
        if (priority := self.priority_map.get(str(incident.get("priority")))) is not None:
            fields["priority"] = {"name": priority}
        return fields

    async def _call(self, method: str, url: str, body: object = None) -> HttpAnswer:
        return await http_request(self.env, method, url, body, headers=self.headers)


def after_comment(outcome: Retry | Failed) -> Retry | Failed:
    """Say that the comment went in: a retry posts it again."""
    reason = f"comment posted, transition not applied: {outcome.reason}"
    return Retry(reason, outcome.after_s) if isinstance(outcome, Retry) else Failed(reason)


def description(n: Notification, incident: Incident) -> str:
    """The description as wiki markup: every value from the incident escaped."""

    def value(key: str) -> str:
        return wiki_text(str(incident[key]))

    facts = [f"itsmd incident: {value('id')}"]
    if incident.get("priority"):
        levels = [f"{k} {value(k)}" for k in ("impact", "urgency") if incident.get(k)]
        suffix = f" ({', '.join(levels)})" if levels else ""
        facts.append(f"Priority: {value('priority')}{suffix}")
    facts += [f"{k.title()}: {value(k)}" for k in ("service", "rule") if incident.get(k)]
    text = wiki_text(str(incident.get("description") or "").strip())
    parts = [text, "\n".join(facts), n.link]
    return "\n\n".join(part for part in parts if part)


def wiki_text(text: str) -> str:
    """`text` as Jira wiki markup that renders as the same characters, inert: each
    character Jira reads as markup behind a backslash, `\\` and `&` as entities, a
    line's leading `h1.`..`h6.` or `bq.` with its letter as an entity. Bare http(s)
    URLs stay whole, so that Jira links them as written."""
    parts: list[str] = []
    end = 0
    for url in _BARE_URL.finditer(text):
        parts += [text[end : url.start()].translate(_WIKI_ESCAPES), url[0]]
        end = url.end()
    parts.append(text[end:].translate(_WIKI_ESCAPES))
    return _BLOCK_START.sub(_block_start, "".join(parts))


def _block_start(match: re.Match[str]) -> str:
    indent, word = match[1], match[2]
    return f"{indent}&#{ord(word[0])};{word[1:]}"


KIND = SinkKind(
    kind="jira",
    build=build,
    doc="Jira REST API v2: one issue per incident, a comment per event, a transition on resolve",
)
