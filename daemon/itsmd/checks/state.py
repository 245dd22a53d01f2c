"""The state of one check, and the alerts its probe results make (pure, clock passed in).

Transitions only: an alert is sent when it starts firing, when it resolves, and when
what it says changes its identity (a capacity alert going from warning to critical
resolves the warning one and fires a critical one). While a check keeps failing
nothing is re-sent: the store is durable and dedups by fingerprint + starts_at.
Each alert's summary names the decision that made it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from itsmd.checks.availability import State
from itsmd.checks.forecast import MIN_SAMPLES, MIN_SHARE, crossing_time, enough, span
from itsmd.checks.spec import Capacity, CheckSpec, CheckType, DiskProbe, HeartbeatProbe, HttpProbe
from itsmd.correlation.fingerprint import fingerprint
from itsmd.durations import format_duration, format_optional_time, format_time
from itsmd.models import Alert, AlertStatus

SOURCE: Final = "check"
CHECK_FAILED: Final = "CheckFailed"
CERTIFICATE_EXPIRING: Final = "CertificateExpiring"
HEARTBEAT_MISSING: Final = "HeartbeatMissing"
CAPACITY_THRESHOLD: Final = "CapacityThreshold"
CAPACITY_FORECAST: Final = "CapacityForecast"
ALERT_NAMES = (
    CHECK_FAILED,
    CERTIFICATE_EXPIRING,
    HEARTBEAT_MISSING,
    CAPACITY_THRESHOLD,
    CAPACITY_FORECAST,
)


@dataclass(frozen=True, slots=True)
class SeriesValue:
    """One series of a prometheus (or disk) probe: its labels, its current value, and
    when its trend crosses the forecast target (None: never, no forecast, or not
    enough data for one yet).

    `forecast_ready` is None without a forecast, else whether the samples were
    enough to fit a trend (`forecast.enough`); `forecast_since` is the oldest sample
    the trend was fitted to, and `forecast_reason` says what is missing while not
    ready."""

    labels: Mapping[str, str]
    value: float
    exhausts_at: datetime | None = None
    forecast_ready: bool | None = None
    forecast_since: datetime | None = None
    forecast_reason: str = ""
    # At most CHART_SAMPLES of the samples, oldest first, for charts of the series.
    samples: tuple[tuple[float, float], ...] = ()


CHART_SAMPLES: Final = 120


def thinned(samples: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Up to CHART_SAMPLES of `samples` in time order, evenly spaced by position and
    always with the newest; NaN values (no JSON for them) left out."""
    ordered = sorted((t, v) for t, v in samples if not math.isnan(v))
    if len(ordered) <= CHART_SAMPLES:
        return tuple(ordered)
    step = (len(ordered) - 1) / (CHART_SAMPLES - 1)
    return tuple(ordered[round(i * step)] for i in range(CHART_SAMPLES))


def stored_samples(
    entry: Mapping[str, Any], since: float, until: float
) -> list[tuple[float, float]]:
    """The `samples` of a stored capacity entry taken from `since` to `until` (unix
    seconds), oldest first; anything malformed is left out."""
    found = []
    for item in entry.get("samples") or ():
        if isinstance(item, list | tuple) and len(item) == 2:
            t, v = item
            if isinstance(t, int | float) and isinstance(v, int | float) and since <= t <= until:
                found.append((float(t), float(v)))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found. `ok` False means the probe itself failed (CheckFailed);
    capacity thresholds are judged from `series`, not from `ok`."""

    ok: bool
    duration_s: float
    error: str = ""
    cert_not_after: datetime | None = None  # https: the peer certificate's notAfter
    series: tuple[SeriesValue, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the runner keeps per check between runs; the API shows most of it."""

    consecutive_failures: int = 0
    up: bool | None = None  # None: not known yet
    since: datetime | None = None  # when `up` took its value (a failure's first run)
    last_run: datetime | None = None
    last_error: str = ""
    failing_since: datetime | None = None  # first failure of the current run of them
    last_seen: datetime | None = None  # heartbeat: when a matching alert last arrived
    firing: Mapping[str, Alert] = field(default_factory=dict)  # alert key -> as sent


