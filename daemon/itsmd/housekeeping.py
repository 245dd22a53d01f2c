"""Scheduled jobs that change incidents: they go through the writer like any change."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection

from itsmd.correlate import Correlator, Router, WorkingSet
from itsmd.runtime import Runtime
from itsmd.store import repo
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)


async def sweep_holds(runtime: Runtime) -> int:
    """Auto-resolve incidents whose hold has ended; returns how many."""
    writer = runtime.writer
    if writer is None or not writer.running:
        return 0

    rules, sla = runtime.rules, runtime.settings.sla

    def work(conn: Connection, now: datetime) -> WorkingSet:
        ws = repo.load_due_holds(conn, now)
        if Correlator(Router(rules), ws, sla).resolve_due(now):
            repo.flush(conn, ws)
        return ws

    try:
        ws = await writer.run(work)
    except StoreUnavailable as exc:
        log.warning("auto-resolve sweep skipped: %s", exc)
        return 0
    runtime.metrics.record(ws.events)
    return sum(1 for e in ws.events if e.kind == "resolved")
