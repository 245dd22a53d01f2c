"""The check state machine: probe results in, alert transitions out, time passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from itsmd.checks.availability import State
from itsmd.checks.spec import CheckSpec
from itsmd.checks.state import (
    CheckState,
    ProbeResult,
    SeriesValue,
    availability_change,
    beats,
    capacity_entry,
    capacity_series,
    heartbeat_due,
    observe,
    restore,
    retire,
    step,
)
from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.rules import parse_rule_sections
from itsmd.models import Alert, AlertStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
OK = ProbeResult(ok=True, duration_s=0.1)


def fail(error: str = "connection refused") -> ProbeResult:
    return ProbeResult(ok=False, duration_s=0.1, error=error)


def check(yaml: str) -> CheckSpec:
    """One check from its YAML fields (flow style, without the braces)."""
    (spec,) = parse_rule_sections(f"checks:\n  - {{name: c, {yaml}}}\n", "r.yml").checks
    return spec


TCP3 = "type: tcp, target: 'db:5432', failures_before_alert: 3, service: db, labels: {team: x}"


def run(
    spec: CheckSpec, script: Sequence[ProbeResult], state: CheckState | None = None
) -> tuple[CheckState, list[tuple[int, str, str, int]]]:
    """Probe once a minute; each alert sent as (minute, alertname, status, start minute)."""
    state = state or CheckState()
    sent = []
    for minute, result in enumerate(script):
        state, alerts = step(spec, state, result, T0 + minute * MIN)
        sent += [(minute, *summary(a)) for a in alerts]
    return state, sent


def summary(alert: Alert) -> tuple[str, str, int]:
    return alert.labels["alertname"], str(alert.status), int((alert.starts_at - T0) / MIN)


F, R = "firing", "resolved"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param([OK, OK], [], id="healthy"),
        pytest.param([fail(), fail(), OK], [], id="too-few-failures"),
        pytest.param(
            [OK, fail(), fail(), fail(), fail(), fail(), OK, OK],
            [(3, "CheckFailed", F, 1), (6, "CheckFailed", R, 1)],
            id="fires-after-three-dated-from-the-first-and-is-sent-once",
        ),
        pytest.param(
            [fail(), fail(), OK, fail(), fail(), fail()],
            [(5, "CheckFailed", F, 3)],
            id="a-success-restarts-the-count",
        ),
        pytest.param(
            [fail(), fail(), fail(), OK, fail(), fail(), fail()],
            [(2, "CheckFailed", F, 0), (3, "CheckFailed", R, 0), (6, "CheckFailed", F, 4)],
            id="a-new-episode-has-a-new-start",
        ),
    ],
)
def test_check_failed(script: list[ProbeResult], expected: list[tuple[int, str, str, int]]) -> None:
    assert run(check(TCP3), script)[1] == expected


def test_check_failed_alert_shape() -> None:
    spec = check(TCP3)
    state, _ = run(spec, [fail(), fail()])
    state, (alert,) = step(spec, state, fail("timed out"), T0 + 2 * MIN)
    assert alert.labels == {
        "alertname": "CheckFailed",
        "check": "c",
        "service": "db",
        "severity": "critical",
        "team": "x",
    }
    assert alert.fingerprint == fingerprint(alert.labels)
    assert (alert.source, alert.status, alert.ends_at) == ("check", AlertStatus.FIRING, None)
    assert alert.annotations == {
        "summary": "tcp check c failing since 2026-01-01T00:00:00Z (3 failures in a row, "
        "alerting after 3)",
        "description": "timed out",  # the error of the probe that made it fire
    }
    assert alert.raw["startsAt"] == "2026-01-01T00:00:00Z"  # an explicit episode for ingest
    assert (state.up, state.since, state.consecutive_failures) == (False, T0, 3)
    assert state.last_error == "timed out"

    state, (resolved,) = step(spec, state, OK, T0 + 5 * MIN)
    assert resolved.identity == alert.identity
    assert (resolved.status, resolved.ends_at) == (AlertStatus.RESOLVED, T0 + 5 * MIN)
    assert resolved.annotations["resolution"] == "the tcp check succeeded at 2026-01-01T00:05:00Z"
    assert (state.up, state.since, state.firing) == (True, T0 + 5 * MIN, {})


def test_up_and_availability_changes() -> None:
    spec = check(TCP3)
    states = [CheckState()]
    for minute, result in enumerate([OK, fail(), fail(), fail(), fail(), OK]):
        states.append(step(spec, states[-1], result, T0 + minute * MIN)[0])
    changes = [availability_change(a, b) for a, b in pairwise(states)]
    assert [s.up for s in states] == [None, True, True, True, False, False, True]
    assert changes == [
        (T0, State.UP),
        None,
        None,
        (T0 + MIN, State.DOWN),
        None,
        (T0 + 5 * MIN, State.UP),
    ]


HTTPS = "type: http, url: 'https://a/', tls_expiry_warning: 14d"


def cert(days: float) -> ProbeResult:
    return ProbeResult(ok=True, duration_s=0.1, cert_not_after=T0 + timedelta(days=days))


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param([cert(30), cert(30)], [], id="far-away"),
        pytest.param(
            [cert(20), cert(13), cert(13), fail(), cert(90)],
            [
                (1, "CertificateExpiring", F, 1),
                (3, "CheckFailed", F, 3),
                (4, "CertificateExpiring", R, 1),
                (4, "CheckFailed", R, 3),
            ],
            id="fires-within-the-warning-stays-through-failures-resolves-on-renewal",
        ),
        pytest.param(
            [cert(1), OK],
            [(0, "CertificateExpiring", F, 0), (1, "CertificateExpiring", R, 0)],
            id="no-cert-seen",
        ),
    ],
)
def test_certificate_expiring(
    script: list[ProbeResult], expected: list[tuple[int, str, str, int]]
) -> None:
    assert run(check(HTTPS), script)[1] == expected


def test_certificate_expiring_is_a_warning_naming_the_date() -> None:
    _, (alert,) = step(check(HTTPS), CheckState(), cert(2.5), T0)
    assert alert.labels["severity"] == "warning"
    assert alert.annotations["summary"] == (
        "certificate of https://a/ expires at 2026-01-03T12:00:00Z, in 2d12h "
        "(tls_expiry_warning 2w)"
    )
    assert alert.annotations["not_after"] == "2026-01-03T12:00:00Z"


def test_no_certificate_alert_without_tls_expiry_warning() -> None:
    assert run(check("type: http, url: 'https://a/'"), [cert(1)])[1] == []


HEARTBEAT = "type: heartbeat, match: '{alertname=\"Watchdog\"}', interval: 5m"


def test_heartbeat() -> None:
    spec = check(HEARTBEAT)
    state, alerts = heartbeat_due(spec, CheckState(), T0)  # starts the clock
    assert (state.last_seen, alerts) == (T0, [])
    state, alerts = heartbeat_due(spec, state, T0 + 5 * MIN)
    assert alerts == []  # exactly the allowed silence
    state, (missing,) = heartbeat_due(spec, state, T0 + 6 * MIN)
    assert summary(missing) == ("HeartbeatMissing", F, 5)
    assert missing.annotations["summary"] == (
        'heartbeat c: no alert matching {alertname="Watchdog"} for 6m (allowed silence 5m)'
    )
    assert (state.up, state.since) == (False, T0 + 5 * MIN)
    state, alerts = heartbeat_due(spec, state, T0 + 9 * MIN)
    assert alerts == []  # not sent again
    state, (resolved,) = observe(state, T0 + 10 * MIN)
    assert (summary(resolved), resolved.ends_at) == (("HeartbeatMissing", R, 5), T0 + 10 * MIN)
    assert (state.up, state.last_seen, state.firing) == (True, T0 + 10 * MIN, {})
    state, alerts = observe(state, T0 + 11 * MIN)
    assert alerts == []


def watchdog(source: str = "alertmanager", status: str = F, **labels: str) -> Alert:
    labels = labels or {"alertname": "Watchdog"}
    ends_at = None if status == F else T0
    return Alert("", AlertStatus(status), labels, {}, T0, ends_at, "", source)


@pytest.mark.parametrize(
    ("spec", "alert", "expected"),
    [
        (HEARTBEAT, watchdog(), True),
        (HEARTBEAT, watchdog(alertname="Watchdog", x="y"), True),
        (HEARTBEAT, watchdog(alertname="Other"), False),
        (HEARTBEAT, watchdog(status=R), False),
        ("type: heartbeat, match: '{}', interval: 1m", watchdog(source="check"), False),
        (TCP3, watchdog(), False),
    ],
)
def test_beats(spec: str, alert: Alert, expected: bool) -> None:
    assert beats(check(spec), alert) is expected


PROM = (
    "type: prometheus, query: q, service: db, labels: {team: x}, warn: {below: 0.2}, "
    "critical: {below: 0.1}, forecast: {over: 6h, horizon: 1d}"
)


def series(value: float, exhausts_in: timedelta | None = None, **labels: str) -> SeriesValue:
    at = None if exhausts_in is None else T0 + exhausts_in
    return SeriesValue(labels or {"mount": "/data"}, value, at)


def probe(*values: SeriesValue) -> ProbeResult:
    return ProbeResult(ok=True, duration_s=0.1, series=values)


def capacity_run(script: list[ProbeResult]) -> list[tuple[int, str, str, str]]:
    """Each alert as (minute, alertname, status, severity) — all run at T0's clock."""
    spec, state, sent = check(PROM), CheckState(), []
    for minute, result in enumerate(script):
        state, alerts = step(spec, state, result, T0)
        sent += [
            (minute, a.labels["alertname"], str(a.status), a.labels["severity"]) for a in alerts
        ]
    return sent


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param([probe(series(0.5))], [], id="healthy"),
        pytest.param(
            [probe(series(0.15)), probe(series(0.14)), probe(series(0.05)), probe(series(0.5))],
            [
                (0, "CapacityThreshold", F, "warning"),
                (2, "CapacityThreshold", R, "warning"),
                (2, "CapacityThreshold", F, "critical"),
                (3, "CapacityThreshold", R, "critical"),
            ],
            id="warning-then-critical-replaces-itself-then-recovers",
        ),
        pytest.param(
            [probe(series(0.15)), probe()],
            [(0, "CapacityThreshold", F, "warning"), (1, "CapacityThreshold", R, "warning")],
            id="a-series-that-disappears-resolves",
        ),
        pytest.param(
            [probe(series(0.15)), fail(), fail(), probe(series(0.15))],
            [
                (0, "CapacityThreshold", F, "warning"),
                (1, "CheckFailed", F, "warning"),
                (3, "CheckFailed", R, "warning"),
            ],
            id="a-failed-query-leaves-capacity-alerts-alone",
        ),
        pytest.param(
            [probe(series(0.15, mount="/a"), series(0.05, mount="/b"))],
            [(0, "CapacityThreshold", F, "warning"), (0, "CapacityThreshold", F, "critical")],
            id="each-series-is-its-own-alert",
        ),
        pytest.param(
            [
                probe(series(0.5, timedelta(hours=30))),
                probe(series(0.5, timedelta(hours=20))),
                probe(series(0.5, timedelta(hours=21))),
                probe(series(0.5)),
            ],
            [(1, "CapacityForecast", F, "warning"), (3, "CapacityForecast", R, "warning")],
            id="forecast-within-the-horizon-only",
        ),
        pytest.param(
            [probe(series(0.15, timedelta(hours=2))), probe(series(0.05, timedelta(0)))],
            [
                (0, "CapacityThreshold", F, "warning"),
                (0, "CapacityForecast", F, "warning"),
                (1, "CapacityThreshold", R, "warning"),
                (1, "CapacityForecast", R, "warning"),
                (1, "CapacityThreshold", F, "critical"),
            ],
            id="forecast-gives-way-once-the-target-is-reached",
        ),
    ],
)
def test_capacity(script: list[ProbeResult], expected: list[tuple[int, str, str, str]]) -> None:
    assert sorted(capacity_run(script)) == sorted(expected)


