"""The reconciliation job: every `reconcile_every`, ask every Alertmanager what it
holds and repair what itsmd stored differently (docs/connectors.md, "Reconciliation
with Alertmanager"). The decisions are `correlation.reconcile`'s; this module asks,
reads, writes through the writer, counts and reports.

One replica reconciles at a time: the one that holds the scheduling lease (`leads`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, select

from itsmd.correlation.correlate import Correlator, Router
from itsmd.correlation.reconcile import Answer, Ingest, Plan, Reconciler, Resolve
from itsmd.durations import format_duration, format_optional_time
from itsmd.models import HeldAlert, TimelineEntry, TimelineKind
from itsmd.notify.config import AlertmanagerPeers
from itsmd.runtime.state import Runtime
from itsmd.runtime.writer import note_events
from itsmd.store import firing, repo
from itsmd.store.engine import StoreUnavailable
from itsmd.store.tables import alerts

log = logging.getLogger(__name__)
SOURCE = "alertmanager"  # the source of the alerts Alertmanager sends (webhooks)


class AlertmanagerView(Protocol):
    """One Alertmanager as reconciliation asks it; `held` raises when it cannot tell."""

    @property
    def url(self) -> str: ...

    async def held(self) -> tuple[HeldAlert, ...]: ...


@dataclass(frozen=True, slots=True)
class Round:
    at: datetime
    duration_s: float
    answers: tuple[Answer, ...]
    plan: Plan
    resolved: int
    ingested: int

    def as_json(self) -> dict[str, Any]:
        return {
            "at": format_optional_time(self.at),
            "duration_s": round(self.duration_s, 3),
            "complete": self.plan.complete,
            "alertmanagers": [
                {
                    "url": a.url,
                    "answered": a.error is None,
                    "alerts": len(a.held) if a.error is None else None,
                    "error": a.error,
                }
                for a in self.answers
            ],
            "resolved": self.resolved,
            "ingested": self.ingested,
            "missing": self.plan.missing,
            "unseen": self.plan.unseen,
        }


class Reconciliation:
    def __init__(
        self,
        runtime: Runtime,
        views: Callable[[AlertmanagerPeers], Sequence[AlertmanagerView]],
        leads: Callable[[], bool],
    ) -> None:
        self.runtime, self._views, self._leads = runtime, views, leads
        self._reconciler: Reconciler | None = None
        self._peers: AlertmanagerPeers | None = None
        self.last: Round | None = None
        self._failing: set[str] = set()  # Alertmanagers whose last answer was an error
        self._scheduler: AsyncIOScheduler | None = None
        self._stopping = False

    # ---- scheduling

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self.reloaded()

    async def stop(self) -> None:
        """A round still running is cut off: what it wrote is whole (each write is
        one transaction) and the next leader's round finishes the rest."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)

    def reloaded(self) -> None:
        """(Re)schedule the rounds for the current config; a reload hook."""
        peers = self.runtime.settings.connectors.alertmanager
        if self._scheduler is None or peers == self._peers:
            return
        if self._scheduler.get_job("reconcile") is not None:
            self._scheduler.remove_job("reconcile")
        self._peers = peers
        if peers is None:
            self._reconciler = None
            return
        if self._reconciler is None:
            self._reconciler = Reconciler(peers.grace, peers.receiver)
        else:  # the clocks of absence already running keep running
            self._reconciler.grace, self._reconciler.receiver = peers.grace, peers.receiver
        self._scheduler.add_job(
            self._scheduled,
            "interval",
            id="reconcile",
            seconds=peers.reconcile_every.total_seconds(),
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )

    async def _scheduled(self) -> None:
        try:
            await self.round()
        except StoreUnavailable as exc:
            log.warning("reconciliation round skipped: %s", exc)
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    # ---- a round

    async def round(self) -> Round | None:
        """One round, if reconciliation is configured and this replica leads."""
        peers, reconciler = self._peers, self._reconciler
        leads = peers is not None and self._leads()
        self.runtime.metrics.leader.labels("reconcile").set(1 if leads else 0)
        if peers is None or reconciler is None or not leads:
            return None
        started, now = time.perf_counter(), self.runtime.clock()
        answers = await asyncio.gather(*(self._ask(v) for v in self._views(peers)))
        db = self.runtime.db
        assert db is not None
        stored = await db.read(lambda conn: firing.firing_from(conn, SOURCE))
        wanted = reconciler.candidates(stored, answers)
        latest = await db.read(lambda conn: firing.latest_starts(conn, wanted)) if wanted else {}
        plan = reconciler.plan(stored, latest, answers, now)
        resolved = await self._resolve(plan.resolve) if plan.resolve else 0
        ingested = await self._ingest(plan.ingest) if plan.ingest else 0
        metrics = self.runtime.metrics
        metrics.reconcile_repairs.labels("resolved").inc(resolved)
        metrics.reconcile_repairs.labels("ingested").inc(ingested)
        if plan.complete:
            metrics.reconcile_last_complete.set(now.timestamp())
        if resolved:
            log.info("reconciliation: %d alerts no Alertmanager holds resolved", resolved)
        if ingested:
            log.info("reconciliation: %d alerts Alertmanager never delivered ingested", ingested)
        self.last = Round(
            now, time.perf_counter() - started, tuple(answers), plan, resolved, ingested
        )
        return self.last

    async def _ask(self, view: AlertmanagerView) -> Answer:
        try:
            held = await view.held()
        except Exception as exc:  # noqa: BLE001 - any failure only means "no answer"
            self.runtime.metrics.reconcile_errors.inc()
            if view.url not in self._failing:
                log.warning("reconciliation: %s; this round resolves nothing", exc)
                self._failing.add(view.url)
            return Answer(view.url, error=str(exc) or type(exc).__name__)
        if view.url in self._failing:
            self._failing.discard(view.url)
            log.info("reconciliation: Alertmanager at %s answers again", view.url)
        return Answer(view.url, held)

    async def _resolve(self, repairs: Sequence[Resolve]) -> int:
        rules, sla = self.runtime.rules, self.runtime.settings.sla

        def work(conn: Connection, now: datetime) -> int:
            identities = [r.firing.identity for r in repairs]
            ws = repo.load_working_set(conn, identities, [i[0] for i in identities], [])
            correlator = Correlator(Router(rules), ws, sla)
            done = sum(
                correlator.resolve_absent(r.firing.identity, r.since, r.why, now) for r in repairs
            )
            if done:
                repo.flush(conn, ws)
                note_events(conn, ws.events)
            return done

        assert self.runtime.writer is not None
        return await self.runtime.writer.run(work)

    async def _ingest(self, repairs: Sequence[Ingest]) -> int:
        """As if Alertmanager had sent them, then a `reconciled` line on each incident
        they went to, saying why."""
        writer = self.runtime.writer
        assert writer is not None
        result = await writer.ingest([r.alert for r in repairs])

        def note(conn: Connection, now: datetime) -> None:
            entries = []
            for r in repairs:
                fp, starts_at = r.alert.identity
                row = conn.execute(
                    select(alerts.c.id, alerts.c.incident_id).where(
                        alerts.c.fingerprint == fp, alerts.c.starts_at == starts_at
                    )
                ).first()
                if row is None or row.incident_id is None:
                    continue
                name = r.alert.labels.get("alertname", fp)
                message = f"alert {name} ({fp}) ingested by reconciliation: {r.why}"
                entries.append(
                    TimelineEntry(
                        row.incident_id, now, TimelineKind.RECONCILED, message, alert_id=row.id
                    )
                )
            repo.add_timeline(conn, entries, notify=False)

        await writer.run(note)
        return result.new

    # ---- status

    def status(self) -> dict[str, Any]:
        """`GET /api/v1/reconcile`: the configuration and this replica's last round."""
        peers = self._peers
        if peers is None:
            return {
                "configured": False,
                "alertmanagers": [],
                "reconcile_every": None,
                "grace": None,
                "receiver": None,
                "leader": False,
                "last_round": None,
            }
        return {
            "configured": True,
            "alertmanagers": [v.url for v in self._views(peers)],
            "reconcile_every": format_duration(peers.reconcile_every),
            "grace": format_duration(peers.grace),
            "receiver": peers.receiver,
            "leader": self._leads(),
            "last_round": self.last.as_json() if self.last is not None else None,
        }
