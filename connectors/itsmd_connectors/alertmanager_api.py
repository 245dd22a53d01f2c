"""Alertmanager's API v2, read for reconciliation (docs/connectors.md, "Reconciliation
with Alertmanager"): `GET /api/v2/alerts`, every alert it holds.

Alertmanager leaves out alerts that have ended, so what it answers is what it
still holds: active, silenced or inhibited (`suppressed`), or not yet routed
(`unprocessed`). Its `endsAt` of a held alert is when it would time out, not an
end, so the alerts built here are firing. The fingerprint is computed from the
labels, as for webhooks (Alertmanager's own is the same function).

Every failure is an `AlertmanagerError` naming the Alertmanager, never its
credentials; one malformed alert makes the whole answer an error, because a round
must not take an alert it could not read for an absent one.
"""

from __future__ import annotations

import orjson

from itsmd.correlation.fingerprint import fingerprint
from itsmd.models import Alert, AlertStatus, HeldAlert
from itsmd_connectors.alertmanager import (
    MISSING,
    SOURCE,
    InvalidField,
    check_annotations,
    check_labels,
    check_string,
    check_time,
    describe,
)
from itsmd_connectors.peers import Peer, snippet


class AlertmanagerError(Exception):
    pass


class AlertmanagerAPI(Peer):
    """One Alertmanager (`Peer`: its URL, timeout and auth headers)."""

    async def held(self) -> tuple[HeldAlert, ...]:
        status, body = await self._send("GET", "/api/v2/alerts")
        if status != 200:
            raise self._error(f"HTTP {status}: {snippet(body)}")
        try:
            return parse_alerts(orjson.loads(body))
        except orjson.JSONDecodeError:
            raise self._error(f"not JSON: {snippet(body)}") from None
        except InvalidField as exc:
            raise self._error(f"malformed answer: {exc}") from None

    def _error(self, detail: str) -> AlertmanagerError:
        return AlertmanagerError(f"Alertmanager at {self.url}: {detail}")


def parse_alerts(doc: object) -> tuple[HeldAlert, ...]:
    """The alerts of a decoded `GET /api/v2/alerts` answer; InvalidField names the
    first field that is not what Alertmanager sends."""
    if not isinstance(doc, list):
        raise InvalidField("", f"expected an array of alerts, got {describe(doc)}")
    return tuple(_held(item, index) for index, item in enumerate(doc))


def _held(item: object, index: int) -> HeldAlert:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise InvalidField(where, f"expected an alert object, got {describe(item)}")
    try:
        labels = check_labels(item.get("labels", MISSING))
        alert = Alert(
            fingerprint=fingerprint(labels),
            status=AlertStatus.FIRING,
            labels=labels,
            annotations=check_annotations(item.get("annotations")),
            starts_at=check_time(item.get("startsAt", MISSING), "startsAt"),
            ends_at=None,
            generator_url=check_string(item.get("generatorURL"), "generatorURL"),
            source=SOURCE,
            raw={"startsAt": item.get("startsAt")},  # the sender gave it: an episode's start
        )
    except InvalidField as exc:
        raise InvalidField(f"{where}.{exc.field}", exc.message) from None
    status = item.get("status", MISSING)
    if not isinstance(status, dict):
        raise InvalidField(f"{where}.status", f"expected an object, got {describe(status)}")
    state = status.get("state", MISSING)
    if not isinstance(state, str):
        raise InvalidField(f"{where}.status.state", f"expected a string, got {describe(state)}")
    receivers = item.get("receivers")
    names = tuple(
        r["name"]
        for r in (receivers if isinstance(receivers, list) else [])
        if isinstance(r, dict) and isinstance(r.get("name"), str)
    )
    return HeldAlert(alert, state, names)