def test_capacity_alert_shape() -> None:
    spec = check(PROM)
    result = probe(
        series(
            0.15,
            timedelta(hours=3),
            mount="/data",
            __name__="m",
            alertname="Mine",
            check="other",
            severity="x",
            team="y",
        )
    )
    _, alerts = step(spec, CheckState(), result, T0)
    threshold, forecast = sorted(alerts, key=lambda a: a.labels["alertname"], reverse=True)
    base = {"check": "c", "service": "db", "team": "x", "mount": "/data"}
    assert threshold.labels == {**base, "alertname": "CapacityThreshold", "severity": "warning"}
    assert threshold.annotations == {
        "summary": "c: value 0.15 is below 0.2 (warning threshold)",
        "description": 'series {__name__="m", alertname="Mine", check="other", mount="/data", '
        'severity="x", team="y"} crossed the warning threshold below 0.2',
        "value": "0.15",
        "threshold": "below 0.2",
    }
    assert forecast.labels == {**base, "alertname": "CapacityForecast", "severity": "warning"}
    assert forecast.annotations["exhausts_at"] == "2026-01-01T03:00:00Z"
    assert forecast.annotations["threshold"] == "below 0.1"
    assert forecast.annotations["summary"].endswith(
        "will be below 0.1 by 2026-01-01T03:00:00Z (trend over 6h, within the horizon 1d)"
    )


