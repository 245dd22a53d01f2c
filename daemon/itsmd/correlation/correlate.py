"""Correlation: alerts + the stored state they touch + rules + now -> decisions.

Pure: the caller loads a `WorkingSet` (the alerts and incidents a batch can touch),
the `Correlator` changes it in memory and records what changed, and the caller
persists the changes in one transaction. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from itsmd.correlation import joins, lifecycle
from itsmd.correlation.priority import more_urgent, priority_of, urgency_from_severity
from itsmd.correlation.rules import (
    TIER_IMPACT,
    IncidentRule,
    MaintenanceWindow,
    RuleMatch,
    RuleSet,
    WindowAction,
    describe_window,
)
from itsmd.correlation.sla import SlaTargets, due_times
from itsmd.correlation.templates import Template, template_context
from itsmd.durations import format_duration, format_time
from itsmd.models import (
    Action,
    Alert,
    AlertStatus,
    Decision,
    Event,
    EventKind,
    Incident,
    IncidentStatus,
    IngestAction,
    Level,
    Priority,
    StoredAlert,
    TimelineEntry,
    TimelineKind,
    evolve,
    quick_init,
)

FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED

Identity = tuple[str, datetime]
# A firing alert whose startsAt is this close to a firing episode of its fingerprint
# continues that episode (docs/rules.md, "Alert identity and de-duplication").
SAME_START = timedelta(seconds=10)
NAME_MAX = 200  # incident service and assignee


@dataclass
class WorkingSet:
    """The stored state a batch can touch, plus a record of what correlation changed."""

    alerts: dict[Identity, StoredAlert] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)  # key -> active incident id
    # service -> its newest unresolved incident, among those loaded (attach_to_upstream)
    open_by_service: dict[str, int] = field(default_factory=dict)
    seen_fingerprints: set[str] = field(default_factory=set)
    # fingerprint -> the identities of its episodes in `alerts` (firing_episode looks
    # here: scanning every alert for each new one made a batch quadratic)
    episodes: dict[str, set[Identity]] = field(default_factory=dict)
    # Rows as loaded, so that the store writes only the columns that changed.
    loaded_alerts: dict[Identity, StoredAlert] = field(default_factory=dict)
    loaded_incidents: dict[int, Incident] = field(default_factory=dict)
    # What changed; ids below zero are new rows, numbered until the store assigns ids.
    dirty_alerts: dict[Identity, None] = field(default_factory=dict)  # ordered set
    dirty_incidents: set[int] = field(default_factory=set)
    # The timeline entries made, in order (`timeline` reads them all). None stands for
    # a placement the alert row holds (`implicit`), built only if it needs a row after
    # all (superseded in the same batch): most new alerts are placed so, and building
    # their entries took about a tenth of the writer's CPU.
    made: list[TimelineEntry | None] = field(default_factory=list)
    # Placements the alert rows hold (correlation/joins.py): the index of each in
    # `made`, by alert identity; the store writes no row for them.
    implicit: dict[Identity, int] = field(default_factory=dict)
    # Implicit placements of earlier batches that this one superseded: the store
    # writes each out as a row, in the place it had.
    superseded: list[TimelineEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _next_temp: int = -1

    def temp_id(self) -> int:
        self._next_temp -= 1
        return self._next_temp + 1

    def load_alert(self, alert: StoredAlert) -> None:
        self.alerts[alert.identity] = self.loaded_alerts[alert.identity] = alert
        self.seen_fingerprints.add(alert.fingerprint)
        self.episodes.setdefault(alert.fingerprint, set()).add(alert.identity)

    def load_incident(self, inc: Incident) -> None:
        assert inc.id is not None
        self.incidents[inc.id] = self.loaded_incidents[inc.id] = inc
        if inc.active:
            self.current[inc.key] = inc.id
        self._track_service(inc)

    def _track_service(self, inc: Incident) -> None:
        if inc.service is None or inc.id is None:
            return
        known = self.open_by_service.get(inc.service)
        if inc.status is not IncidentStatus.RESOLVED:
            newest = known is None or self.incidents[known].opened_at <= inc.opened_at
            if newest:
                self.open_by_service[inc.service] = inc.id
        elif known == inc.id:
            del self.open_by_service[inc.service]

    def put_alert(self, alert: StoredAlert) -> None:
        old = self.alerts.get(alert.identity)
        if old is not None and old.decision is not alert.decision:
            self._supersede(old)
            if alert.placed_after is not None:  # its placement is a row now
                alert = evolve(alert, placed_after=None)
        self.alerts[alert.identity] = alert
        self.dirty_alerts[alert.identity] = None
        self.seen_fingerprints.add(alert.fingerprint)
        self.episodes.setdefault(alert.fingerprint, set()).add(alert.identity)

    def _supersede(self, old: StoredAlert) -> None:
        """`old`'s decision gives way to another: its placement, if implicit, needs a
        row of its own now (the alert row will hold the new decision)."""
        index = self.implicit.pop(old.identity, None)
        if index is not None:  # made by this batch: its entry is written after all
            self.made[index] = joins.implicit_entry(old)
            return
        if old.placed_after is not None:  # an earlier batch's: written out where it was
            entry = joins.implicit_entry(old)
            self.superseded.append(evolve(entry, placed_after=old.placed_after))

    def place(self, row: StoredAlert, kind: TimelineKind, at: datetime, implicit: bool) -> None:
        """The timeline entry of `row`'s placement (`implicit`: at its first receipt,
        held by the alert row alone unless superseded)."""
        if implicit:
            self.implicit[row.identity] = len(self.made)
            self.made.append(None)
        else:
            self.made.append(joins.entry_of(row, kind, at))

    @property
    def timeline(self) -> list[TimelineEntry]:
        """Every entry made, in order, those of implicit placements built from their
        alert rows (which hold the same decision while the placement is implicit)."""
        held = {index: identity for identity, index in self.implicit.items()}
        return [
            joins.implicit_entry(self.alerts[held[i]]) if entry is None else entry
            for i, entry in enumerate(self.made)
        ]

    def put_incident(self, inc: Incident) -> None:
        assert inc.id is not None
        self.incidents[inc.id] = inc
        self.dirty_incidents.add(inc.id)
        if inc.active:
            self.current[inc.key] = inc.id
        elif self.current.get(inc.key) == inc.id:
            del self.current[inc.key]
        self._track_service(inc)

    def change_incident(self, inc: Incident, **changes: Any) -> Incident:
        """`inc` with `changes`, put in the set. A loaded incident is copied; one this
        batch made (a copy, or a new incident) is changed in place, as only the set
        holds it: an incident that 300 alerts join in one batch is copied once, not
        300 times. Only for the counters and times of `_IN_PLACE`, which callers do
        not read from an older reference after the change."""
        incident_id = inc.id
        assert incident_id is not None
        assert _IN_PLACE.issuperset(changes), changes
        if (
            self.incidents.get(incident_id) is not inc
            or self.loaded_incidents.get(incident_id) is inc
        ):
            inc = evolve(inc, **changes)
            self.put_incident(inc)
        else:
            for name, value in changes.items():
                object.__setattr__(inc, name, value)
            # Put again all the same: tracking the newest open incident of a service
            # depends on the order incidents are put in, not only on their fields.
            self.put_incident(inc)
        return inc

    def apply(self, transition: lifecycle.Transition) -> Incident:
        inc, entry, events = transition
        self.put_incident(inc)
        self.made.append(entry)
        self.events.extend(events)
        return inc

    def note(
        self,
        inc: Incident,
        at: datetime,
        kind: TimelineKind,
        message: str,
        alert_id: int | None = None,
    ) -> None:
        assert inc.id is not None
        self.made.append(TimelineEntry(inc.id, at, kind, message, alert_id=alert_id, rule=inc.rule))

    def opener(self, incident_id: int) -> StoredAlert | None:
        """The alert that opened an incident, if loaded."""
        return next(
            (
                a
                for a in self.alerts.values()
                if a.incident_id == incident_id and a.decision.action is Action.OPENED
            ),
            None,
        )

    def firing_episode(self, fingerprint: str) -> StoredAlert | None:
        """The latest firing episode of a fingerprint, if one is loaded."""
        identities = self.episodes.get(fingerprint)
        if not identities:
            return None  # a new alert, the common case
        loaded = (self.alerts[identity] for identity in identities)
        firing = [a for a in loaded if a.status is FIRING]
        return max(firing, key=lambda a: a.starts_at, default=None)


# What `WorkingSet.change_incident` may change in place.
_IN_PLACE = frozenset({"alert_count", "firing_count", "all_clear_at", "auto_resolve_at"})


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one incoming alert."""

    action: IngestAction
    incident_id: int | None


