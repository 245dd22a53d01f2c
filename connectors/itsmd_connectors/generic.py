"""Generic sources (`POST /api/v1/alerts`) -> domain alerts.

The body is a JSON array in the shape of Alertmanager's own `POST /api/v2/alerts`,
`{labels, annotations?, startsAt?, endsAt?, generatorURL?}`, plus an optional
`status`. Defaults follow Alertmanager so that a sender behaves the same whether it
posts here or to an Alertmanager:

- `fingerprint` is computed from the labels, as Alertmanager would; one a sender
  gives must be that one (Alertmanager's API ignores it; here it is checked rather
  than silently replaced, so that a sender that believes in it learns otherwise).
- `startsAt` absent: `endsAt` when that is already past (Alertmanager stamps a
  resolve-only push so), else `now`. Such an alert gets a new `starts_at` on every
  send; its `raw` has no `startsAt`, which tells ingest it may merge the episodes.
- `status` absent: `resolved` when `endsAt` is given and not after `now`, else
  `firing` (a future `endsAt` is when it would expire, not an end).
- `status` given wins over `endsAt`: `firing` with a past `endsAt` stays firing.
- The domain keeps the Alertmanager invariants: a firing alert has no `ends_at`;
  a resolved one always has one (`now` when the sender gave none).

An alert that is invalid on its own is refused by its index (`[3].labels`) and the
others are kept; a body that is not a JSON array raises PayloadError.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from itsmd.durations import format_time
from itsmd.models import Alert, AlertStatus
from itsmd.sources import Parsed, PayloadError
from itsmd_connectors.alertmanager import (
    MISSING,
    InvalidField,
    check_annotations,
    check_fingerprint,
    check_labels,
    check_status,
    check_string,
    check_time,
    describe,
    each_alert,
)

if TYPE_CHECKING:
    from itsmd.sources import Source

SOURCE: Final = "generic"


def parse_alerts(body: object, now: datetime) -> Parsed:
    """Turn a decoded body into alerts, refusing each invalid alert by its index."""
    if not isinstance(body, list):
        raise PayloadError("", f"expected a JSON array of alerts, got {describe(body)}")
    return each_alert(body, "", lambda item: _parse_alert(item, now))


class GenericSource:
    """The `Source` behind `POST /api/v1/alerts`."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return SOURCE

    def parse_each(self, body: object, now: datetime) -> Parsed:
        return parse_alerts(body, now)

    def parse(self, body: object, now: datetime) -> Sequence[Alert]:
        return parse_alerts(body, now).whole()


def _parse_alert(item: object, now: datetime) -> Alert:
    if not isinstance(item, dict):
        raise InvalidField("", f"expected an alert object, got {describe(item)}")
    labels = check_labels(item.get("labels", MISSING))
    ends_at = _optional_time(item.get("endsAt"), "endsAt")
    starts_at = _optional_time(item.get("startsAt"), "startsAt")
    if starts_at is None:
        starts_at = ends_at if ends_at is not None and ends_at <= now else now
    elif ends_at is not None and ends_at < starts_at:
        # Alertmanager's API refuses this too ("start time must be before end time").
        raise InvalidField(
            "endsAt",
            f"expected a time not before startsAt ({format_time(starts_at)}), "
            f"got {format_time(ends_at)}",
        )
    status = _status(item.get("status"), ends_at, now)
    return Alert(
        fingerprint=check_fingerprint(item.get("fingerprint"), labels),
        status=status,
        labels=labels,
        annotations=check_annotations(item.get("annotations")),
        starts_at=starts_at,
        ends_at=None if status is AlertStatus.FIRING else ends_at or now,
        generator_url=check_string(item.get("generatorURL"), "generatorURL"),
        source=SOURCE,
        raw=item,
    )


def _status(value: object, ends_at: datetime | None, now: datetime) -> AlertStatus:
    if value is not None:
        return check_status(value)
    if ends_at is not None and ends_at <= now:
        return AlertStatus.RESOLVED
    return AlertStatus.FIRING


def _optional_time(value: object, key: str) -> datetime | None:
    """Absent, null and Go's zero time (year 1) mean "not given"."""
    if value is None:
        return None
    moment = check_time(value, key)
    return None if moment.year == 1 else moment


if TYPE_CHECKING:
    _conforms: Source = GenericSource()