class _Want(NamedTuple):
    """An alert a decision wants firing."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime


def step(
    spec: CheckSpec, state: CheckState, result: ProbeResult, now: datetime
) -> tuple[CheckState, list[Alert]]:
    """Apply one probe result: `failures_before_alert` failures in a row fire
    CheckFailed (starting at the first of them); once firing, only a success
    resolves it. A failed probe tells nothing of certificates or capacity, so their
    alerts stay as they are until a probe succeeds."""
    if result.ok:
        new = replace(state, consecutive_failures=0, last_error="", failing_since=None)
        new = _set_up(new, True, now)
    else:
        failures = state.consecutive_failures + 1
        since = state.failing_since or now
        new = replace(
            state, consecutive_failures=failures, last_error=result.error, failing_since=since
        )
        if failures >= spec.failures_before_alert or _firing(state, CHECK_FAILED):
            new = _set_up(new, False, since)
    wants = _keyed([_check_failed(spec, new)] if new.up is False else [])
    decided = {CHECK_FAILED: f"the {spec.type} check succeeded at {format_time(now)}"}
    if result.ok:
        decided |= _RECOVERED
        wants |= _keyed([_certificate(spec, result.cert_not_after, now)])
        if spec.capacity is not None:
            cap = spec.capacity
            held = state.firing
            wants |= _keyed(w for s in result.series for w in _capacity(spec, cap, s, now, held))
    firing, alerts = _reconcile(state.firing, decided, wants, now)
    return replace(new, last_run=now, firing=firing), alerts


def observe(state: CheckState, now: datetime) -> tuple[CheckState, list[Alert]]:
    """A heartbeat's alert arrived: it is alive again, HeartbeatMissing resolves."""
    new = _set_up(replace(state, last_seen=now, last_run=now, last_error=""), True, now)
    seen = {HEARTBEAT_MISSING: f"a matching alert arrived at {format_time(now)}"}
    firing, alerts = _reconcile(state.firing, seen, {}, now)
    return replace(new, firing=firing), alerts


def beats(spec: CheckSpec, alert: Alert) -> bool:
    """Whether an incoming alert keeps a heartbeat alive: a firing alert that matches,
    not made by a check (a broad match must not be kept alive by its own alert)."""
    probe = spec.probe
    return (
        isinstance(probe, HeartbeatProbe)
        and alert.source != SOURCE
        and alert.status is AlertStatus.FIRING
        and probe.matches(alert.labels)
    )


def heartbeat_due(
    spec: CheckSpec, state: CheckState, now: datetime
) -> tuple[CheckState, list[Alert]]:
    """Fire HeartbeatMissing once nothing matched for longer than `interval`; it
    started when the allowed silence ran out. The first call starts the clock, so
    a new or reloaded heartbeat gets one interval of grace."""
    if state.last_seen is None:
        return replace(state, last_seen=now, last_run=now), []
    overdue = state.last_seen + spec.interval
    new = replace(state, last_run=now)
    if now <= overdue:
        return new, []
    silence = format_duration(now - state.last_seen)
    new = _set_up(replace(new, last_error=f"no matching alert for {silence}"), False, overdue)
    probe = spec.probe
    match = " or ".join(str(s) for s in probe.match) if isinstance(probe, HeartbeatProbe) else ""
    want = _Want(
        _labels(spec, HEARTBEAT_MISSING, spec.severity),
        {
            "summary": f"heartbeat {spec.name}: no alert matching {match} for {silence} "
            f"(allowed silence {format_duration(spec.interval)})",
            "description": f"last seen at {format_time(state.last_seen)}",
        },
        overdue,
    )
    firing, alerts = _reconcile(state.firing, {HEARTBEAT_MISSING: ""}, _keyed([want]), now)
    return replace(new, firing=firing), alerts


