"""Recurrence: whether a new incident joins an open problem, opens one, or neither.

Pure: the caller (the store, or the rule simulation) looks up the open problem of
the incident's recurrence key and the recent incidents of that key no problem
links yet, and carries out the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from itsmd.correlation.rules import ProblemRule
from itsmd.durations import format_duration
from itsmd.models import Incident, StoredAlert


@dataclass(frozen=True, slots=True)
class OpenProblem:
    """The unresolved problem of a key, as the caller found it."""

    id: int
    workaround: str | None = None  # set once the problem is a known error


@dataclass(frozen=True, slots=True)
class JoinProblem:
    problem_id: int
    why: str
    workaround: str | None  # the known error's, for an incident without one of its own


@dataclass(frozen=True, slots=True)
class OpenNewProblem:
    incident_ids: tuple[int, ...]  # every recent incident of the key, the new one too
    title: str
    why: str


def recurrence(
    rule: ProblemRule,
    inc: Incident,
    open_problem: OpenProblem | None,
    recent: Sequence[int],
    opener: StoredAlert | None,
) -> JoinProblem | OpenNewProblem | None:
    """`recent`: the key's incidents no problem links, opened within the rule's span
    (`rule.within` before now), the new incident included; `opener`: the alert that
    opened the new incident, for the problem's title."""
    if open_problem is not None:
        workaround = open_problem.workaround if not inc.known_error else None
        why = f"another incident of key {inc.problem_key}"
        return JoinProblem(open_problem.id, why, workaround)
    if not rule.recurs(len(recent)):
        return None
    labels = opener.labels if opener is not None else inc.labels
    title = rule.title_for(labels, opener.annotations if opener is not None else {})
    span = format_duration(rule.within)
    why = f"{len(recent)} incidents of key {inc.problem_key} within {span} (rule {rule.name})"
    return OpenNewProblem(tuple(recent), title, why)
