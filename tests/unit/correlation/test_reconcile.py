"""Reconciliation decisions over plain data, with an explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.reconcile import Answer, Firing, Reconciler
from itsmd.models import Alert, AlertStatus, HeldAlert

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
MIN = timedelta(minutes=1)
AM1, AM2 = "http://am-1:9093", "http://am-2:9093"


def labels(name: str) -> dict[str, str]:
    return {"alertname": name, "service": "api"}


def firing(name: str, start: datetime = T0) -> Firing:
    return Firing(fingerprint(labels(name)), start)


def held(
    name: str, start: datetime = T0, state: str = "active", receivers: tuple[str, ...] = ("itsmd",)
) -> HeldAlert:
    alert = Alert(
        fingerprint(labels(name)),
        AlertStatus.FIRING,
        labels(name),
        {},
        start,
        None,
        "",
        "alertmanager",
        {"startsAt": "..."},
    )
    return HeldAlert(alert, state, receivers)


def test_an_alert_no_alertmanager_holds_is_resolved_once_grace_has_passed() -> None:
    r = Reconciler(GRACE)
    stored = [firing("Down"), firing("Slow")]
    answers = [Answer(AM1, (held("Slow"),)), Answer(AM2, ())]

    first = r.plan(stored, {}, answers, T0 + MIN)
    assert (first.complete, first.resolve, first.missing) == (True, (), 1)
    assert r.plan(stored, {}, answers, T0 + MIN + GRACE - timedelta(seconds=1)).resolve == ()

    due = r.plan(stored, {}, answers, T0 + MIN + GRACE)
    assert [x.firing for x in due.resolve] == [firing("Down")]
    assert due.resolve[0].since == T0 + MIN  # the first round that found it missing
    assert AM1 in due.resolve[0].why
    assert AM2 in due.resolve[0].why
    assert "since 2026-12-01T12:01:00Z (grace 5m)" in due.resolve[0].why
    assert due.missing == 0
    assert r.missing_since == {}


def test_an_alert_any_alertmanager_holds_in_any_state_is_present() -> None:
    r = Reconciler(GRACE)
    stored = [firing("Down"), firing("Muted"), firing("New")]
    answers = [
        Answer(AM1, (held("Down"), held("Muted", state="suppressed"))),
        Answer(AM2, (held("New", state="unprocessed"),)),
    ]
    for minutes in (0, 10, 20):
        plan = r.plan(stored, {}, answers, T0 + minutes * MIN)
        assert (plan.resolve, plan.missing) == ((), 0)


def test_an_unreachable_alertmanager_proves_no_absence() -> None:
    r = Reconciler(GRACE)
    stored = [firing("Down"), firing("Held")]
    down = [Answer(AM1, (held("Held"),)), Answer(AM2, error="connection refused")]

    plan = r.plan(stored, {}, down, T0)
    assert (plan.complete, plan.resolve, plan.missing) == (False, (), 0)
    assert r.missing_since == {}  # no clock starts in an incomplete round

    up = [Answer(AM1, (held("Held"),)), Answer(AM2, ())]
    r.plan(stored, {}, up, T0 + MIN)  # the clock starts here
    plan = r.plan(stored, {}, down, T0 + MIN + GRACE)
    assert plan.resolve == ()  # a running clock keeps running, but proves nothing now
    assert [x.firing for x in r.plan(stored, {}, up, T0 + 2 * MIN + GRACE).resolve] == [
        firing("Down")
    ]


def test_an_alert_that_comes_back_stops_its_clock() -> None:
    r = Reconciler(GRACE)
    stored = [firing("Flap")]
    r.plan(stored, {}, [Answer(AM1, ())], T0)
    r.plan(stored, {}, [Answer(AM1, (held("Flap"),))], T0 + MIN)
    assert r.plan(stored, {}, [Answer(AM1, ())], T0 + GRACE).resolve == ()  # clock restarted
    assert r.plan(stored, {}, [Answer(AM1, ())], T0 + 2 * GRACE).resolve != ()


def test_clocks_of_alerts_resolved_meanwhile_are_dropped() -> None:
    r = Reconciler(GRACE)
    r.plan([firing("Down")], {}, [Answer(AM1, ())], T0)
    assert r.missing_since
    r.plan([], {}, [Answer(AM1, ())], T0 + MIN)
    assert r.missing_since == {}


def test_an_active_alert_never_stored_is_ingested_after_grace() -> None:
    r = Reconciler(GRACE)
    answers = [Answer(AM1, (held("Lost"),)), Answer(AM2, (held("Lost"),))]
    assert r.candidates([], answers) == {fingerprint(labels("Lost"))}

    first = r.plan([], {}, answers, T0)
    assert (first.ingest, first.unseen) == ((), 1)
    due = r.plan([], {}, answers, T0 + GRACE)
    assert [i.alert.labels["alertname"] for i in due.ingest] == ["Lost"]
    assert f"held as active by {AM1}, {AM2}" in due.ingest[0].why


def test_only_active_alerts_routed_to_the_receiver_are_ingested() -> None:
    r = Reconciler(GRACE, receiver="itsmd")
    answers = [
        Answer(
            AM1,
            (
                held("Silenced", state="suppressed"),
                held("Pending", state="unprocessed"),
                held("Elsewhere", receivers=("team-b",)),
                held("Ours", receivers=("team-b", "itsmd")),
            ),
        )
    ]
    assert r.candidates([], answers) == {fingerprint(labels("Ours"))}
    r.plan([], {}, answers, T0)
    assert [i.alert.labels["alertname"] for i in r.plan([], {}, answers, T0 + GRACE).ingest] == [
        "Ours"
    ]


def test_an_episode_stored_as_resolved_is_not_ingested_again() -> None:
    """A resolve that arrived after Alertmanager's answer was read is newer news; a
    later episode of the same alert is a new one."""
    r = Reconciler(GRACE)
    fp = fingerprint(labels("Down"))
    same = [Answer(AM1, (held("Down", start=T0 + timedelta(seconds=3)),))]
    for minutes in (0, 10):
        assert r.plan([], {fp: T0}, same, T0 + minutes * MIN).ingest == ()
    later = [Answer(AM1, (held("Down", start=T0 + 30 * MIN),))]
    r.plan([], {fp: T0}, later, T0 + 30 * MIN)
    assert len(r.plan([], {fp: T0}, later, T0 + 35 * MIN).ingest) == 1


def test_an_alert_stored_as_firing_is_not_ingested_whatever_its_start() -> None:
    """Unclustered Alertmanagers stamp their own startsAt on one alert."""
    r = Reconciler(GRACE)
    answers = [Answer(AM1, (held("Down", start=T0 + timedelta(seconds=2)),))]
    assert r.candidates([firing("Down")], answers) == set()
    for minutes in (0, 10):
        assert r.plan([firing("Down")], {}, answers, T0 + minutes * MIN).ingest == ()


def test_two_starts_of_one_unseen_alert_are_ingested_once() -> None:
    r = Reconciler(GRACE)
    answers = [
        Answer(AM1, (held("Lost", start=T0),)),
        Answer(AM2, (held("Lost", start=T0 + timedelta(seconds=1)),)),
    ]
    r.plan([], {}, answers, T0)
    assert len(r.plan([], {}, answers, T0 + GRACE).ingest) == 1
