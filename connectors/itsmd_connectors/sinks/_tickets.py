"""What the ticket sinks (`servicenow`, `jira`) write alike: a title, an event note.

Not a sink kind: a private helper module of this package, with no `KIND`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from itsmd.notify.connector import Notification, rfc3339

Incident = Mapping[str, Any]  # the Incident JSON of the API (docs/api.md)


def one_line_title(incident: Incident, limit: int) -> str:
    """The title on one line (the incident id when it has none), cut to `limit`."""
    title = " ".join(str(incident.get("title") or incident["id"]).split())
    return title if len(title) <= limit else title[: limit - 1] + "…"


def event_note(n: Notification, incident: Incident, escape: Callable[[str], str] = str) -> str:
    """`itsmd: INC-42 acknowledged by alice at 2026-03-01T12:05:30Z.`, then the link;
    `escape` is applied to the values taken from the incident (the id, the assignee)."""
    who = escape(str(incident["assignee"])) if incident.get("assignee") else None
    what = {
        "acknowledged": f"acknowledged by {who}" if who else "acknowledged",
        "resolved": "resolved",
        "reopened": "reopened",
        "assigned": f"assigned to {who}" if who else "unassigned",
        "commented": "has a new comment",
        "sla_breached": "breached its SLA",
    }.get(n.event, n.event.replace("_", " "))
    line = f"itsmd: {escape(str(incident['id']))} {what} at {rfc3339(n.at, fraction=False)}."
    return f"{line}\n{n.link}" if n.link else line
