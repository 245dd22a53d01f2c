"""What the pages show, worked out without a page: ages, alert groups, the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.console.present import age_text, alert_view, collapse, distinguishing, span_text
from itsmd.models import (
    Action,
    AlertStatus,
    Decision,
    StoredAlert,
    TimelineEntry,
    TimelineKind,
)

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3600 + 5 * 60, "1 h 5 min"),
        (47 * 3600, "47 h"),
        (48 * 3600, "2 d"),
        (50 * 3600, "2 d 2 h"),
    ],
)
def test_span_text(seconds: int, text: str) -> None:
    assert span_text(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (T0 - timedelta(minutes=12), "12 min ago"),
        (T0 + timedelta(minutes=5), "in 5 min"),
        (T0, "now"),
    ],
)
def test_age_text(moment: datetime, text: str) -> None:
    assert age_text(moment, T0) == text


def stored(
    alert_id: int,
    labels: dict[str, str],
    *,
    status: AlertStatus = AlertStatus.FIRING,
    action: Action = Action.JOINED,
    starts_at: datetime = T0,
) -> StoredAlert:
    return StoredAlert(
        id=alert_id,
        fingerprint=f"{alert_id:016x}",
        starts_at=starts_at,
        status=status,
        ends_at=None,
        labels=labels,
        annotations={},
        generator_url="",
        source="alertmanager",
        first_received=starts_at,
        last_received=starts_at,
        receive_count=1,
        incident_id=1,
        decision=Decision(action, "why"),
    )


def test_labels_every_alert_shares_are_common_the_rest_tell_them_apart() -> None:
    alerts = [
        stored(1, {"alertname": "Down", "service": "db", "instance": "db-1"}),
        stored(2, {"alertname": "Down", "service": "db", "instance": "db-2", "zone": "a"}),
    ]
    assert distinguishing(alerts) == ({"alertname", "service"}, {"instance", "zone"})
    assert distinguishing(alerts[:1]) == ({"alertname", "service", "instance"}, set())


def test_alerts_are_grouped_firing_first_newest_first_with_what_differs() -> None:
    later = T0 + timedelta(minutes=5)
    alerts = [
        stored(1, {"alertname": "Down", "pod": "a"}, status=AlertStatus.RESOLVED),
        stored(2, {"alertname": "Down", "pod": "b"}),
        stored(3, {"alertname": "Down", "pod": "c"}, starts_at=later),
        stored(4, {"alertname": "Slow", "pod": "d"}, action=Action.ATTACHED),
    ]
    view = alert_view(alerts)
    assert view.common == ()  # alertname differs (Slow), so does pod
    assert [(g.key, [r.alert.id for r in g.rows]) for g in view.groups] == [
        ("firing", [3, 2]),
        ("resolved", [1]),
        ("symptom", [4]),
    ]
    assert view.groups[0].rows[0].labels == (("alertname", "Down"), ("pod", "c"))
    assert [g.total for g in view.groups] == [2, 1, 1]


def test_a_large_group_shows_its_newest_alerts_and_counts_them_all() -> None:
    alerts = [
        stored(n, {"alertname": "Down", "pod": f"p-{n}"}, starts_at=T0 + timedelta(seconds=n))
        for n in range(1, 8)
    ]
    (firing,) = alert_view(alerts, shown=3).groups
    assert ([r.alert.id for r in firing.rows], firing.total) == ([7, 6, 5], 7)
    assert len(alert_view(alerts, shown=None).groups[0].rows) == 7


def entry(minute: int, kind: TimelineKind, message: str, actor: str = "itsmd") -> TimelineEntry:
    return TimelineEntry(1, T0 + timedelta(minutes=minute), kind, message, actor)


def test_the_daemons_repeated_lines_fold_into_the_first_with_a_count() -> None:
    entries = [
        entry(0, TimelineKind.OPENED, "opened"),
        entry(1, TimelineKind.ALERT_RESOLVED, "alert X resolved"),
        entry(1, TimelineKind.HOLD_STARTED, "hold until 04:01"),
        entry(2, TimelineKind.ALERT_REFIRED, "alert X fired again"),
        entry(3, TimelineKind.ALERT_RESOLVED, "alert X resolved"),
        entry(3, TimelineKind.HOLD_STARTED, "hold until 04:03"),
        entry(4, TimelineKind.ALERT_REFIRED, "alert X fired again"),
        entry(5, TimelineKind.COMMENTED, "same", actor="alice"),
        entry(6, TimelineKind.COMMENTED, "same", actor="alice"),
    ]
    lines = collapse(entries)
    assert [(line.first.message, line.count, line.last_at.minute) for line in lines] == [
        ("opened", 1, 0),
        ("alert X resolved", 2, 3),
        ("hold until 04:01", 1, 1),
        ("alert X fired again", 2, 4),
        ("hold until 04:03", 1, 3),
        ("same", 1, 5),  # what people do is never folded
        ("same", 1, 6),
    ]


def test_a_run_of_per_alert_lines_folds_into_its_first() -> None:
    entries = [
        entry(0, TimelineKind.OPENED, "opened"),
        *(entry(1, TimelineKind.ALERT_JOINED, f"alert A{n} joined") for n in range(40)),
        entry(2, TimelineKind.PRIORITY_RAISED, "P3 -> P2"),
        *(entry(3, TimelineKind.ALERT_JOINED, f"alert B{n} joined") for n in range(3)),
        entry(4, TimelineKind.ALERT_RESOLVED, "alert A0 resolved"),
        entry(5, TimelineKind.ALERT_JOINED, "alert C joined", actor="alice"),
    ]
    lines = collapse(entries)
    assert [(ln.first.message, ln.count, ln.alerts, ln.last_at.minute) for ln in lines] == [
        ("opened", 1, False, 0),
        ("alert A0 joined", 40, True, 1),
        ("P3 -> P2", 1, False, 2),
        ("alert B0 joined", 3, True, 3),  # a run ends where another kind of line comes
        ("alert A0 resolved", 1, False, 4),
        ("alert C joined", 1, False, 5),  # not the daemon's: never folded
    ]


def test_only_placements_fold_as_a_run() -> None:
    """The alert list shows the decision that placed each alert, not why it resolved,
    fired again or was reconciled: those lines stay one each (docs/operations.md sends
    operators to the `reconciled` ones)."""
    entries = [
        *(entry(1, TimelineKind.SYMPTOM_ATTACHED, f"alert S{n} attached") for n in range(3)),
        *(entry(2, TimelineKind.ALERT_RESOLVED, f"alert A{n} resolved") for n in range(3)),
        *(entry(3, TimelineKind.RECONCILED, f"alert B{n} resolved while down") for n in range(2)),
        *(entry(4, TimelineKind.ALERT_REFIRED, f"alert A{n} fired again") for n in range(2)),
    ]
    lines = collapse(entries)
    assert [(ln.first.message, ln.count, ln.alerts) for ln in lines] == [
        ("alert S0 attached", 3, True),
        *((e.message, 1, False) for e in entries[3:]),
    ]


def test_a_repeated_placement_and_a_run_keep_their_counts_apart() -> None:
    entries = [
        entry(0, TimelineKind.ALERT_JOINED, "alert A joined"),
        entry(1, TimelineKind.PRIORITY_RAISED, "P3 -> P2"),
        entry(2, TimelineKind.ALERT_JOINED, "alert A joined"),  # a repeat of the first
        entry(3, TimelineKind.ALERT_JOINED, "alert B joined"),
        entry(4, TimelineKind.ALERT_JOINED, "alert C joined"),
        entry(5, TimelineKind.PRIORITY_RAISED, "P2 -> P1"),
        entry(6, TimelineKind.ALERT_JOINED, "alert D joined"),
        entry(7, TimelineKind.ALERT_JOINED, "alert D joined"),  # word for word, next: a run
        entry(8, TimelineKind.ALERT_JOINED, "alert E joined"),
    ]
    lines = collapse(entries)
    assert [(ln.first.message, ln.count, ln.alerts, ln.last_at.minute) for ln in lines] == [
        ("alert A joined", 2, False, 2),  # "x2": the repeat
        ("P3 -> P2", 1, False, 1),
        ("alert B joined", 2, True, 4),  # a run of its own, not more of the repeat's count
        ("P2 -> P1", 1, False, 5),
        ("alert D joined", 3, True, 8),
    ]