def test_disk_alerts_name_the_path() -> None:
    spec = check("type: disk, path: /var/lib/itsmd, critical: {below: 0.05}")
    _, (alert,) = step(spec, CheckState(), probe(series(0.01, path="/var/lib/itsmd")), T0)
    assert alert.labels["severity"] == "critical"
    assert alert.annotations["description"] == (
        "free space ratio of /var/lib/itsmd crossed the critical threshold below 0.05"
    )


def test_retire_resolves_everything() -> None:
    spec = check(PROM)
    state, fired = step(spec, CheckState(), probe(series(0.05), series(0.15, mount="/b")), T0)
    resolved = retire(state, T0 + MIN)
    assert {a.identity for a in resolved} == {a.identity for a in fired}
    assert {a.status for a in resolved} == {AlertStatus.RESOLVED}
    assert {a.annotations["resolution"] for a in resolved} == {"the check was removed"}


def test_restore_continues_where_the_store_left_off() -> None:
    spec = check(TCP3)
    state, _ = run(spec, [fail(), fail(), fail()])
    restored = restore(spec, state.firing.values(), T0 + 10 * MIN)
    assert restored.firing == state.firing
    assert (restored.up, restored.failing_since, restored.consecutive_failures) == (False, T0, 3)
    still, alerts = step(spec, restored, fail(), T0 + 11 * MIN)  # one failure: not resolved
    assert alerts == []
    _, (resolved,) = step(spec, still, OK, T0 + 12 * MIN)
    assert summary(resolved) == ("CheckFailed", R, 0)


