"""Alertmanager webhook payloads (version "4") -> domain alerts.

This is the hot ingest path: checks are plain type and string tests, regexes only
inside `parse_time`. The payload checks are public because the generic source
(`POST /api/v1/alerts`) takes Alertmanager's own alert shape and reuses them.

A body that is not a valid payload as a whole raises PayloadError. Within a valid
one each alert is checked on its own: a check raises InvalidField naming the field
of the alert at fault, and `each_alert` (`_parse_alerts` for a webhook) turns that
into a `Refusal` by the alert's index, so that one bad alert never costs the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from itsmd.correlation.fingerprint import fingerprint, fingerprints
from itsmd.durations import parse_time
from itsmd.models import Alert, AlertStatus
from itsmd.sources import Parsed, PayloadError, Refusal

if TYPE_CHECKING:
    from itsmd.sources import Source

SOURCE: Final = "alertmanager"
MISSING: Final[object] = object()  # a key absent from a payload, as opposed to null
STATUSES: Final = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
# Go marshals the zero time.Time so; the webhook sends it as endsAt of every firing alert.
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_LABEL_NAME_RULE: Final = "[a-zA-Z_][a-zA-Z0-9_]*"
# Labels or annotations of one alert: far above any real alert (a few dozen), low
# enough that one alert cannot make a row the size of a request (docs/api.md).
MAX_ENTRIES: Final = 128
_NUL: Final = "\x00"
_HAS_NUL: Final = "contains a NUL character (U+0000), which cannot be stored"


class InvalidField(ValueError):
    """One field of one alert is invalid. `field` is relative to the alert
    (`labels.severity`; empty for the alert itself): `each_alert` or `_parse_alerts`
    adds where the alert is in the payload."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def parse_webhook(body: object, now: datetime) -> Parsed:
    """Turn a decoded webhook body into alerts, refusing each invalid alert by its
    index; PayloadError when the body is not a version 4 payload with an alert list.

    The `fingerprint` of an alert must be the fingerprint of its labels (computed
    when absent), so that an alert is never filed under another's identity. A firing
    alert has no `ends_at`. Keys other than `version` and `alerts` (receiver,
    groupKey, truncatedAlerts, ...) are accepted and ignored. `now` is unused: the
    webhook carries every time itself.
    """
    if not isinstance(body, dict):
        raise PayloadError("", f"expected a JSON object, got {describe(body)}")
    version = body.get("version", MISSING)
    if version != "4":
        raise PayloadError("version", f'expected "4", got {describe(version)}')
    alerts = body.get("alerts", MISSING)
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"expected an array of alerts, got {describe(alerts)}")
    return _parse_alerts(alerts)


class AlertmanagerSource:
    """The `Source` behind `POST /api/v1/webhooks/alertmanager`."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return SOURCE

    def parse_each(self, body: object, now: datetime) -> Parsed:
        return parse_webhook(body, now)

    def parse(self, body: object, now: datetime) -> Sequence[Alert]:
        return parse_webhook(body, now).whole()


def each_alert(items: list[object], prefix: str, parse: Callable[[object], Alert]) -> Parsed:
    """Every item through `parse`; one it finds invalid is refused by its index, its
    field named from the payload's top (`alerts[3].labels`, `[3].labels`)."""
    alerts: list[Alert] = []
    refused: list[Refusal] = []
    for index, item in enumerate(items):
        try:
            alerts.append(parse(item))
        except InvalidField as exc:
            refused.append(_refusal(index, prefix, exc))
    return Parsed(alerts, refused)


def _refusal(index: int, prefix: str, exc: InvalidField) -> Refusal:
    where = f"{prefix}[{index}]"
    return Refusal(index, f"{where}.{exc.field}" if exc.field else where, exc.message)


# An alert's first checks: the item, its status, its labels.
_Head = tuple[dict[str, object], AlertStatus, dict[str, str]]


def _parse_alerts(items: list[object]) -> Parsed:
    """`each_alert` for a webhook's alerts, in two passes so that their fingerprints
    are computed side by side (`fingerprints`); each alert is checked in the same order
    as alone: the item, its status and labels, its fingerprint, the rest."""
    heads: list[_Head | InvalidField] = []
    for item in items:
        try:
            heads.append(_head(item))
        except InvalidField as exc:
            heads.append(exc)
    labels = [head[2] for head in heads if not isinstance(head, InvalidField)]
    # One fingerprint per head that passed, in their order: taken below for exactly those.
    computed = iter(fingerprints(labels))
    alerts: list[Alert] = []
    refused: list[Refusal] = []
    for index, head in enumerate(heads):
        if isinstance(head, InvalidField):
            refused.append(_refusal(index, "alerts", head))
            continue
        fingerprint_of_labels = next(computed)
        try:
            alerts.append(_parse_rest(*head, fingerprint_of_labels))
        except InvalidField as exc:
            refused.append(_refusal(index, "alerts", exc))
    return Parsed(alerts, refused)