def retire(state: CheckState, now: datetime) -> list[Alert]:
    """Resolve everything a check still fires: it was removed from the rules."""
    return _reconcile(state.firing, dict.fromkeys(ALERT_NAMES, "the check was removed"), {}, now)[1]


def orphans(specs: Iterable[CheckSpec], alerts: Iterable[Alert], now: datetime) -> list[Alert]:
    """Resolve the firing alerts of checks no longer in the rules (removed while the
    daemon was stopped, or whose resolution could not be stored then)."""
    names = {spec.name for spec in specs}
    firing = {
        fingerprint(a.labels): a
        for a in alerts
        if a.status is AlertStatus.FIRING and a.labels.get("check") not in names
    }
    return retire(CheckState(firing=firing), now)


def restore(spec: CheckSpec, alerts: Iterable[Alert], now: datetime) -> CheckState:
    """Rebuild a state from the check's alerts the store still has firing, so that a
    restart neither fires them again nor leaves them firing for ever."""
    firing = {
        _key(a.labels): a
        for a in alerts
        if a.status is AlertStatus.FIRING and a.labels.get("check") == spec.name
    }
    state = CheckState(firing=firing)
    for alert in firing.values():
        name = alert.labels.get("alertname")
        if name == CHECK_FAILED:
            state = replace(
                state,
                consecutive_failures=spec.failures_before_alert,
                up=False,
                since=alert.starts_at,
                failing_since=alert.starts_at,
            )
        elif name == HEARTBEAT_MISSING:
            last_seen = alert.starts_at - spec.interval
            state = replace(state, up=False, since=alert.starts_at, last_seen=last_seen)
    if spec.type is CheckType.HEARTBEAT and state.last_seen is None:
        state = replace(state, last_seen=now)
    return state


def availability_change(old: CheckState, new: CheckState) -> tuple[datetime, State] | None:
    """The state change to record for availability when `up` changed (down is dated
    back to the first failure, so confirming failures count as downtime)."""
    if new.up is None or new.up == old.up or new.since is None:
        return None
    return new.since, State.UP if new.up else State.DOWN


def capacity_series(
    capacity: Capacity,
    labels: Mapping[str, str],
    samples: Sequence[tuple[float, float]],
    now: datetime,
) -> SeriesValue:
    """For probes: a series from its `(unix seconds, value)` samples over `forecast.over`,
    its value the latest sample's. With a forecast, the samples must be enough for a
    trend (`forecast.enough`: a quarter of `over` and MIN_SAMPLES); only then is
    `exhausts_at` where the trend crosses the target. Raises ValueError without
    samples (a series without data is no series)."""
    if not samples:
        raise ValueError("a series needs at least one sample")
    value = max(samples)[1]
    drawn = thinned(samples)
    forecast, target = capacity.forecast, capacity.target
    if forecast is None or target is None:
        return SeriesValue(dict(labels), value, samples=drawn)
    since = datetime.fromtimestamp(min(t for t, _ in samples), UTC)
    if not enough(samples, forecast.over.total_seconds()):
        reason = _too_little(samples, forecast.over)
        return SeriesValue(dict(labels), value, None, False, since, reason, drawn)
    crossing = crossing_time(samples, target.value, target.direction, now.timestamp())
    exhausts_at = None if crossing is None else datetime.fromtimestamp(crossing, UTC)
    return SeriesValue(dict(labels), value, exhausts_at, True, since, samples=drawn)


def _too_little(samples: Sequence[tuple[float, float]], over: timedelta) -> str:
    n, have = len(samples), timedelta(seconds=round(span(samples)))
    return (
        f"{n} sample{'s' if n != 1 else ''} over {format_duration(have)}: a forecast needs "
        f"at least {MIN_SAMPLES} samples over {format_duration(over * MIN_SHARE)} "
        f"({MIN_SHARE:.0%} of over {format_duration(over)})"
    )


