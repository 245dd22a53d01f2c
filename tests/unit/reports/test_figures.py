"""The review's statistics and suggestions (pure), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.checks.availability import Uptime
from itsmd.reports.figures import (
    Catalog,
    IncidentFact,
    PeriodFacts,
    RuleInfo,
    figure,
    median,
    percentile,
    review,
)
from itsmd.reports.periods import period, previous


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], None), ([5], 5), ([3, 1], 2), ([1, 9, 3], 3), ([4, 1, 3, 2], 2.5)],
)
def test_median(values: list[float], expected: float | None) -> None:
    assert median(values) == expected


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 90, None),
        ([7], 90, 7),
        (list(range(1, 11)), 90, 9),  # rank ceil(9.0) = 9
        (list(range(1, 12)), 90, 10),  # rank ceil(9.9) = 10
        ([10, 20, 30], 90, 30),  # rank ceil(2.7) = 3
        (list(range(1, 101)), 50, 50),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_a_change_needs_both_figures() -> None:
    assert figure(3, 1) == {"value": 3, "previous": 1, "change": 2}
    assert figure(None, 1)["change"] is None


def _fact(n: int, rule: str, reopened: bool) -> IncidentFact:
    opened = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=n)
    return IncidentFact(n, "api", rule, "P2", opened, None, None, None, None, reopened)


def test_suggestions_follow_the_figures() -> None:
    p = period("2026-11-01", "2026-12-01", "UTC")
    now = PeriodFacts(
        p,
        incidents=[_fact(1, "flappy", True), _fact(2, "flappy", False), _fact(3, "ok", False)],
        availability={"api": Uptime(up_s=99.0, down_s=1.0)},
    )
    catalog = Catalog(
        slos={"api": 99.9},
        rules=[
            RuleInfo("flappy", timedelta(minutes=1)),
            RuleInfo("ok", None),
            RuleInfo("idle", None),
        ],
    )
    doc = review(now, PeriodFacts(previous(p)), catalog, None, p.end)
    texts = {s["kind"]: s["text"] for s in doc["suggestions"]}
    assert texts == {
        "rule_never_matched": "Rule idle matched no alert in the period: remove it, "
        "or check its matchers.",
        "rule_reopens": "Incidents of rule flappy reopened 50% of the time: its "
        "auto_resolve hold (1m) is likely too short.",
        "below_slo": "Service api was available 99.000%, below its objective of 99.9 %.",
    }
