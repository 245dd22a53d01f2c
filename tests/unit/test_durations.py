"""Tests for itsmd.durations: Prometheus durations, byte sizes, RFC 3339 times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itsmd.durations import (
    format_duration,
    format_optional_time,
    format_time,
    parse_duration,
    parse_size,
    parse_time,
)

# --- parse_duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("0h0m", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1y", timedelta(days=365)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("100ms", timedelta(milliseconds=100)),
        ("1m1ms", timedelta(minutes=1, milliseconds=1)),
        ("1s500ms", timedelta(seconds=1, milliseconds=500)),
        ("1y1w1d1h1m1s1ms", timedelta(days=373, hours=1, minutes=1, seconds=1, milliseconds=1)),
        ("90m", timedelta(minutes=90)),  # no carrying needed, as in Prometheus
        ("  5m  ", timedelta(minutes=5)),  # surrounding white space is ignored
        ("007s", timedelta(seconds=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "5",  # a unit is required (only a bare 0 is allowed)
        "00",
        "1.5h",
        "-5m",
        "+5m",
        "5M",
        "5 m",
        "1h 30m",
        "m",
        "1m1h",  # units largest first
        "1h1h",  # each unit at most once
        "5mm",
        "5min",
        "never",
        "P1D",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not a duration: .* \(expected e\.g\. 90s, 15m"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999y", "9999999999999w", "1000000000d"])
def test_parse_duration_too_long_is_a_value_error_not_overflow(text: str) -> None:
    # Regression: used to raise OverflowError, which escaped the config/rule loaders.
    with pytest.raises(ValueError, match=f"^duration too long: '{text}'$"):
        parse_duration(text)


# --- format_duration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(microseconds=400), "0s"),  # below a millisecond rounds away
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(seconds=1, milliseconds=500), "1s500ms"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(seconds=5400), "1h30m"),
        (timedelta(hours=4), "4h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=7), "1w"),
        (timedelta(days=8, hours=1), "1w1d1h"),
        (timedelta(days=365), "52w1d"),  # years are never produced
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


@pytest.mark.parametrize(
    "text", ["0s", "1ms", "1s500ms", "90s", "1m30s", "15m", "1h30m", "4h", "1d", "1w1d1h1m1s1ms"]
)
def test_canonical_durations_survive_a_round_trip(text: str) -> None:
    canonical = format_duration(parse_duration(text))
    assert parse_duration(canonical) == parse_duration(text)
    assert format_duration(parse_duration(canonical)) == canonical


@given(st.integers(min_value=0, max_value=10**14))
def test_format_then_parse_is_identity_to_the_millisecond(total_ms: int) -> None:
    delta = timedelta(milliseconds=total_ms)
    assert parse_duration(format_duration(delta)) == delta


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=12))
def test_parse_duration_raises_only_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result >= timedelta(0)


# --- parse_size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1_048_576),
        ("1B", 1),
        ("512KiB", 512 * 1024),
        ("1MiB", 1024**2),
        ("2GiB", 2 * 1024**3),
        ("10KB", 10_000),
        ("10MB", 10_000_000),
        ("1GB", 10**9),
        ("1 MiB", 1024**2),
        (" 1MiB ", 1024**2),
        (4096, 4096),  # YAML gives a plain number as an int
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MiB", "1.5MiB", "-1", "1mib", "1 TiB", "1KiBB", "1Ki", "one MiB", "1_000"]
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not a size: .* \(expected e\.g\. 1MiB"):
        parse_size(text)


# --- parse_time / format_time --------------------------------------------------------------------


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02t03:04:05z", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02 03:04:05Z", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05.5Z", utc(2024, 1, 2, 3, 4, 5, 500_000)),
        ("2024-01-02T03:04:05.123Z", utc(2024, 1, 2, 3, 4, 5, 123_000)),
        ("2024-01-02T03:04:05.123456Z", utc(2024, 1, 2, 3, 4, 5, 123_456)),
        # Alertmanager sends nanoseconds: the digits past microseconds are dropped, not rounded.
        ("2024-01-02T03:04:05.123456789Z", utc(2024, 1, 2, 3, 4, 5, 123_456)),
        ("2024-01-02T03:04:05.999999999Z", utc(2024, 1, 2, 3, 4, 5, 999_999)),
        ("2024-01-02T03:04:05.000000001Z", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05+00:00", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05-00:00", utc(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05+02:00", utc(2024, 1, 2, 1, 4, 5)),
        ("2024-01-02T03:04:05-05:30", utc(2024, 1, 2, 8, 34, 5)),
        ("2024-01-01T01:00:00+02:00", utc(2023, 12, 31, 23, 0, 0)),  # across a year boundary
        ("2024-02-29T12:00:00Z", utc(2024, 2, 29, 12)),
        ("2024-01-02T03:04:05.25+01:00", utc(2024, 1, 2, 2, 4, 5, 250_000)),
        ("0001-01-01T00:00:00Z", utc(1, 1, 1)),  # Alertmanager's zero time (no endsAt)
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-01-02",
        "2024-01-02T03:04:05",  # no offset: ambiguous, refused
        "2024-01-02T03:04Z",
        "2024-1-2T03:04:05Z",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05+0200",
        "2024-01-02T03:04:05+2:00",
        "2024-01-02T03:04:05 Z",
        "2024-01-02T03:04:05Z trailing",
        " 2024-01-02T03:04:05Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2016-12-31T23:59:60Z",  # leap seconds are not representable
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+23:60",
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
        "9999-12-31T23:00:00-01:00",  # after datetime.max in UTC
        "1714000000",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not an RFC 3339 time: "):
        parse_time(text)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
        (utc(2024, 1, 2, 3, 4, 5, 120_000), "2024-01-02T03:04:05.120000Z"),
        (utc(2024, 1, 2, 3, 4, 5, 1), "2024-01-02T03:04:05.000001Z"),
        (
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T01:04:05Z",
        ),
        (utc(1, 1, 1), "0001-01-01T00:00:00Z"),
    ],
)
def test_format_time(moment: datetime, expected: str) -> None:
    assert format_time(moment) == expected
    assert parse_time(expected) == moment


def test_format_optional_time() -> None:
    assert format_optional_time(None) is None
    assert format_optional_time(utc(2024, 1, 2)) == "2024-01-02T00:00:00Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
)
def test_format_then_parse_time_is_identity(moment: datetime) -> None:
    assert parse_time(format_time(moment)) == moment


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_parse_time_applies_any_valid_offset(local: datetime, offset_min: int) -> None:
    sign = "-" if offset_min < 0 else "+"
    hours, minutes = divmod(abs(offset_min), 60)
    text = local.isoformat(timespec="seconds") + f"{sign}{hours:02d}:{minutes:02d}"
    expected = local.replace(microsecond=0) - timedelta(minutes=offset_min)
    assert parse_time(text) == expected.replace(tzinfo=UTC)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_parse_time_raises_only_value_error(text: str) -> None:
    try:
        parsed = parse_time(text)
    except ValueError:
        return
    assert parsed.tzinfo is UTC


def test_parse_time_keeps_answers_for_short_texts_only() -> None:
    from itsmd import durations

    short = "2026-01-31T12:00:00.5+01:00"
    long = "2026-01-31T12:00:00.5" + "0" * 500 + "+01:00"
    durations._parse_time_kept.cache_clear()
    assert parse_time(short) == parse_time(long) == datetime(2026, 1, 31, 11, 0, 0, 500000, UTC)
    assert parse_time(short) is parse_time(short)  # kept
    assert durations._parse_time_kept.cache_info().currsize == 1  # the long one is not