def test_restore_ignores_other_checks_and_resolved_alerts() -> None:
    spec = check(TCP3)
    state, _ = run(spec, [fail(), fail(), fail()])
    (alert,) = state.firing.values()
    other = Alert(
        alert.fingerprint, alert.status, {**alert.labels, "check": "d"}, {}, T0, None, "", "check"
    )
    done = Alert(alert.fingerprint, AlertStatus.RESOLVED, alert.labels, {}, T0, T0, "", "check")
    assert restore(spec, [other, done], T0) == CheckState()


def test_restore_a_heartbeat() -> None:
    spec = check(HEARTBEAT)
    assert restore(spec, [], T0).last_seen == T0
    state, _ = heartbeat_due(spec, CheckState(last_seen=T0), T0 + 6 * MIN)
    restored = restore(spec, state.firing.values(), T0 + 20 * MIN)
    assert (restored.last_seen, restored.up) == (T0, False)
    assert heartbeat_due(spec, restored, T0 + 21 * MIN)[1] == []


def test_a_changed_check_resolves_the_old_alert_and_fires_the_new() -> None:
    state, _ = run(check(TCP3), [fail(), fail(), fail()])
    relabelled = check(TCP3.replace("team: x", "team: y"))
    state, alerts = step(relabelled, state, fail(), T0 + 3 * MIN)
    assert [(summary(a), a.labels["team"]) for a in alerts] == [
        (("CheckFailed", R, 0), "x"),
        (("CheckFailed", F, 0), "y"),
    ]


