"""Incident actions of on-call engineers, as units of work for the writer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from itsmd.correlation import lifecycle
from itsmd.models import Incident
from itsmd.runtime.writer import UnitOfWork, note_events
from itsmd.store import repo

ACTIONS = ("ack", "resolve", "reopen", "assign", "comment")


class NotFound(LookupError):
    """No such incident (HTTP 404)."""


class InvalidAction(ValueError):
    """The action's body is not valid (HTTP 422)."""


def incident_action(
    incident_id: int, action: str, actor: str, body: Mapping[str, Any]
) -> UnitOfWork[Incident]:
    """Validate the body now; load, transition and save inside the writer."""
    if action == "comment":
        text = _text(body, "text", "comment", required=True)
    else:
        text = _text(body, "note", "text", required=False)
    assignee = _text(body, "assignee", required=True) if action == "assign" else ""

    def transition(inc: Incident, now: datetime) -> lifecycle.Transition:
        if action == "ack":
            return lifecycle.acknowledge(inc, actor, now, text)
        if action == "resolve":
            return lifecycle.resolve(inc, actor, now, text)
        if action == "reopen":
            return lifecycle.reopen(inc, actor, now, f"by {actor}" + (f": {text}" if text else ""))
        if action == "assign":
            return lifecycle.assign(inc, assignee, actor, now, text)
        if action == "comment":
            return lifecycle.comment(inc, text, actor, now)
        raise InvalidAction(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")

    def work(conn: Connection, now: datetime) -> Incident:
        inc = repo.get_incident(conn, incident_id)
        if inc is None:
            raise NotFound(f"no incident INC-{incident_id}")
        new, entry, events = transition(inc, now)
        if new is not inc:
            repo.save_incident(conn, new)
        repo.add_timeline(conn, [entry])
        note_events(conn, events)
        return new

    return work


def _text(body: Mapping[str, Any], *keys: str, required: bool) -> str:
    key = next((k for k in keys if k in body), keys[0])
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidAction(f"{key}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidAction(f"{key}: required and must not be empty")
    if len(value) > 10_000:
        raise InvalidAction(f"{key}: longer than 10000 characters")
    return value.strip()
