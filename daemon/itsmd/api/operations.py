"""Every operation of the JSON API and the operational endpoints, declared once.

`build_app` registers `API` (`routes.register`) and `/api/v1/openapi.json` describes
the same declarations. `role` is the least role the auth middleware lets through
(`auth.required_roles`); tests/api/test_openapi.py keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from itsmd.api import (
    alerts,
    incidents,
    levels,
    maintenance,
    notifications,
    openapi,
    ops,
    problems,
    reports,
)
from itsmd.api.ingest import ingest_handler
from itsmd.api.params import DEFAULT_LIMIT, MAX_LIMIT
from itsmd.api.routes import Handler, Operation, Param
from itsmd.api.schemas import ref
from itsmd.config import Role
from itsmd.runtime.actions import ACTIONS
from itsmd.sources import SourceRoute
from itsmd.store.outbox import STATES as NOTIFICATION_STATES
from itsmd.store.repo import IncidentOrder

TEXT = "text/plain"
# The ingest handler of each source's path; `mount_sources` fills it.
INGEST = web.AppKey("ingest_handlers", dict[str, Handler])


async def ingest(request: web.Request) -> web.StreamResponse:
    """Hands the request to the ingest handler of the source mounted on its path."""
    resource = request.match_info.route.resource
    assert resource is not None
    return await request.app[INGEST][resource.canonical](request)


def mount_sources(app: web.Application, sources: Iterable[SourceRoute]) -> None:
    """Give each source's path its ingest handler; the path must be an ingest
    operation of `API`, so that it is routed and documented."""
    declared = {op.path for op in API if op.handler is ingest}
    handlers = {}
    for route in sources:
        if route.path not in declared:
            raise ValueError(f"source path {route.path} is not an ingest operation of API")
        handlers[route.path] = ingest_handler(route.source)
    app[INGEST] = handlers


def _limit() -> Param:
    return Param(
        "limit",
        f"page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})",
        schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    )


def _cursor() -> Param:
    return Param("cursor", "the `next` value of the previous page")


def _since(what: str) -> Param:
    return Param(
        "since",
        f"{what} at or after: an RFC 3339 time, or a duration meaning that long ago (`24h`)",
    )


def _window() -> Param:
    return Param("window", "1h to 400d (default 30d)", schema={"type": "string", "default": "30d"})


def _enum(*values: str) -> dict[str, object]:
    return {"type": "string", "enum": [str(v) for v in values]}


_INCIDENT_ID = Param("id", "`INC-42`", where="path", required=True)
_PROBLEM_ID = Param("id", "`PRB-7`", where="path", required=True)
_WINDOW_NAME = Param("name", "the window's name", where="path", required=True)
_INGEST_ERRORS = (400, 408, 413, 415, 422)
_ACTION_ERRORS = (400, 404, 408, 409, 413, 415, 422)

_INGESTION = (
    Operation(
        "POST",
        "/api/v1/webhooks/alertmanager",
        ingest,
        "Alertmanager webhook, payload version 4",
        Role.INGEST,
        "ingest",
        description="Answers 200 once the alerts are committed; 422 lists alerts "
        "refused one by one while the others are stored.",
        body=ref("WebhookBody"),
        response=ref("IngestResult"),
        errors=_INGEST_ERRORS,
    ),
    Operation(
        "POST",
        "/api/v1/alerts",
        ingest,
        "Alerts of generic sources",
        Role.INGEST,
        "ingest",
        description="A JSON list of alerts; `startsAt` defaults to now and `status` "
        "to `resolved` when `endsAt` is given and not in the future.",
        body=ref("GenericAlerts"),
        response=ref("IngestResult"),
        errors=_INGEST_ERRORS,
    ),
)

_ALERTS = (
    Operation(
        "GET",
        "/api/v1/alerts",
        alerts.list_alerts,
        "Search stored alerts, newest first",
        Role.READ,
        "alerts",
        description="Every `filter` must hold. A page may hold fewer than `limit` "
        "alerts while `next` is not null: the search looked at as many rows as one "
        "request may; follow `next`.",
        params=(
            Param(
                "filter",
                'a selector (`{pod="web-7",severity=~"crit.*"}`) or a matcher (`pod="web-7"`)',
                repeated=True,
            ),
            Param(
                "state",
                "`firing`, `resolved`, `suppressed`, `unrouted`; comma-separated or repeated",
                repeated=True,
            ),
            _since("received (last_received)"),
            _limit(),
            _cursor(),
        ),
        response=ref("AlertList"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/alerts/{fingerprint}",
        alerts.show_alert,
        "Every stored episode of one alert, newest first",
        Role.READ,
        "alerts",
        params=(
            Param(
                "fingerprint",
                "16 lowercase hexadecimal digits",
                where="path",
                schema={"type": "string", "pattern": "^[0-9a-f]{16}$"},
                required=True,
            ),
        ),
        response=ref("AlertEpisodes"),
        errors=(400, 404),
    ),
)

_INCIDENTS = (
    Operation(
        "GET",
        "/api/v1/incidents",
        incidents.list_incidents,
        "Incidents, newest first",
        Role.READ,
        "incidents",
        params=(
            Param("status", "`open`, `acknowledged`, `resolved`", repeated=True),
            Param("priority", "`P1`..`P5`", repeated=True),
            Param("service", "exact service name"),
            Param("assignee", "who owns it"),
            Param("q", "case-insensitive text in the title or the correlation key"),
            _since("opened"),
            Param(
                "order",
                "`newest` first (the default), or `urgent`: unresolved first, then by "
                "priority, then newest",
                schema={**_enum(*IncidentOrder), "default": IncidentOrder.NEWEST.value},
            ),
            _limit(),
            _cursor(),
        ),
        response=ref("IncidentList"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/incidents/{id}",
        incidents.show_incident,
        "One incident with its alerts and timeline",
        Role.READ,
        "incidents",
        params=(_INCIDENT_ID,),
        response=ref("IncidentDetail"),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/v1/incidents/{id}/{action}",
        incidents.act_on_incident,
        "Acknowledge, resolve, reopen, assign or comment",
        Role.RESPOND,
        "incidents",
        description="Answers the changed incident; 409 when the action does not fit its state.",
        params=(
            _INCIDENT_ID,
            Param("action", "the action", where="path", schema=_enum(*ACTIONS), required=True),
        ),
        body=ref("ActionBody"),
        body_required=False,
        response=ref("Incident"),
        errors=_ACTION_ERRORS,
    ),
)

_PROBLEMS = (
    Operation(
        "GET",
        "/api/v1/problems",
        problems.list_problems,
        "Problems, newest first",
        Role.READ,
        "problems",
        params=(_limit(), _cursor()),
        response=ref("ProblemList"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/problems/{id}",
        problems.show_problem,
        "One problem with its incidents",
        Role.READ,
        "problems",
        params=(_PROBLEM_ID,),
        response=ref("ProblemDetail"),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/v1/problems/{id}/{action}",
        problems.act_on_problem,
        "Set the root cause, mark a known error, or resolve",
        Role.RESPOND,
        "problems",
        params=(
            _PROBLEM_ID,
            Param(
                "action",
                "the action",
                where="path",
                schema=_enum(*problems.ACTIONS),
                required=True,
            ),
        ),
        body=ref("ProblemActionBody"),
        body_required=False,
        response=ref("Problem"),
        errors=_ACTION_ERRORS,
    ),
)

_MAINTENANCE = (
    Operation(
        "GET",
        "/api/v1/maintenance",
        maintenance.list_windows,
        "Maintenance windows, from rule files and from the API",
        Role.READ,
        "maintenance",
        response=ref("MaintenanceList"),
    ),
    Operation(
        "POST",
        "/api/v1/maintenance",
        maintenance.create_window,
        "Create a maintenance window",
        Role.ADMIN,
        "maintenance",
        description="Checked as a `maintenance:` entry of a rule file; 409 when the name is taken.",
        body=ref("MaintenanceBody"),
        response=ref("MaintenanceWindow"),
        status=201,
        errors=(400, 408, 409, 413, 415, 422),
    ),
    Operation(
        "DELETE",
        "/api/v1/maintenance/{name}",
        maintenance.delete_window,
        "Delete a window created through the API",
        Role.ADMIN,
        "maintenance",
        params=(_WINDOW_NAME,),
        status=204,
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/api/v1/maintenance/{name}/end",
        maintenance.end_window,
        "End a window created through the API now",
        Role.ADMIN,
        "maintenance",
        description="Its end becomes now; it stays listed, as ended. 409 for a window "
        "of a rule file or one that has ended.",
        params=(_WINDOW_NAME,),
        response=ref("MaintenanceWindow"),
        errors=(404, 409, 415),
    ),
)

_NOTIFICATIONS = (
    Operation(
        "GET",
        "/api/v1/notifications",
        notifications.list_notifications,
        "The outbox, newest first",
        Role.READ,
        "notifications",
        params=(
            Param("state", "one state", schema=_enum(*NOTIFICATION_STATES)),
            _limit(),
            _cursor(),
        ),
        response=ref("NotificationList"),
        errors=(400,),
    ),
    Operation(
        "POST",
        "/api/v1/notifications/{id}/retry",
        notifications.retry_notification,
        "Send a dead letter again",
        Role.ADMIN,
        "notifications",
        params=(Param("id", "the notification's id", where="path", required=True),),
        response=ref("Notification"),
        errors=(404, 409, 415),
    ),
)

_LEVELS = (
    Operation(
        "GET",
        "/api/v1/checks",
        levels.list_checks,
        "Checks and their last runs, in rule-file order",
        Role.READ,
        "levels",
        response=ref("CheckList"),
    ),
    Operation(
        "GET",
        "/api/v1/availability",
        levels.availability,
        "Availability of services and checks against their objectives",
        Role.READ,
        "levels",
        params=(_window(),),
        response=ref("Availability"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/capacity",
        levels.capacity,
        "Capacity forecasts of the last check runs",
        Role.READ,
        "levels",
        response=ref("Capacity"),
    ),
    Operation(
        "GET",
        "/api/v1/sla",
        levels.sla_summary,
        "SLA targets met and breached per priority",
        Role.READ,
        "levels",
        params=(_window(),),
        response=ref("SlaSummary"),
        errors=(400,),
    ),
)

_FORMAT = Param(
    "format",
    "`json` (the default), `md` (Markdown) or `html` (a page with its charts)",
    schema={**_enum(*reports.FORMATS), "default": "json"},
)

_REPORTS = (
    Operation(
        "GET",
        "/api/v1/reports/review",
        reports.service_review,
        "Service review of a period beside the previous one",
        Role.READ,
        "reports",
        description="Per service and per rule, each figure beside the previous period's "
        "and its change, with the actions the figures suggest (docs/reports.md). The period "
        "is half-open, `[from, to)`, in the time zone `tz`.",
        params=(
            Param(
                "from",
                "first day (`2026-11-01`, its midnight in `tz`) or an RFC 3339 time",
                required=True,
            ),
            Param("to", "the day after the last (`2026-12-01`) or an RFC 3339 time", required=True),
            Param("service", "one service only"),
            Param("tz", "IANA time zone of the days and weeks (default `UTC`)"),
            _FORMAT,
        ),
        response=ref("ServiceReview"),
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/reports/incidents/{id}",
        reports.incident_review,
        "Post-incident review skeleton of one incident",
        Role.READ,
        "reports",
        params=(_INCIDENT_ID, _FORMAT),
        response=ref("IncidentReview"),
        errors=(400, 404),
    ),
)

_OPERATIONAL = (
    Operation(
        "GET",
        "/api/v1/openapi.json",
        openapi.serve,
        "This document",
        Role.READ,
        "operational",
        response={"type": "object"},
    ),
    Operation(
        "GET",
        "/api/v1/reconcile",
        ops.reconcile_status,
        "Reconciliation with Alertmanager: settings and the last round",
        Role.READ,
        "operational",
        response=ref("Reconcile"),
    ),
    Operation(
        "POST",
        "/-/reload",
        ops.reload,
        "Reload the config and the rules",
        Role.ADMIN,
        "operational",
        response=ref("ReloadResult"),
        errors=(415, 422),
    ),
    Operation("GET", "/-/healthy", ops.healthy, "Liveness", None, "operational", content=TEXT),
    Operation(
        "GET",
        "/-/ready",
        ops.ready,
        "Readiness: the store takes writes",
        None,
        "operational",
        content=TEXT,
        errors=(503,),
    ),
    Operation(
        "GET",
        "/metrics",
        ops.metrics,
        "Prometheus exposition",
        None,
        "operational",
        content=CONTENT_TYPE_LATEST,
    ),
)

API: tuple[Operation, ...] = (
    *_INGESTION,
    *_ALERTS,
    *_INCIDENTS,
    *_PROBLEMS,
    *_MAINTENANCE,
    *_NOTIFICATIONS,
    *_LEVELS,
    *_REPORTS,
    *_OPERATIONAL,
)