@pytest.mark.parametrize(
    ("samples", "exhausts_at"),
    [
        pytest.param([(T0.timestamp(), 0.5)], None, id="one-sample-no-trend"),
        pytest.param(
            [(T0.timestamp() - 3600 * h, 0.5 + 0.01 * h) for h in range(6)],
            T0 + timedelta(hours=40),
            id="falling-1pct-an-hour-reaches-0.1-in-40h",
        ),
        pytest.param(
            [(T0.timestamp() - 3600 * h, 0.5 - 0.01 * h) for h in range(6)],
            None,
            id="rising",
        ),
    ],
)
def test_capacity_series(samples: list[tuple[float, float]], exhausts_at: datetime | None) -> None:
    capacity = getattr(check(PROM).probe, "capacity")  # noqa: B009
    result = capacity_series(capacity, {"mount": "/data"}, samples, T0)
    assert result.value == 0.5
    if exhausts_at is None:
        assert result.exhausts_at is None
    else:
        assert result.exhausts_at is not None
        assert abs(result.exhausts_at - exhausts_at) < timedelta(seconds=1)


def test_capacity_series_needs_samples() -> None:
    capacity = getattr(check(PROM).probe, "capacity")  # noqa: B009
    with pytest.raises(ValueError, match="at least one sample"):
        capacity_series(capacity, {}, [], T0)


# The shipped disk check (rules/50-checks.yml).
DISK = (
    "type: disk, path: /data, interval: 1m, warn: {below: 0.10}, critical: {below: 0.05}, "
    "forecast: {over: 6h, horizon: 7d}"
)


def falling(minutes: float, every_s: float = 60.0) -> list[tuple[float, float]]:
    """Free ratio losing 0.002 a minute up to 0.31 at T0, sampled every `every_s`."""
    n = int(minutes * 60 / every_s)
    return [(T0.timestamp() - every_s * i, 0.31 + 0.002 * every_s * i / 60) for i in range(n + 1)]


def test_a_minute_of_samples_makes_no_forecast() -> None:
    # The false alarm: a minute after the first start, a disk with 31 % free losing
    # 0.002 a minute was forecast full within the 7-day horizon.
    spec = check(DISK)
    assert spec.capacity is not None
    samples = falling(1, every_s=10)
    s = capacity_series(spec.capacity, {"path": "/data"}, samples, T0)
    assert (s.value, s.exhausts_at, s.forecast_ready) == (0.31, None, False)
    assert s.forecast_since == T0 - MIN
    assert s.forecast_reason == (
        "7 samples over 1m: a forecast needs at least 5 samples over 1h30m (25% of over 6h)"
    )
    assert step(spec, CheckState(), probe(s), T0)[1] == []


def test_a_forecast_once_a_quarter_of_over_is_sampled() -> None:
    spec = check(DISK)
    assert spec.capacity is not None
    samples = falling(90)  # 1h30m of minutes: a quarter of 6h
    s = capacity_series(spec.capacity, {"path": "/data"}, samples, T0)
    assert (s.forecast_ready, s.forecast_reason, s.forecast_since) == (True, "", T0 - 90 * MIN)
    # 0.31 down to the critical 0.05 at 0.002 a minute: 130 minutes.
    assert s.exhausts_at is not None
    assert abs(s.exhausts_at - (T0 + 130 * MIN)) < timedelta(seconds=1)
    _, (alert,) = step(spec, CheckState(), probe(s), T0)
    assert (alert.labels["alertname"], alert.status) == ("CapacityForecast", AlertStatus.FIRING)


def test_too_few_samples_make_no_forecast() -> None:
    spec = check(DISK)
    assert spec.capacity is not None
    samples = falling(180, every_s=3600)  # 4 samples over 3h
    s = capacity_series(spec.capacity, {"path": "/data"}, samples, T0)
    assert (s.forecast_ready, s.exhausts_at) == (False, None)
    assert s.forecast_reason.startswith("4 samples over 3h: ")