def _head(item: object) -> _Head:
    if not isinstance(item, dict):
        raise InvalidField("", f"expected an alert object, got {describe(item)}")
    status = check_status(item.get("status", MISSING))
    return item, status, check_labels(item.get("labels", MISSING))


def _parse_rest(
    item: dict[str, object], status: AlertStatus, labels: dict[str, str], computed: str
) -> Alert:
    return Alert(
        fingerprint=_matching_fingerprint(item.get("fingerprint"), computed),
        status=status,
        labels=labels,
        annotations=check_annotations(item.get("annotations")),
        starts_at=check_time(item.get("startsAt", MISSING), "startsAt"),
        ends_at=_ends_at(item.get("endsAt", MISSING), status),
        generator_url=check_string(item.get("generatorURL"), "generatorURL"),
        source=SOURCE,
        raw=item,
    )


def _ends_at(value: object, status: AlertStatus) -> datetime | None:
    ends_at = None if value == _ZERO_TIME else check_time(value, "endsAt")
    if ends_at is not None and ends_at.year == 1:
        ends_at = None  # the zero time spelled with fractions or an offset
    if status is AlertStatus.FIRING:
        return None  # a firing alert has not ended, whatever a sender put here
    if ends_at is None:
        raise InvalidField("endsAt", "expected the time a resolved alert ended, got the zero time")
    return ends_at


def check_fingerprint(value: object, labels: Mapping[str, str]) -> str:
    """The fingerprint of `labels`; one a sender gives (not null) must be that one."""
    return _matching_fingerprint(value, fingerprint(labels))


def _matching_fingerprint(value: object, computed: str) -> str:
    """`computed`, the fingerprint of the alert's labels, if the sender gave that one
    or none."""
    if value is None or value == computed:
        return computed
    raise InvalidField(
        "fingerprint",
        f"expected {computed} (the fingerprint of its labels), got {describe(value)}",
    )


def check_status(value: object) -> AlertStatus:
    status = STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        raise InvalidField("status", f'expected "firing" or "resolved", got {describe(value)}')
    return status


def check_labels(value: object) -> dict[str, str]:
    """A non-empty object of valid label names to strings."""
    labels = _string_map(value, "labels", names_checked=True)
    if not labels:
        raise InvalidField("labels", "expected at least one label, got an empty object")
    for name in labels:
        # For ASCII text, isidentifier() is exactly [a-zA-Z_][a-zA-Z0-9_]*.
        if not (name.isascii() and name.isidentifier()):
            raise InvalidField(
                "labels", f"expected label names matching {_LABEL_NAME_RULE}, got {describe(name)}"
            )
    return labels


def check_annotations(value: object) -> dict[str, str]:
    """An object of strings; absent or null (Go's nil map) means none."""
    if value is None or value is MISSING:
        return {}
    return _string_map(value, "annotations", names_checked=False)


def check_time(value: object, key: str) -> datetime:
    """A required RFC 3339 time, as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            return parse_time(value)
        except (ValueError, OverflowError):  # OverflowError: year 1 with a +hh:mm offset
            pass
    raise InvalidField(key, f"expected an RFC 3339 time, got {describe(value)}")


def check_string(value: object, key: str) -> str:
    """An optional string; absent or null means empty."""
    if isinstance(value, str):
        if _NUL in value:
            raise InvalidField(key, _HAS_NUL)
        return value
    if value is None or value is MISSING:
        return ""
    raise InvalidField(key, f"expected a string, got {describe(value)}")


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


def _string_map(value: object, field: str, *, names_checked: bool) -> dict[str, str]:
    """An object of strings without NUL characters (the store cannot hold them); the
    names too unless the caller checks them itself."""
    if not isinstance(value, dict):
        raise InvalidField(field, f"expected an object of strings, got {describe(value)}")
    if len(value) > MAX_ENTRIES:
        raise InvalidField(field, f"expected at most {MAX_ENTRIES} entries, got {len(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidField(f"{field}.{key}", f"expected a string, got {describe(item)}")
        if not isinstance(key, str):  # only from Python callers: JSON keys are strings
            raise InvalidField(field, f"expected string keys, got {describe(key)}")
        if _NUL in item:
            raise InvalidField(f"{field}.{key}", _HAS_NUL)
        if not names_checked and _NUL in key:
            raise InvalidField(field, f"the name {json.dumps(key)} {_HAS_NUL}")
    return value


if TYPE_CHECKING:
    _conforms: Source = AlertmanagerSource()
