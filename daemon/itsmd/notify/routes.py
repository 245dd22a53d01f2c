"""Notification routes: which events of which incidents go to which sinks (pure).

Routes are walked in order like Alertmanager's: the first route whose matchers
and event list both fit takes the event; `continue: true` lets the walk go on.
A route with `after` is an escalation: its deliveries wait that long and are
cancelled when the incident meets the `unless` condition first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsmd.correlation.matchers import Selector, matches_any

# Incident fields a route may match, beside the incident's group labels.
ROUTE_FIELDS = ("priority", "service", "status", "rule", "assignee")
# What cancels a waiting escalation; "acknowledged" also holds once resolved.
UNLESS = ("acknowledged", "resolved")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    match: tuple[Selector, ...]  # any of them; empty = everything
    events: frozenset[str]
    to: tuple[str, ...]  # sink names
    continue_: bool = False
    after: timedelta | None = None
    unless: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One planned outbox row."""

    route: str
    sink: str
    due_at: datetime
    unless: str | None


def route_labels(doc: Mapping[str, Any]) -> dict[str, str]:
    """The label set a route matches: the group labels, then the incident fields.

    Fields win over labels of the same name; absent fields are empty strings, as
    absent labels are in Prometheus matchers.
    """
    labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
    for name in ROUTE_FIELDS:
        value = doc.get(name)
        labels[name] = "" if value is None else str(value)
    return labels


def plan(
    routes: Sequence[Route], event: str, doc: Mapping[str, Any], at: datetime
) -> list[Delivery]:
    """The deliveries of one event about the incident or problem `doc`.

    A sink named by several matching routes gets the event once, from the first
    (an escalation to the same sink is a separate delivery: it happens later).
    """
    labels = route_labels(doc)
    planned: list[Delivery] = []
    seen: set[tuple[str, timedelta | None]] = set()
    for route in routes:
        if event not in route.events:
            continue
        if route.match and not matches_any(route.match, labels):
            continue
        due = at + route.after if route.after is not None else at
        for sink in route.to:
            if (sink, route.after) not in seen:
                seen.add((sink, route.after))
                planned.append(Delivery(route.name, sink, due, route.unless))
        if not route.continue_:
            break
    return planned


def escalation_void(unless: str | None, doc: Mapping[str, Any]) -> bool:
    """Whether a waiting escalation has lost its reason (the incident as it is now)."""
    if unless is None:
        return False
    status = doc.get("status")
    if unless == "acknowledged":
        return status in ("acknowledged", "resolved") or doc.get("acknowledged_at") is not None
    return status == "resolved"