def test_without_a_forecast_there_is_no_readiness() -> None:
    spec = check("type: disk, path: /data, critical: {below: 0.05}")
    assert spec.capacity is not None
    s = capacity_series(spec.capacity, {"path": "/data"}, [(T0.timestamp(), 0.3)], T0)
    assert (s.forecast_ready, s.forecast_since, s.forecast_reason) == (None, None, "")


def test_a_young_trend_leaves_a_firing_forecast_alone() -> None:
    # After a restart the disk's samples start again: the forecast alert restored from
    # the store neither resolves nor fires again until the trend has enough data.
    spec = check(DISK)
    assert spec.capacity is not None
    ready = capacity_series(spec.capacity, {"path": "/data"}, falling(90), T0)
    state, (fired,) = step(spec, CheckState(), probe(ready), T0)
    restored = restore(spec, state.firing.values(), T0 + MIN)
    young = capacity_series(spec.capacity, {"path": "/data"}, falling(1), T0 + MIN)
    held, alerts = step(spec, restored, probe(young), T0 + MIN)
    assert alerts == []
    assert held.firing == restored.firing
    # Once ready, a trend that no longer crosses resolves it.
    flat = [(T0.timestamp() + 60 * i, 0.31) for i in range(91)]
    later = T0 + 90 * MIN
    steady = capacity_series(spec.capacity, {"path": "/data"}, flat, later)
    _, (resolved,) = step(spec, held, probe(steady), later)
    assert (resolved.identity, resolved.status) == (fired.identity, AlertStatus.RESOLVED)
    # A young trend does not hold it once the threshold is crossed either.
    crossed = capacity_series(spec.capacity, {"path": "/data"}, [(later.timestamp(), 0.01)], later)
    _, alerts = step(spec, held, probe(crossed), later)
    assert sorted((a.labels["alertname"], str(a.status)) for a in alerts) == [
        ("CapacityForecast", R),
        ("CapacityThreshold", F),
    ]


def test_capacity_entry() -> None:
    spec = check(DISK)
    young = SeriesValue({"path": "/data"}, 0.31, None, False, T0 - MIN, "2 samples over 1m: ...")
    assert capacity_entry(spec, young) == {
        "check": "c",
        "labels": {"path": "/data"},
        "value": 0.31,
        "threshold": {"below": 0.05},
        "exhausts_at": None,
        "forecast_ready": False,
        "forecast_since": "2025-12-31T23:59:00Z",
        "forecast_reason": "2 samples over 1m: ...",
        "samples": [],
    }
    ready = SeriesValue({"path": "/data"}, 0.31, T0 + 130 * MIN, True, T0 - 90 * MIN)
    entry = capacity_entry(spec, ready)
    assert (entry["exhausts_at"], entry["forecast_ready"], entry["forecast_reason"]) == (
        "2026-01-01T02:10:00Z",
        True,
        None,
    )
    none = capacity_entry(check("type: disk, path: /x, warn: {below: 0.1}"), SeriesValue({}, 0.5))
    assert (none["forecast_ready"], none["forecast_since"]) == (None, None)


def test_capacity_series_keeps_a_thinned_copy_of_its_samples_for_charts() -> None:
    spec = check(DISK)
    assert spec.capacity is not None
    many = [(T0.timestamp() + 60 * i, 0.9 - 0.001 * i) for i in range(500)]
    s = capacity_series(spec.capacity, {"path": "/data"}, list(reversed(many)), T0)
    assert len(s.samples) == 120
    assert s.samples[0] == many[0]
    assert s.samples[-1] == many[-1]  # the newest is always drawn
    assert list(s.samples) == sorted(s.samples)
    few = [(T0.timestamp(), 0.5), (T0.timestamp() + 60, float("nan"))]
    entry = capacity_entry(spec, capacity_series(spec.capacity, {}, few, T0))
    assert entry["samples"] == [[T0.timestamp(), 0.5]]  # NaN has no JSON
