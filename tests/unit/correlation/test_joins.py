"""correlation/joins.py: the placements alert rows hold, and where they go in a timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.correlation.joins import implicit_entry, in_order, kind_of
from itsmd.models import Action, AlertStatus, Decision, StoredAlert, TimelineEntry, TimelineKind

T0 = datetime(2026, 3, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
K = TimelineKind


def e(kind: TimelineKind, at: datetime = T0, alert: int | None = None) -> TimelineEntry:
    return TimelineEntry(1, at, kind, f"{kind} {alert}", alert_id=alert)


def join(alert: int, at: datetime = T0) -> TimelineEntry:
    return e(K.ALERT_JOINED, at, alert)


@pytest.mark.parametrize(
    ("stored", "implicit", "expected"),
    [
        # The opening, then the opener's placement, then what it caused.
        (
            [e(K.OPENED), e(K.PRIORITY_RAISED, alert=2)],
            [join(2), join(1)],
            [e(K.OPENED), join(1), join(2), e(K.PRIORITY_RAISED, alert=2)],
        ),
        # A later moment comes later; a placement with nothing after it comes last.
        (
            [e(K.OPENED), e(K.ALERT_RESOLVED, T1, 1)],
            [join(1), join(3, T1)],
            [e(K.OPENED), join(1), e(K.ALERT_RESOLVED, T1, 1), join(3, T1)],
        ),
        # The entries of alerts stored before it come first, what names no alert
        # and did not make room for it after.
        (
            [e(K.HOLD_CANCELLED), e(K.ALERT_REFIRED, alert=1), e(K.PROBLEM_LINKED)],
            [join(4)],
            [e(K.HOLD_CANCELLED), e(K.ALERT_REFIRED, alert=1), join(4), e(K.PROBLEM_LINKED)],
        ),
        # A placement written out later (a stored row) goes where it was made.
        (
            [e(K.OPENED), e(K.KNOWN_ERROR, alert=5), e(K.ALERT_RESOLVED, T1, 5), join(5)],
            [],
            [e(K.OPENED), join(5), e(K.KNOWN_ERROR, alert=5), e(K.ALERT_RESOLVED, T1, 5)],
        ),
        # A refire keeps the order it was written in.
        (
            [e(K.ALERT_RESOLVED, alert=1), e(K.ALERT_REFIRED, alert=1)],
            [],
            [e(K.ALERT_RESOLVED, alert=1), e(K.ALERT_REFIRED, alert=1)],
        ),
    ],
)
def test_placements_go_where_they_were_made(
    stored: list[TimelineEntry], implicit: list[TimelineEntry], expected: list[TimelineEntry]
) -> None:
    assert in_order(stored, implicit) == expected


def test_the_implicit_entry_says_what_the_stored_one_did() -> None:
    decision = Decision(Action.ATTACHED, "attached as a symptom of INC-1", "svc", "k")
    alert = StoredAlert(
        id=7,
        fingerprint="0123456789abcdef",
        starts_at=T0,
        status=AlertStatus.FIRING,
        ends_at=None,
        labels={"service": "checkout"},  # no alertname: the fingerprint names it
        annotations={},
        generator_url="",
        source="alertmanager",
        first_received=T1,
        last_received=T1,
        receive_count=1,
        incident_id=3,
        decision=decision,
    )
    assert implicit_entry(alert) == TimelineEntry(
        3,
        T1,
        K.SYMPTOM_ATTACHED,
        "alert 0123456789abcdef (0123456789abcdef): attached as a symptom of INC-1",
        alert_id=7,
        rule="svc",
    )
    assert kind_of(Action.REOPENED) is K.ALERT_JOINED
