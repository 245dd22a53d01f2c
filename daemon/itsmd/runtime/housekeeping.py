"""Scheduled jobs that change incidents: they go through the writer like any change."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from itsmd.correlation.correlate import Correlator, Router, WorkingSet
from itsmd.correlation.rules import RuleSet, rule_files
from itsmd.correlation.sla import SlaTargets
from itsmd.runtime.state import ReloadResult, Runtime
from itsmd.runtime.writer import note_events
from itsmd.store import repo, slaclock
from itsmd.store.engine import StoreUnavailable

log = logging.getLogger(__name__)


async def sweep_holds(runtime: Runtime) -> int:
    """Auto-resolve incidents whose hold has ended, and correlate suppressed alerts
    whose maintenance window ended; returns how many incidents resolved."""
    writer = runtime.writer
    if writer is None or not writer.running:
        return 0

    rules, sla = runtime.rules, runtime.settings.sla

    def work(conn: Connection, now: datetime) -> int:
        holds = repo.load_due_holds(conn, now)
        resolved = Correlator(Router(rules), holds, sla).resolve_due(now)
        if resolved:
            repo.flush(conn, holds)
        for ws in [holds, *_release(conn, now, rules, sla)]:
            note_events(conn, ws.events)
        return resolved

    try:
        resolved = await writer.run(work)
        if runtime.db is not None:  # windows another replica created or deleted
            version = runtime.windows_version
            runtime.set_api_windows(await runtime.db.read(repo.api_windows), read_at=version)
    except StoreUnavailable as exc:
        log.warning("auto-resolve sweep skipped: %s", exc)
        return 0
    return resolved


async def mark_sla_breaches(runtime: Runtime) -> int:
    """The SLA clock: mark each missed respond or resolve target once; returns how many."""
    writer = runtime.writer
    if writer is None or not writer.running:
        return 0
    try:
        targets = runtime.settings.sla
        breaches = await writer.run(lambda conn, now: slaclock.mark_breaches(conn, now, targets))
    except StoreUnavailable as exc:
        log.warning("SLA clock skipped: %s", exc)
        return 0
    for b in breaches:
        runtime.metrics.sla_breaches.labels(b.incident.priority.value, b.kind).inc()
    if breaches:
        log.info(
            "SLA: %d targets missed (%s)",
            len(breaches),
            ", ".join(f"{b.incident.ref} {b.kind}" for b in breaches[:10]),
        )
    return len(breaches)


def _release(conn: Connection, now: datetime, rules: RuleSet, sla: SlaTargets) -> list[WorkingSet]:
    suppressed = repo.suppressed_firing(conn)
    if not suppressed:
        return []
    router = Router(rules)
    keys = {r.key for a in suppressed if (r := router.route(a.fingerprint, a.labels)) is not None}
    ws = repo.load_working_set(conn, [a.identity for a in suppressed], [], keys)
    if Correlator(router, ws, sla).release_suppressed(now):
        repo.flush(conn, ws)
        log.info("correlated %d alerts whose maintenance window ended", len(ws.dirty_alerts))
    return [ws]


class RuleWatch:
    """Reloads when the config file or a rule file changes on disk (`watch_rules`).

    It compares names, sizes and modification times, so an editor's save, a new
    file in the rules directory or a removed one all count. A reload that fails
    keeps the old rules, as SIGHUP does, and is not retried until the files
    change again.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seen = self._look()

    async def check(self) -> ReloadResult | None:
        now = self._look()
        if now == self.seen:
            return None
        self.seen = now
        log.info("rule or config files changed on disk: reloading")
        return self.runtime.reload()

    def _look(self) -> tuple[tuple[str, int, int], ...]:
        settings = self.runtime.settings
        paths = rule_files(settings.rules)
        if settings.config_file is not None:
            paths.append(Path(settings.config_file))
        state = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                state.append((str(path), -1, -1))
                continue
            state.append((str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(state)
