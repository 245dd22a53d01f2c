"""ITIL priority: impact x urgency, and urgency derived from alert severity."""

from __future__ import annotations

from itsmd.models import Level, Priority

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW

MATRIX: dict[tuple[Level, Level], Priority] = {
    (H, H): Priority.P1,
    (H, M): Priority.P2,
    (M, H): Priority.P2,
    (H, L): Priority.P3,
    (M, M): Priority.P3,
    (L, H): Priority.P3,
    (M, L): Priority.P4,
    (L, M): Priority.P4,
    (L, L): Priority.P5,
}

_SEVERITY_URGENCY = {"critical": H, "warning": M}


def priority_of(impact: Level, urgency: Level) -> Priority:
    return MATRIX[(impact, urgency)]


def more_urgent(a: Level, b: Level) -> bool:
    """Whether level `a` (an urgency or an impact) is above `b`."""
    return _RANK[a] > _RANK[b]


_RANK = {L: 0, M: 1, H: 2}


def urgency_from_severity(severity: str | None) -> Level:
    """critical -> high, warning -> medium, anything else (or none) -> low."""
    return _SEVERITY_URGENCY.get((severity or "").lower(), L)