def capacity_entry(spec: CheckSpec, series: SeriesValue) -> dict[str, Any]:
    """One entry of `GET /api/v1/capacity` (docs/api.md) for a series of a check."""
    target = spec.capacity.target if spec.capacity else None
    return {
        "check": spec.name,
        "labels": dict(series.labels),
        "value": None if math.isnan(series.value) else series.value,
        "threshold": None if target is None else {str(target.direction): target.value},
        "exhausts_at": format_optional_time(series.exhausts_at),
        "forecast_ready": series.forecast_ready,
        "forecast_since": format_optional_time(series.forecast_since),
        "forecast_reason": series.forecast_reason or None,
        "samples": [[round(t, 3), v] for t, v in series.samples],
    }


# ---- the alerts each decision wants

# Why certificate and capacity alerts resolve when a probe succeeds without wanting them.
_RECOVERED = {
    CERTIFICATE_EXPIRING: "the certificate is no longer within tls_expiry_warning",
    CAPACITY_THRESHOLD: "the series no longer crosses a threshold, or is gone",
    CAPACITY_FORECAST: "the trend no longer crosses within the horizon (or the threshold "
    "was reached), or the series is gone",
}


def _check_failed(spec: CheckSpec, state: CheckState) -> _Want:
    since = state.failing_since or state.since
    assert since is not None
    n = state.consecutive_failures
    return _Want(
        _labels(spec, CHECK_FAILED, spec.severity),
        {
            "summary": f"{spec.type} check {spec.name} failing since {format_time(since)} "
            f"({n} failure{'s' if n != 1 else ''} in a row, alerting after "
            f"{spec.failures_before_alert})",
            "description": state.last_error,
        },
        since,
    )


def _certificate(spec: CheckSpec, not_after: datetime | None, now: datetime) -> _Want | None:
    probe = spec.probe
    if not isinstance(probe, HttpProbe) or probe.tls_expiry_warning is None or not_after is None:
        return None
    if not_after - now > probe.tls_expiry_warning:
        return None
    left = format_duration(max(not_after - now, timedelta(0)))
    return _Want(
        _labels(spec, CERTIFICATE_EXPIRING, "warning"),
        {
            "summary": f"certificate of {probe.url} expires at {format_time(not_after)}, in {left} "
            f"(tls_expiry_warning {format_duration(probe.tls_expiry_warning)})",
            "description": "renew the certificate; this resolves once the new one is served",
            "not_after": format_time(not_after),
        },
        now,
    )


def _capacity(
    spec: CheckSpec,
    capacity: Capacity,
    series: SeriesValue,
    now: datetime,
    firing: Mapping[str, Alert],
) -> Iterable[_Want | None]:
    forecast = _forecast(spec, capacity, series, now, firing)
    return _threshold(spec, capacity, series, now), forecast


def _threshold(
    spec: CheckSpec, capacity: Capacity, series: SeriesValue, now: datetime
) -> _Want | None:
    breach = capacity.breach(series.value)
    if breach is None:
        return None
    severity, threshold = breach
    labels = _labels(spec, CAPACITY_THRESHOLD, severity, series.labels)
    return _Want(
        labels,
        {
            "summary": f"{spec.name}: value {series.value:g} is {threshold} ({severity} threshold)",
            "description": f"{_what(spec, series)} crossed the {severity} threshold {threshold}",
            "value": f"{series.value:g}",
            "threshold": str(threshold),
        },
        now,
    )


def _forecast(
    spec: CheckSpec,
    capacity: Capacity,
    series: SeriesValue,
    now: datetime,
    firing: Mapping[str, Alert],
) -> _Want | None:
    """Only while the target is not crossed yet: from then on CapacityThreshold speaks.
    A trend without enough data yet tells nothing either way: it fires nothing, and
    a forecast alert already firing (say, restored after a restart, which starts a
    disk's samples again) stays as it is until the trend can speak."""
    forecast, target, at = capacity.forecast, capacity.target, series.exhausts_at
    if forecast is None or target is None or target.crossed(series.value):
        return None
    if series.forecast_ready is False:
        return _held(firing, _labels(spec, CAPACITY_FORECAST, "warning", series.labels))
    if at is None or at > now + forecast.horizon:
        return None
    return _Want(
        _labels(spec, CAPACITY_FORECAST, "warning", series.labels),
        {
            "summary": f"{spec.name}: {_what(spec, series)} will be {target} by {format_time(at)} "
            f"(trend over {format_duration(forecast.over)}, within the horizon "
            f"{format_duration(forecast.horizon)})",
            "description": f"value {series.value:g} now; least-squares trend crosses {target}",
            "value": f"{series.value:g}",
            "threshold": str(target),
            "exhausts_at": format_time(at),
        },
        now,
    )


