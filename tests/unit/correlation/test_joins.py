"""correlation/joins.py: the placements alert rows hold, and their places in a timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from itsmd.correlation.correlate import WorkingSet
from itsmd.correlation.joins import implicit_entry, in_order, kind_of, places
from itsmd.models import (
    Action,
    AlertStatus,
    Decision,
    StoredAlert,
    TimelineEntry,
    TimelineKind,
    evolve,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
K = TimelineKind


def e(
    kind: TimelineKind, alert: int | None = None, placed_after: int | None = None
) -> TimelineEntry:
    return TimelineEntry(1, T0, kind, f"{kind} {alert}", alert_id=alert, placed_after=placed_after)


def placed(alert_id: int, after: int | None, name: str | None = "Down") -> StoredAlert:
    return StoredAlert(
        id=alert_id,
        fingerprint=f"{alert_id:016x}",
        starts_at=T0,
        status=AlertStatus.FIRING,
        ends_at=None,
        labels={} if name is None else {"alertname": name},
        annotations={},
        generator_url="",
        source="alertmanager",
        first_received=T0,
        last_received=T0,
        receive_count=1,
        incident_id=1,
        decision=Decision(Action.JOINED, "matched rule r", "r", "k"),
        placed_after=after,
    )


def test_implicit_placements_go_right_after_the_row_written_before_them() -> None:
    rows = [(10, e(K.OPENED)), (12, e(K.PRIORITY_RAISED, 2)), (15, e(K.ALERT_RESOLVED, 1))]
    alerts = [placed(2, 10), placed(1, 10), placed(3, 12), placed(9, None)]
    shown = in_order(rows, alerts)
    assert [(x.kind, x.alert_id) for x in shown] == [
        (K.OPENED, None),
        (K.ALERT_JOINED, 1),  # after row 10, by alert id: the order they were placed
        (K.ALERT_JOINED, 2),
        (K.PRIORITY_RAISED, 2),
        (K.ALERT_JOINED, 3),
        (K.ALERT_RESOLVED, 1),
    ]  # alert 9's placement has a row of its own: nothing derived for it


def test_a_placement_written_out_later_keeps_its_place() -> None:
    rows = [(10, e(K.OPENED)), (12, e(K.KNOWN_ERROR, 5)), (40, e(K.ALERT_JOINED, 5, 10))]
    assert [x.kind for x in in_order(rows, [])] == [K.OPENED, K.ALERT_JOINED, K.KNOWN_ERROR]


def test_places_are_the_rows_written_before_each_implicit_entry() -> None:
    made = [e(K.OPENED), e(K.ALERT_JOINED, 1), e(K.ALERT_JOINED, 2), e(K.PRIORITY_RAISED, 2)]
    made += [e(K.ALERT_JOINED, 3)]
    assert places(made, {1, 2, 4}, [21, 22], before=20) == {1: 21, 2: 21, 4: 22}
    assert places(made[1:3], {0, 1}, [], before=20) == {0: 20, 1: 20}


def test_the_derived_entry_says_what_a_written_one_said() -> None:
    entry = implicit_entry(placed(7, 3))
    assert entry == TimelineEntry(
        1, T0, K.ALERT_JOINED, "alert Down (0000000000000007): matched rule r", "itsmd", 7, "r"
    )
    assert implicit_entry(placed(7, 3, name=None)).message.startswith("alert 0000000000000007 (")
    assert kind_of(Action.ATTACHED) is K.SYMPTOM_ATTACHED
    assert kind_of(Action.REOPENED) is K.ALERT_JOINED


def test_an_implicit_placement_is_built_when_read_or_superseded() -> None:
    """The working set builds no entry for a placement the alert row holds; reading its
    timeline builds it from the row, and a new decision in the same batch builds it
    with the decision it had, to be written as a row."""
    ws = WorkingSet()
    first, second = placed(-1, None), placed(-2, None)
    ws.made.append(e(K.OPENED))
    for row in (first, second):
        ws.put_alert(row)
        ws.place(row, K.ALERT_JOINED, T0, implicit=True)
    assert ws.made[1:] == [None, None]
    assert ws.timeline == [e(K.OPENED), implicit_entry(first), implicit_entry(second)]
    assert ws.timeline[1].message == "alert Down (-000000000000001): matched rule r"

    ws.put_alert(evolve(first, decision=Decision(Action.REOPENED, "reopened", "r", "k")))
    assert ws.made[1] == implicit_entry(first)  # its own decision, not the new one
    assert ws.implicit == {second.identity: 2}
    assert ws.timeline == [e(K.OPENED), implicit_entry(first), implicit_entry(second)]