class Assessment(NamedTuple):
    impact: Level
    urgency: Level
    priority: Priority
    how: str  # e.g. "impact high x urgency high from severity critical"


class Router:
    """Routes alerts through a rule set, remembering the answer per fingerprint.

    The label set determines both the fingerprint and the route, so a batch full of
    re-sends routes each alert once.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._cache: dict[str, RuleMatch | None] = {}

    def route(self, fingerprint: str, labels: Mapping[str, str]) -> RuleMatch | None:
        try:
            return self._cache[fingerprint]
        except KeyError:
            route = self._cache[fingerprint] = self.rules.route(labels)
            return route


class Correlator:
    """Applies incoming alerts to a WorkingSet under one rule set."""

    def __init__(self, router: Router, ws: WorkingSet, sla: SlaTargets) -> None:
        self.router = router
        self.ws = ws
        self.sla = sla

    def apply(self, alert: Alert, now: datetime) -> Outcome:
        existing = self.ws.alerts.get(alert.identity)
        if existing is not None:
            return self._update(existing, alert, now)
        if alert.status is RESOLVED:
            return self._resolve_unmatched(alert, now)
        episode = self.ws.firing_episode(alert.fingerprint)
        if episode is not None and (
            "startsAt" not in alert.raw or abs(alert.starts_at - episode.starts_at) <= SAME_START
        ):
            # A sender that gives no startsAt means "still the same alert", as in
            # Alertmanager's API; and unclustered Alertmanagers each stamp their own
            # startsAt on an alert pushed without one, moments apart: the same alert.
            return self._update(episode, evolve(alert, starts_at=episode.starts_at), now)
        return self._place(self._new_row(alert, now), now)

    # ---- alerts already stored

    def _update(self, stored: StoredAlert, alert: Alert, now: datetime) -> Outcome:
        row = evolve(
            stored,
            last_received=now,
            receive_count=stored.receive_count + 1,
            annotations=alert.annotations,
            ends_at=alert.ends_at,
            status=alert.status,
        )
        self.ws.put_alert(row)
        if stored.status is alert.status:
            self.ws.events.append(Event(EventKind.DUPLICATE))
            return Outcome(IngestAction.DUPLICATE, stored.incident_id)
        if alert.status is RESOLVED:
            self._alert_resolved(row, now)
            return Outcome(IngestAction.UPDATED, row.incident_id)
        return self._refired(row, now)

    def _resolve_unmatched(self, alert: Alert, now: datetime) -> Outcome:
        """A resolve whose startsAt matches no episode resolves the latest firing one."""
        episode = self.ws.firing_episode(alert.fingerprint)
        if episode is not None:
            row = evolve(
                episode,
                status=RESOLVED,
                ends_at=alert.ends_at,
                last_received=now,
                receive_count=episode.receive_count + 1,
            )
            self.ws.put_alert(row)
            self._alert_resolved(row, now)
            return Outcome(IngestAction.UPDATED, row.incident_id)
        if alert.fingerprint in self.ws.seen_fingerprints:
            # Already resolved: a re-send of a resolve whose startsAt differed.
            self.ws.events.append(Event(EventKind.DUPLICATE))
            return Outcome(IngestAction.DUPLICATE, None)
        decision = Decision(
            Action.ORPHAN_RESOLVE, "resolved alert never seen firing: stored, opens nothing"
        )
        self.ws.put_alert(evolve(self._new_row(alert, now), decision=decision))
        self.ws.events.append(Event(EventKind.ORPHAN))
        return Outcome(IngestAction.ORPHAN, None)

    def resolve_absent(self, identity: Identity, ended: datetime, why: str, now: datetime) -> bool:
        """Reconciliation: a stored firing episode that no Alertmanager holds any more
        ended at `ended`; False when it is no longer firing (a resolve came first)."""
        stored = self.ws.alerts.get(identity)
        if stored is None or stored.status is RESOLVED:
            return False
        row = evolve(stored, status=RESOLVED, ends_at=max(ended, stored.starts_at))
        self.ws.put_alert(row)
        how = f"resolved by reconciliation: {why}"
        self._alert_resolved(row, now, TimelineKind.RECONCILED, how)
        return True

    def _alert_resolved(
        self,
        row: StoredAlert,
        now: datetime,
        kind: TimelineKind = TimelineKind.ALERT_RESOLVED,
        how: str = "resolved",
    ) -> None:
        inc = self.ws.incidents.get(row.incident_id) if row.incident_id is not None else None
        if inc is None:
            return
        firing = max(inc.firing_count - 1, 0)
        all_clear_at = now if firing == 0 else None
        inc = self.ws.change_incident(inc, firing_count=firing, all_clear_at=all_clear_at)
        alertname = row.labels.get("alertname", row.fingerprint)
        self.ws.note(
            inc,
            now,
            kind,
            f"alert {alertname} ({row.fingerprint}) {how}; {firing} still firing",
            row.id,
        )
        if firing == 0 and inc.status is not IncidentStatus.RESOLVED:
            self._start_hold(inc, now)

    def _start_hold(self, inc: Incident, now: datetime) -> None:
        hold = inc.policy.auto_resolve
        if hold is None:
            self.ws.note(
                inc,
                now,
                TimelineKind.HOLD_STARTED,
                "all alerts resolved; auto_resolve is never: waiting for a human",
            )
        elif not hold:
            self._auto_resolve(inc, now)
        else:
            inc = evolve(inc, auto_resolve_at=now + hold)
            self.ws.put_incident(inc)
            self.ws.note(
                inc,
                now,
                TimelineKind.HOLD_STARTED,
                f"all alerts resolved; resolves automatically at "
                # Whole seconds for the reader: the incident keeps the exact time.
                f"{format_time((now + hold).replace(microsecond=0))} unless an alert fires within "
                f"{format_duration(hold)}",
            )

    def _auto_resolve(self, inc: Incident, now: datetime) -> None:
        self.ws.apply(lifecycle.auto_resolve(inc, now))

    def resolve_due(self, now: datetime, only: Iterable[int] | None = None) -> int:
        """Auto-resolve every loaded incident (or those of `only`) whose hold has ended."""
        candidates = (
            self.ws.incidents.values()
            if only is None
            else [self.ws.incidents[i] for i in only if i in self.ws.incidents]
        )
        due = [
            i
            for i in candidates
            if i.auto_resolve_at is not None
            and i.auto_resolve_at <= now
            and i.status is not IncidentStatus.RESOLVED
            and i.firing_count == 0
        ]
        for inc in due:
            self._auto_resolve(inc, now)
        return len(due)

    def _refired(self, row: StoredAlert, now: datetime) -> Outcome:
        """The same episode fires again after a resolve (e.g. resolve_timeout expired)."""
        inc = self.ws.incidents.get(row.incident_id) if row.incident_id is not None else None
        if inc is not None and inc.status is not IncidentStatus.RESOLVED and inc.active:
            route = self.router.route(row.fingerprint, row.labels)
            self._take(
                inc,
                row,
                now,
                Action.JOINED,
                "the alert fired again",
                TimelineKind.ALERT_REFIRED,
                rule=route.rule if route else None,
            )
            return Outcome(IngestAction.UPDATED, inc.id)
        outcome = self._place(row, now)
        if inc is not None and outcome.incident_id != inc.id:
            # One stored alert belongs to one incident: the episode moves, and the
            # incident it leaves keeps the move in its timeline.
            assert inc.id is not None
            inc = self.ws.incidents[inc.id]  # placing may have closed it to alerts
            self.ws.put_incident(evolve(inc, alert_count=max(inc.alert_count - 1, 0)))
            alertname = row.labels.get("alertname", row.fingerprint)
            target = self.ws.incidents.get(outcome.incident_id or 0)
            where = "no incident" if target is None else _name(target)
            self.ws.note(
                inc,
                now,
                TimelineKind.ALERT_MOVED,
                f"alert {alertname} ({row.fingerprint}) fired again after this incident "
                f"resolved; it moved to {where}",
                row.id,
            )
        # The alert is stored already: a re-fire updates it, whichever incident takes it.
        if outcome.action is IngestAction.NEW:
            return evolve(outcome, action=IngestAction.UPDATED)
        return outcome

    # ---- placing a firing alert

    def _new_row(self, alert: Alert, now: datetime) -> StoredAlert:
        return StoredAlert(
            id=self.ws.temp_id(),
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            status=alert.status,
            ends_at=alert.ends_at,
            labels=alert.labels,
            annotations=alert.annotations,
            generator_url=alert.generator_url,
            source=alert.source,
            first_received=now,
            last_received=now,
            receive_count=1,
            incident_id=None,
            decision=_UNDECIDED,
        )

    def _place(self, row: StoredAlert, now: datetime, prefix: str = "") -> Outcome:
        route = self.router.route(row.fingerprint, row.labels)
        if route is None:
            decision = Decision(Action.UNROUTED, "no incident rule matched; stored only")
            self.ws.put_alert(evolve(row, decision=decision, incident_id=None))
            self.ws.events.append(Event(EventKind.UNROUTED))
            return Outcome(IngestAction.UNROUTED, None)
        current_id = self.ws.current.get(route.key)
        inc = self.ws.incidents.get(current_id) if current_id is not None else None
        matched = f"{prefix}matched rule {route.rule.name} {route.rule.match_text}; key {route.key}"
        if self.router.rules.maintenance:
            window = self.router.rules.window(row.labels, now, WindowAction.SUPPRESS)
            # An incident open since before the window started is not hidden.
            if window is not None and not _open_since(inc, window[1]):
                return self._suppress(row, route, matched, *window)
        if route.rule.attach_to_upstream:
            root = self._upstream_incident(row)
            if root is not None:
                up, root_inc = root
                symptom = (
                    f"{matched}; attached as a symptom of {_name(root_inc)}: upstream service "
                    f"{up} of {row.labels['service']} has it open"
                )
                kind = TimelineKind.SYMPTOM_ATTACHED
                self._take(root_inc, row, now, Action.ATTACHED, symptom, kind)
                self._raise_for_symptom(root_inc.id, row, route, now)
                return Outcome(IngestAction.NEW, root_inc.id)
        if inc is None:
            return self._open(row, route, now, f"{matched}; no incident of this key: opened one")
        if inc.status is not IncidentStatus.RESOLVED:
            why = _still_takes(inc, now)
            if why is not None:
                reason = f"{matched}; {_name(inc)} {why}"
                self._take(inc, row, now, Action.JOINED, reason, rule=route.rule)
                return Outcome(IngestAction.NEW, inc.id)
            closed = (
                f"window {format_duration(inc.policy.window)} after the last alert "
                f"resolved at {format_time(inc.all_clear_at or now)} has passed"
            )
        else:
            assert inc.resolved_at is not None
            since = now - inc.resolved_at
            if inc.policy.reopen and since <= inc.policy.reopen:
                why = (
                    f"{_name(inc)} resolved {format_duration(since)} ago, within reopen "
                    f"{format_duration(inc.policy.reopen)}"
                )
                inc = self.ws.apply(
                    lifecycle.reopen(inc, "itsmd", now, f"a matching alert fired; {why}")
                )
                self.ws.events.append(Event(EventKind.REOPENED, inc.id))
                reason = f"{matched}; reopened {why}"
                self._take(inc, row, now, Action.REOPENED, reason, rule=route.rule)
                return Outcome(IngestAction.NEW, inc.id)
            reopen = format_duration(inc.policy.reopen)
            closed = f"it was resolved {format_duration(since)} ago (reopen {reopen})"
        self.ws.apply(
            lifecycle.close_to_alerts(
                inc, now, f"takes no more alerts: {closed}; a new incident takes key {route.key}"
            )
        )
        return self._open(
            row,
            route,
            now,
            f"{matched}; {_name(inc)} takes no more alerts ({closed}): opened a new one",
        )

    def _upstream_incident(self, row: StoredAlert) -> tuple[str, Incident] | None:
        """The open incident of the nearest upstream service of the alert's service."""
        service = row.labels.get("service")
        for up in self.router.rules.upstream(service) if service else ():
            root_id = self.ws.open_by_service.get(up)
            if root_id is not None:
                return up, self.ws.incidents[root_id]
        return None

    def _suppress(
        self,
        row: StoredAlert,
        route: RuleMatch,
        matched: str,
        window: MaintenanceWindow,
        start: datetime,
        end: datetime,
    ) -> Outcome:
        reason = f"{matched}; suppressed by {window.describe()} until {format_time(end)}"
        decision = Decision(
            Action.SUPPRESSED, reason, route.rule.name, route.key, window.name, window.change
        )
        self.ws.put_alert(evolve(row, decision=decision, incident_id=None))
        self.ws.events.append(Event(EventKind.SUPPRESSED, window=window.name))
        return Outcome(IngestAction.SUPPRESSED, None)

    def release_suppressed(self, now: datetime, only: Iterable[Identity] | None = None) -> int:
        """Correlate the loaded suppressed alerts (or those of `only`) that still fire
        and that no window suppresses any more (their window ended, or rules changed)."""
        released = 0
        rows = (
            list(self.ws.alerts.values())
            if only is None
            else [self.ws.alerts[i] for i in only if i in self.ws.alerts]
        )
        for row in rows:
            if row.decision.action is not Action.SUPPRESSED or row.status is not FIRING:
                continue
            if self.router.rules.window(row.labels, now, WindowAction.SUPPRESS) is None:
                # Keep naming the window (and its change) on the alert it touched.
                prefix = f"suppressed by {_suppressed_by(row.decision)} until it ended; "
                self._place(row, now, prefix=prefix)
                released += 1
        return released

    def _take(
        self,
        inc: Incident,
        row: StoredAlert,
        now: datetime,
        action: Action,
        reason: str,
        kind: TimelineKind = TimelineKind.ALERT_JOINED,
        rule: IncidentRule | None = None,
    ) -> None:
        """`rule`: the alert's own rule, when it joins an incident of that rule."""
        assert inc.id is not None
        new_alert = row.incident_id != inc.id
        # Placed at its first receipt: the alert row says all its timeline entry would.
        implicit = row.decision is _UNDECIDED and row.first_received == now
        if inc.auto_resolve_at is not None:
            self.ws.note(
                inc,
                now,
                TimelineKind.HOLD_CANCELLED,
                "auto-resolve hold cancelled: an alert fired again",
            )
        inc = self.ws.change_incident(
            inc,
            alert_count=inc.alert_count + (1 if new_alert else 0),
            firing_count=inc.firing_count + 1,
            all_clear_at=None,
            auto_resolve_at=None,
        )
        decision = Decision(action, reason, inc.rule, inc.key)
        if row.identity in self.ws.alerts:
            row = evolve(row, incident_id=inc.id, decision=decision)
        else:  # a new row only this call holds (`_new_row`): decided in place
            object.__setattr__(row, "incident_id", inc.id)
            object.__setattr__(row, "decision", decision)
        self.ws.put_alert(row)
        assert not implicit or kind is joins.kind_of(action)
        self.ws.place(row, kind, now, implicit)
        if rule is not None and rule.name == inc.rule and rule.urgency_follows_severity:
            inc = self._raise_urgency(inc, row, now)
        if inc.known_error is None and self.router.rules.known_errors:
            self._attach_known_error(inc, row, now)

    def _raise_urgency(self, inc: Incident, row: StoredAlert, now: datetime) -> Incident:
        """A more severe alert joined: urgency (from severity) and so priority rise,
        never fall, and the SLA due times follow the new priority from the opening.
        A response already made keeps its due time: it was judged against the
        priority of its moment, not breached after the fact (alerts join only
        unresolved incidents, so the resolution target is always still open)."""
        severity = row.labels.get("severity")
        urgency = urgency_from_severity(severity)
        if not more_urgent(urgency, inc.urgency):
            return inc
        priority = priority_of(inc.impact, urgency)
        alertname = row.labels.get("alertname", row.fingerprint)
        why = (
            f"alert {alertname} ({row.fingerprint}) has severity {severity}, "
            f"urgency {inc.urgency} -> {urgency} (impact {inc.impact})"
        )
        return self._raise(inc, row, now, Assessment(inc.impact, urgency, priority, ""), why)

    def _raise_for_symptom(
        self, root_id: int | None, row: StoredAlert, route: RuleMatch, now: datetime
    ) -> None:
        """A symptom that would open an incident more urgent than its root raises the
        root to that priority: an outage never hides inside a calmer incident."""
        assert root_id is not None
        root = self.ws.incidents[root_id]
        own = self._assess(route, row, [])
        if own.priority >= root.priority:  # "P1" < "P2": lower is more urgent
            return
        alertname = row.labels.get("alertname", row.fingerprint)
        why = (
            f"symptom {alertname} ({row.fingerprint}) of service {row.labels.get('service')} "
            f"would open a {own.priority} incident of its own ({own.how})"
        )
        impact = own.impact if more_urgent(own.impact, root.impact) else root.impact
        urgency = own.urgency if more_urgent(own.urgency, root.urgency) else root.urgency
        priority = min(own.priority, priority_of(impact, urgency))
        self._raise(root, row, now, Assessment(impact, urgency, priority, own.how), why)

    def _raise(
        self, inc: Incident, row: StoredAlert, now: datetime, to: Assessment, why: str
    ) -> Incident:
        """Priority rises (never falls) and the SLA due times follow it from the
        opening. A response already made keeps its due time: it was judged against
        the priority of its moment, not breached after the fact (alerts join only
        unresolved incidents, so the resolution target is always still open)."""
        respond_due, resolve_due = due_times(to.priority, inc.opened_at, self.sla)
        if inc.responded_at is not None:
            respond_due = inc.respond_due
        raised = evolve(
            inc,
            impact=to.impact,
            urgency=to.urgency,
            priority=to.priority,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )
        self.ws.put_incident(raised)
        targets = (("respond", respond_due), ("resolve", resolve_due))
        dues = [f"{kind} due {format_time(due)}" for kind, due in targets if due is not None]
        self.ws.note(
            raised,
            now,
            TimelineKind.PRIORITY_RAISED,
            f"priority {inc.priority} -> {to.priority}: {why}"
            + (f"; SLA {', '.join(dues)}" if dues else ""),
            row.id,
        )
        return raised

    def _attach_known_error(self, inc: Incident, row: StoredAlert, now: datetime) -> None:
        known = self.router.rules.known_error(row.labels)
        if known is None:
            return
        context = template_context(row.labels, row.annotations, inc.rule, inc.key, inc.labels)
        notes: list[str] = []
        workaround = _render(known.workaround, context, notes, "workaround")
        inc = evolve(inc, known_error=workaround)
        self.ws.put_incident(inc)
        alertname = row.labels.get("alertname", row.fingerprint)
        self.ws.note(
            inc,
            now,
            TimelineKind.KNOWN_ERROR,
            f"known error {known.name} matches alert {alertname} ({row.fingerprint}): "
            f"workaround attached: {workaround}" + "".join(f"; {n}" for n in notes),
            row.id,
        )

    def _assess(self, route: RuleMatch, row: StoredAlert, notes: list[str]) -> Assessment:
        """The impact, urgency and priority an alert gives the incident it opens (the
        rule's, or the service tier's impact and the severity's urgency), and how."""
        rule = route.rule
        context = template_context(row.labels, row.annotations, rule.name, route.key, route.group)
        impact = _level(rule.impact, context, notes, Level.MEDIUM, "impact")
        service = self.router.rules.service(row.labels.get("service", ""))
        if not rule.impact_set and service is not None and service.tier is not None:
            impact = Level(TIER_IMPACT[service.tier])
            notes.append(f"impact {impact} from service {service.name} tier {service.tier}")
        severity = row.labels.get("severity")
        if rule.urgency is None:
            urgency = urgency_from_severity(severity)
            urgency_why = f"urgency {urgency} from severity {severity or '(none)'}"
        else:
            urgency = _level(rule.urgency, context, notes, Level.LOW, "urgency")
            urgency_why = f"urgency {urgency}"
        priority = rule.priority or priority_of(impact, urgency)
        how = "set by rule" if rule.priority else f"impact {impact} x {urgency_why}"
        return Assessment(impact, urgency, priority, how)

    def _open(self, row: StoredAlert, route: RuleMatch, now: datetime, reason: str) -> Outcome:
        rule = route.rule
        context = template_context(row.labels, row.annotations, rule.name, route.key, route.group)
        notes: list[str] = []
        impact, urgency, priority, how = self._assess(route, row, notes)
        respond_due, resolve_due = due_times(priority, now, self.sla)
        inc = Incident(
            id=self.ws.temp_id(),
            rule=rule.name,
            key=route.key,
            status=IncidentStatus.OPEN,
            title=" ".join(_render(rule.title, context, notes, "title").split()) or rule.name,
            description=_render(rule.description, context, notes, "description"),
            priority=priority,
            impact=impact,
            urgency=urgency,
            # Stored in columns of NAME_MAX characters; the labels keep the whole value.
            service=(row.labels.get("service") or "")[:NAME_MAX] or None,
            assignee=_render(rule.assignee, context, notes, "assignee")[:NAME_MAX] or None
            if rule.assignee
            else None,
            labels=dict(route.group),
            opened_at=now,
            acknowledged_at=None,
            resolved_at=None,
            alert_count=0,
            firing_count=0,
            policy=rule.policy,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )
        rules = self.router.rules
        problem_rule = rules.problem_rule(row.labels) if rules.problem_rules else None
        if problem_rule is not None:  # the store counts recurrences once it has ids
            inc = evolve(inc, problem_key=problem_rule.key_for(row.labels))
        self.ws.put_incident(inc)
        self.ws.note(
            inc,
            now,
            TimelineKind.OPENED,
            f"opened by rule {rule.name} for key {route.key}; priority {priority} ({how})"
            + "".join(f"; {n}" for n in notes),
        )
        self.ws.events.append(Event(EventKind.OPENED, inc.id, rule=rule.name, priority=priority))
        annotated = (
            self.router.rules.window(row.labels, now, WindowAction.ANNOTATE)
            if self.router.rules.maintenance
            else None
        )
        if annotated is not None:
            window, _, end = annotated
            self.ws.note(
                inc,
                now,
                TimelineKind.MAINTENANCE,
                f"opened during {window.describe()} until {format_time(end)}",
            )
        self._take(inc, row, now, Action.OPENED, reason)
        return Outcome(IngestAction.NEW, inc.id)


