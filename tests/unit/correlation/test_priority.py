"""Tests for itsmd.correlation.priority: the ITIL impact x urgency matrix (docs/rules.md)."""

from __future__ import annotations

import itertools

import pytest

from itsmd.correlation.priority import MATRIX, priority_of, urgency_from_severity
from itsmd.models import Level, Priority

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW

# docs/rules.md, verbatim: high/high P1; high/medium and medium/high P2; high/low,
# medium/medium, low/high P3; medium/low and low/medium P4; low/low P5.
ITIL = [
    (H, H, Priority.P1),
    (H, M, Priority.P2),
    (M, H, Priority.P2),
    (H, L, Priority.P3),
    (M, M, Priority.P3),
    (L, H, Priority.P3),
    (M, L, Priority.P4),
    (L, M, Priority.P4),
    (L, L, Priority.P5),
]


@pytest.mark.parametrize(
    ("impact", "urgency", "expected"), ITIL, ids=[f"{i}-{u}" for i, u, _ in ITIL]
)
def test_itil_matrix(impact: Level, urgency: Level, expected: Priority) -> None:
    assert priority_of(impact, urgency) is expected


def test_matrix_covers_every_combination_exactly() -> None:
    assert set(MATRIX) == set(itertools.product(Level, Level))
    assert len(ITIL) == len(MATRIX)


def test_matrix_is_symmetric_in_impact_and_urgency() -> None:
    for impact, urgency in itertools.product(Level, Level):
        assert priority_of(impact, urgency) is priority_of(urgency, impact)


def test_priority_never_improves_when_impact_or_urgency_rises() -> None:
    order = [L, M, H]
    for impact, urgency in itertools.product(range(3), range(2)):
        lower = priority_of(order[impact], order[urgency])
        higher = priority_of(order[impact], order[urgency + 1])
        assert higher < lower  # "P1" < "P2": a smaller string is a more urgent priority


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", H),
        ("CRITICAL", H),
        ("Critical", H),
        ("warning", M),
        ("Warning", M),
        ("info", L),
        ("none", L),
        ("page", L),
        ("crit", L),
        ("", L),
        (None, L),
    ],
)
def test_urgency_from_severity(severity: str | None, expected: Level) -> None:
    assert urgency_from_severity(severity) is expected
