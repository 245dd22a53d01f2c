"""The daemon's own Prometheus metrics, one registry per app (no global state).

Label values stay bounded: rule names, priorities, sources and reasons, never
alert label values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from itsmd.models import Event, EventKind, Priority

# Human time scales: a minute to a week.
_DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created is scrape noise
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.alerts_received = Counter(
            "itsmd_alerts_received",
            "Alerts received, by source and alert status.",
            ["source", "status"],
            registry=r,
        )
        self.alerts_rejected = Counter(
            "itsmd_alerts_rejected",
            "Ingest requests rejected whole, by reason; invalid_alert counts alerts refused "
            "one by one.",
            ["reason"],
            registry=r,
        )
        self.alerts_unrouted = Counter(
            "itsmd_alerts_unrouted", "Alerts stored that no incident rule matched.", registry=r
        )
        self.alerts_suppressed = Counter(
            "itsmd_alerts_suppressed",
            "Alerts stored without an incident because a maintenance window suppressed them.",
            ["window"],
            registry=r,
        )
        self.problems_opened = Counter(
            "itsmd_problems_opened",
            "Problems opened by recurring incidents, by rule.",
            ["rule"],
            registry=r,
        )
        self._problem_rules: set[str] = set()  # the rules `problems_opened` has series of
        self.alerts_deduplicated = Counter(
            "itsmd_alerts_deduplicated",
            "Alerts received again unchanged (re-sends, retries, HA replicas).",
            registry=r,
        )
        self.alerts_orphan_resolved = Counter(
            "itsmd_alerts_orphan_resolved",
            "Resolved alerts received for an alert never seen firing.",
            registry=r,
        )
        self.incidents_opened = Counter(
            "itsmd_incidents_opened",
            "Incidents opened, by rule and priority.",
            ["rule", "priority"],
            registry=r,
        )
        self.incidents_resolved = Counter(
            "itsmd_incidents_resolved",
            "Incidents resolved, by how (auto, manual).",
            ["how"],
            registry=r,
        )
        self.incidents_reopened = Counter(
            "itsmd_incidents_reopened",
            "Resolved incidents reopened by a matching alert.",
            registry=r,
        )
        self.incidents_open = Gauge(
            "itsmd_incidents_open", "Unresolved incidents, by priority.", ["priority"], registry=r
        )
        self.ingest_duration = Histogram(
            "itsmd_ingest_duration_seconds",
            "Time from request received to alerts committed.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.correlation_duration = Histogram(
            "itsmd_correlation_duration_seconds",
            "Time spent correlating one batch of alerts (pure logic, no I/O).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_batch_alerts = Histogram(
            "itsmd_commit_batch_alerts",
            "Alerts committed per store transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )
        self.store_errors = Counter(
            "itsmd_store_errors",
            "Store transactions that failed, by operation.",
            ["operation"],
            registry=r,
        )
        self.rules_loaded = Gauge("itsmd_rules_loaded", "Incident rules in force.", registry=r)
        self.rules_last_reload_success = Gauge(
            "itsmd_rules_last_reload_success",
            "1 if the last rule (re)load succeeded, else 0.",
            registry=r,
        )
        self.rules_last_reload_timestamp = Gauge(
            "itsmd_rules_last_reload_timestamp_seconds",
            "When the rules were last (re)loaded successfully.",
            registry=r,
        )
        self.notifications = Counter(
            "itsmd_notifications",
            "Outbox delivery attempts by sink and result: sent, retry, dead.",
            ["connector", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "itsmd_outbox_pending", "Notifications waiting in the outbox (all sinks).", registry=r
        )
        self.notification_latency = Histogram(
            "itsmd_notification_latency_seconds",
            "Time from the event (or an escalation's due time) to the peer's acknowledgement.",
            ["connector"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.sla_breaches = Counter(
            "itsmd_sla_breaches",
            "SLA targets missed, by priority and kind (respond, resolve); once per target.",
            ["priority", "kind"],
            registry=r,
        )
        self.mtta = Histogram(
            "itsmd_mtta_seconds",
            "Time from an incident opening to the first response of a person.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.mttr = Histogram(
            "itsmd_mttr_seconds",
            "Time from an incident opening to its resolution (by hand or automatically).",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.check_up = Gauge(
            "itsmd_check_up",
            "1 if the check's last run succeeded, else 0.",
            ["check"],
            registry=r,
        )
        self.check_duration = Histogram(
            "itsmd_check_duration_seconds",
            "How long each probe took.",
            ["check"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.check_runs = Counter(
            "itsmd_check_runs",
            "Check runs by result (success, failure).",
            ["check", "result"],
            registry=r,
        )
        self.capacity_exhaustion = Gauge(
            "itsmd_capacity_exhaustion_seconds",
            "Seconds until the soonest series of a capacity check crosses its target "
            "(+Inf: its trend never does).",
            ["check"],
            registry=r,
        )
        self.availability_ratio = Gauge(
            "itsmd_availability_ratio",
            "Share of measured time a service was up (maintenance excluded), by window.",
            ["service", "window"],
            registry=r,
        )
        self.leader = Gauge(
            "itsmd_leader",
            "1 while this replica runs the scheduled job, else 0.",
            ["job"],
            registry=r,
        )
        self.reconcile_repairs = Counter(
            "itsmd_reconcile_repairs",
            "Differences with Alertmanager repaired by reconciliation, by kind: resolved "
            "(no Alertmanager held the alert), ingested (held, never delivered).",
            ["kind"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "itsmd_reconcile_errors",
            "Alertmanagers that did not answer a reconciliation round (that round "
            "resolves nothing).",
            registry=r,
        )
        self.reconcile_last_complete = Gauge(
            "itsmd_reconcile_last_complete_timestamp_seconds",
            "When a reconciliation round last heard from every Alertmanager.",
            registry=r,
        )
        self.auth_failures = Counter(
            "itsmd_auth_failures",
            "Requests that failed authentication, by reason: missing, unknown_token, "
            "wrong_role, not_loopback.",
            ["reason"],
            registry=r,
        )
        self.http_refused = Counter(
            "itsmd_http_refused",
            "Requests and connections refused at the HTTP edge, by reason: host, origin, "
            "content_type, throttled, too_many_connections, read_timeout.",
            ["reason"],
            registry=r,
        )
        self.retention_deleted = Counter(
            "itsmd_retention_deleted",
            "Rows the retention job deleted, by kind: incidents, alerts, timeline, "
            "notifications, problems.",
            ["kind"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "itsmd_retention_last_run_timestamp_seconds",
            "When the last daily retention run began, on whichever replica.",
            registry=r,
        )
        self.store_bytes = Gauge(
            "itsmd_store_bytes",
            "Size of the store on disk (SQLite: the database file and its WAL; "
            "PostgreSQL: the database).",
            registry=r,
        )
        for priority in Priority:
            self.incidents_open.labels(priority.value).set(0)
        self.alerts_unrouted.inc(0)
        for kind in ("resolved", "ingested"):
            self.reconcile_repairs.labels(kind).inc(0)

    def record(self, events: Iterable[Event]) -> None:
        """Count what a committed transaction did."""
        for event in events:
            match event.kind:
                case EventKind.OPENED:
                    self.incidents_opened.labels(event.rule, event.priority).inc()
                case EventKind.RESPONDED:
                    if event.after_s is not None:
                        self.mtta.observe(event.after_s)
                case EventKind.RESOLVED:
                    self.incidents_resolved.labels(event.resolved_by).inc()
                    if event.after_s is not None:
                        self.mttr.observe(event.after_s)
                case EventKind.REOPENED:
                    self.incidents_reopened.inc()
                case EventKind.UNROUTED:
                    self.alerts_unrouted.inc()
                case EventKind.SUPPRESSED:
                    self.alerts_suppressed.labels(event.window).inc()
                case EventKind.PROBLEM_OPENED:
                    self.problems_opened.labels(event.rule).inc()
                case EventKind.DUPLICATE:
                    self.alerts_deduplicated.inc()
                case EventKind.ORPHAN:
                    self.alerts_orphan_resolved.inc()

    def know_problem_rules(self, names: Iterable[str]) -> None:
        """A series at 0 for every problem rule in force, so that a rate over the
        opened problems reads 0, not nothing, before the first one opens; the series
        of a rule a reload removed leaves, as a removed check's do."""
        wanted = set(names)
        for gone in self._problem_rules - wanted:
            with contextlib.suppress(KeyError):
                self.problems_opened.remove(gone)
        for name in wanted:
            self.problems_opened.labels(name).inc(0)
        self._problem_rules = wanted

    def forget_check(self, name: str) -> None:
        """A check removed from the rules leaves the exposition."""
        for family in (self.check_up, self.check_duration, self.capacity_exhaustion):
            with contextlib.suppress(KeyError):
                family.remove(name)
        for result in ("success", "failure"):
            with contextlib.suppress(KeyError):
                self.check_runs.remove(name, result)

    def set_open(self, counts: dict[str, int]) -> None:
        for priority in Priority:
            self.incidents_open.labels(priority.value).set(counts.get(priority.value, 0))