# The decision of an alert not correlated yet (`_new_row`).
_UNDECIDED = Decision(Action.UNROUTED, "not correlated yet")


def _suppressed_by(decision: Decision) -> str:
    if decision.suppressed_by is None:
        return "a maintenance window"
    return describe_window(decision.suppressed_by, WindowAction.SUPPRESS, decision.change)


def _open_since(inc: Incident | None, moment: datetime) -> bool:
    return inc is not None and inc.status is not IncidentStatus.RESOLVED and inc.opened_at < moment


def _name(inc: Incident) -> str:
    """The incident's id, or a description while it has none (opened in this batch)."""
    return inc.ref if inc.id is not None and inc.id > 0 else "the incident opened for it"


def _still_takes(inc: Incident, now: datetime) -> str | None:
    """Why an unresolved incident still takes alerts of its key, or None."""
    if inc.firing_count > 0:
        return f"takes alerts of its key while any fires ({inc.firing_count} firing)"
    if inc.all_clear_at is None:
        return "takes alerts of its key (none resolved yet)"
    if now - inc.all_clear_at <= inc.policy.window:
        return (
            f"takes alerts of its key for window {format_duration(inc.policy.window)} "
            f"after its last alert resolved at {format_time(inc.all_clear_at)}"
        )
    return None


def _render(
    template: Template | None, context: Mapping[str, Any], notes: list[str], what: str
) -> str:
    if template is None:
        return ""
    text, error = template.render(context)
    if error is not None:
        notes.append(f"{what} {error}")
    return text


def _level(
    spec: Level | Template, context: Mapping[str, Any], notes: list[str], fallback: Level, what: str
) -> Level:
    if isinstance(spec, Level):
        return spec
    text = _render(spec, context, notes, what).strip().lower()
    try:
        return Level(text)
    except ValueError:
        notes.append(f"{what} template gave {text!r}, not high/medium/low: used {fallback}")
        return fallback
