"""The stored side of reconciliation with Alertmanager: which alerts it sent are
still firing, and the latest stored episode of a fingerprint."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, select

from itsmd.correlation.reconcile import Firing
from itsmd.models import AlertStatus
from itsmd.store.tables import alerts

_CHUNK = 500  # fingerprints bound in one statement


def firing_from(conn: Connection, source: str) -> list[Firing]:
    """Every firing episode that `source` sent, oldest first (identities only: labels
    are not read, which halves a round's scan of a large store)."""
    rows = conn.execute(
        select(alerts.c.fingerprint, alerts.c.starts_at)
        .where(alerts.c.status == AlertStatus.FIRING.value, alerts.c.source == source)
        .order_by(alerts.c.starts_at, alerts.c.id)
    )
    return [Firing(fp, starts_at) for fp, starts_at in rows]


def latest_starts(conn: Connection, fingerprints: Iterable[str]) -> dict[str, datetime]:
    """The start of the latest stored episode of each fingerprint that has one."""
    wanted = sorted(set(fingerprints))
    latest: dict[str, datetime] = {}
    for at in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(alerts.c.fingerprint, func.max(alerts.c.starts_at))
            .where(alerts.c.fingerprint.in_(wanted[at : at + _CHUNK]))
            .group_by(alerts.c.fingerprint)
        )
        latest.update({fp: starts_at for fp, starts_at in rows})
    return latest