def _held(firing: Mapping[str, Alert], labels: Mapping[str, str]) -> _Want | None:
    """The alert firing in the slot of `labels`, wanted as it is (None: none fires)."""
    alert = firing.get(_key(labels))
    if alert is None:
        return None
    return _Want(dict(alert.labels), dict(alert.annotations), alert.starts_at)


def _what(spec: CheckSpec, series: SeriesValue) -> str:
    if isinstance(spec.probe, DiskProbe):
        return f"free space ratio of {spec.probe.path}"
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(series.labels.items()))
    return f"series {{{inner}}}"


def _labels(
    spec: CheckSpec, alertname: str, severity: str, series: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Series labels, then the check's labels, then the ones the check owns."""
    labels = {k: v for k, v in (series or {}).items() if not k.startswith("__")}
    labels.update(spec.labels)
    labels.update(alertname=alertname, check=spec.name, severity=severity)
    if spec.service:
        labels["service"] = spec.service
    return labels


# ---- from wanted alerts to transitions


def _key(labels: Mapping[str, str]) -> str:
    """An alert's slot: its identity without severity, so a warning that turns
    critical replaces itself instead of firing beside itself."""
    rest = {k: v for k, v in labels.items() if k != "severity"}
    return f"{labels.get('alertname', '')}/{fingerprint(rest)}"


def _keyed(wants: Iterable[_Want | None]) -> dict[str, _Want]:
    return {_key(want.labels): want for want in wants if want is not None}


def _firing(state: CheckState, alertname: str) -> bool:
    return any(a.labels.get("alertname") == alertname for a in state.firing.values())


def _set_up(state: CheckState, up: bool, since: datetime) -> CheckState:
    return state if state.up is up else replace(state, up=up, since=since)


def _reconcile(
    firing: Mapping[str, Alert],
    decided: Mapping[str, str],
    wants: Mapping[str, _Want],
    now: datetime,
) -> tuple[dict[str, Alert], list[Alert]]:
    """Fire what is wanted and not firing, resolve what fires and is not wanted (among
    the alert names this run `decided`, with the reason given for each name), and
    leave the rest as it is."""
    out = dict(firing)
    alerts: list[Alert] = []
    for key, alert in firing.items():
        name, want = alert.labels.get("alertname", ""), wants.get(key)
        if name not in decided or (want and fingerprint(want.labels) == alert.fingerprint):
            continue
        why = decided[name] if want is None else f"replaced by a {want.labels['severity']} alert"
        annotations = {**alert.annotations, "resolution": why}
        alerts.append(_alert(alert.labels, annotations, alert.starts_at, now))
        del out[key]
    for key, want in wants.items():
        if key not in out:
            out[key] = _alert(want.labels, want.annotations, want.starts_at, None)
            alerts.append(out[key])
    return out, alerts


def _alert(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime | None,
) -> Alert:
    """A domain alert; `raw` in Alertmanager's shape, with startsAt so that ingest
    treats it as an explicit episode."""
    status = AlertStatus.FIRING if ends_at is None else AlertStatus.RESOLVED
    raw: dict[str, Any] = {
        "status": str(status),
        "labels": dict(labels),
        "annotations": dict(annotations),
        "startsAt": format_time(starts_at),
        "endsAt": format_optional_time(ends_at),
    }
    return Alert(
        fingerprint(labels),
        status,
        dict(labels),
        dict(annotations),
        starts_at,
        ends_at,
        "",
        SOURCE,
        raw,
    )
