"""Alertmanager webhook payloads (version "4") -> domain alerts.

This is the hot ingest path: checks are plain type and string tests, regexes only
inside `parse_time`. The payload checks are public because the generic source
(`POST /api/v1/alerts`) takes Alertmanager's own alert shape and reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from itsmd.correlation.fingerprint import fingerprint
from itsmd.durations import parse_time
from itsmd.models import Alert, AlertStatus
from itsmd.sources import PayloadError

if TYPE_CHECKING:
    from itsmd.sources import Source

SOURCE: Final = "alertmanager"
MISSING: Final[object] = object()  # a key absent from a payload, as opposed to null
STATUSES: Final = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
# Go marshals the zero time.Time so; the webhook sends it as endsAt of every firing alert.
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_HEX_DIGITS: Final = "0123456789abcdef"
_LABEL_NAME_RULE: Final = "[a-zA-Z_][a-zA-Z0-9_]*"


def parse_webhook(body: object, now: datetime) -> list[Alert]:
    """Turn a decoded webhook body into alerts, or raise PayloadError naming the field.

    Alertmanager is the authority on identity: its `fingerprint` is kept as sent
    (computed from the labels only when absent). A firing alert has no `ends_at`.
    Keys other than `version` and `alerts` (receiver, groupKey, truncatedAlerts, ...)
    are accepted and ignored. `now` is unused: the webhook carries every time itself.
    """
    if not isinstance(body, dict):
        raise PayloadError("", f"expected a JSON object, got {describe(body)}")
    version = body.get("version", MISSING)
    if version != "4":
        raise PayloadError("version", f'expected "4", got {describe(version)}')
    alerts = body.get("alerts", MISSING)
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"expected an array of alerts, got {describe(alerts)}")
    return [_parse_alert(item, f"alerts[{index}]") for index, item in enumerate(alerts)]


class AlertmanagerSource:
    """The `Source` behind `POST /api/v1/webhooks/alertmanager`."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return SOURCE

    def parse(self, body: object, now: datetime) -> Sequence[Alert]:
        return parse_webhook(body, now)


def _parse_alert(item: object, path: str) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError(path, f"expected an alert object, got {describe(item)}")
    status = check_status(item.get("status", MISSING), path)
    labels = check_labels(item.get("labels", MISSING), path)
    return Alert(
        fingerprint=_fingerprint(item.get("fingerprint"), labels, path),
        status=status,
        labels=labels,
        annotations=check_annotations(item.get("annotations"), path),
        starts_at=check_time(item.get("startsAt", MISSING), path, "startsAt"),
        ends_at=_ends_at(item.get("endsAt", MISSING), status, path),
        generator_url=check_string(item.get("generatorURL"), path, "generatorURL"),
        source=SOURCE,
        raw=item,
    )


def _ends_at(value: object, status: AlertStatus, path: str) -> datetime | None:
    ends_at = None if value == _ZERO_TIME else check_time(value, path, "endsAt")
    if ends_at is not None and ends_at.year == 1:
        ends_at = None  # the zero time spelled with fractions or an offset
    if status is AlertStatus.FIRING:
        return None  # a firing alert has not ended, whatever a sender put here
    if ends_at is None:
        raise PayloadError(
            f"{path}.endsAt", "expected the time a resolved alert ended, got the zero time"
        )
    return ends_at


def _fingerprint(value: object, labels: dict[str, str], path: str) -> str:
    if value is None:
        return fingerprint(labels)
    if isinstance(value, str) and len(value) == 16 and not value.strip(_HEX_DIGITS):
        return value
    raise PayloadError(
        f"{path}.fingerprint", f"expected 16 lowercase hex digits, got {describe(value)}"
    )


def check_status(value: object, path: str) -> AlertStatus:
    status = STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        raise PayloadError(
            f"{path}.status", f'expected "firing" or "resolved", got {describe(value)}'
        )
    return status


def check_labels(value: object, path: str) -> dict[str, str]:
    """A non-empty object of valid label names to strings."""
    labels = _string_map(value, f"{path}.labels")
    if not labels:
        raise PayloadError(f"{path}.labels", "expected at least one label, got an empty object")
    for name in labels:
        # For ASCII text, isidentifier() is exactly [a-zA-Z_][a-zA-Z0-9_]*.
        if not (name.isascii() and name.isidentifier()):
            raise PayloadError(
                f"{path}.labels",
                f"expected label names matching {_LABEL_NAME_RULE}, got {describe(name)}",
            )
    return labels


def check_annotations(value: object, path: str) -> dict[str, str]:
    """An object of strings; absent or null (Go's nil map) means none."""
    return {} if value is None or value is MISSING else _string_map(value, f"{path}.annotations")


def check_time(value: object, path: str, key: str) -> datetime:
    """A required RFC 3339 time, as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            return parse_time(value)
        except (ValueError, OverflowError):  # OverflowError: year 1 with a +hh:mm offset
            pass
    raise PayloadError(f"{path}.{key}", f"expected an RFC 3339 time, got {describe(value)}")


def check_string(value: object, path: str, key: str) -> str:
    """An optional string; absent or null means empty."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    raise PayloadError(f"{path}.{key}", f"expected a string, got {describe(value)}")


def describe(value: object) -> str:
    """What a payload held, for `expected X, got Y` messages (JSON terms, kept short)."""
    if value is MISSING:
        return "nothing (the key is missing)"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {json.dumps(text, ensure_ascii=False)}"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _string_map(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(field, f"expected an object of strings, got {describe(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{key}", f"expected a string, got {describe(item)}")
        if not isinstance(key, str):  # only from Python callers: JSON keys are strings
            raise PayloadError(field, f"expected string keys, got {describe(key)}")
    return value


if TYPE_CHECKING:
    _conforms: Source = AlertmanagerSource()
