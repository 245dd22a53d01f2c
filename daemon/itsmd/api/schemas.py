"""JSON Schemas (2020-12) of the API's documents (docs/api.md), for the OpenAPI document.

Operations refer to them with `ref("Incident")`; `openapi.document` puts every one
under `components.schemas`. A schema here describes what `views` and the handlers
write: a field added there is added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]


def ref(name: str) -> Schema:
    if name not in SCHEMAS:
        raise KeyError(f"no schema {name!r}")
    return _link(name)


def _link(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: bool = True, /, **properties: Schema) -> dict[str, Any]:
    """An object with these properties, all present in every answer unless not
    `required` (request bodies, whose fields are optional)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = sorted(properties)
    return schema


def _list_of(key: str, item: Schema, paged: bool = True) -> dict[str, Any]:
    """`{key: [item...], "next": cursor or null}`, the shape of every list."""
    next_ = _null(_STR) if paged else {"type": "null"}
    return _object(**{key: {"type": "array", "items": item}, "next": next_})


def _null(schema: Schema) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_LABELS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_RATIOS: Schema = {"type": "object", "additionalProperties": _null(_NUM)}
_INCIDENT_ID: Schema = {"type": "string", "pattern": "^INC-[0-9]+$"}
_TARGET: Schema = _object(met=_INT, breached=_INT, pending=_INT)

_INCIDENT = _object(
    id=_INCIDENT_ID,
    status=_enum("open", "acknowledged", "resolved"),
    title=_STR,
    description=_STR,
    priority=_enum("P1", "P2", "P3", "P4", "P5"),
    impact=_enum("high", "medium", "low"),
    urgency=_enum("high", "medium", "low"),
    service=_null(_STR),
    rule=_STR,
    key=_STR,
    assignee=_null(_STR),
    opened_at=_TIME,
    acknowledged_at=_null(_TIME),
    responded_at=_null(_TIME),
    resolved_at=_null(_TIME),
    alert_count=_INT,
    firing_count=_INT,
    takes_alerts=_BOOL,
    auto_resolve_at=_null(_TIME),
    problem_id=_null({"type": "string", "pattern": "^PRB-[0-9]+$"}),
    parent_id=_null(_INCIDENT_ID),
    sla=_object(
        respond_due=_null(_TIME),
        resolve_due=_null(_TIME),
        breached=_BOOL,
        respond_breached=_BOOL,
        resolve_breached=_BOOL,
        respond={"enum": ["met", "breached", "pending", "not_needed", None]},
        resolve={"enum": ["met", "breached", "pending", None]},
    ),
    labels=_LABELS,
    known_error=_null(_STR),
)
_ALERT = _object(
    fingerprint={"type": "string", "pattern": "^[0-9a-f]{16}$"},
    status=_enum("firing", "resolved"),
    labels=_LABELS,
    annotations=_LABELS,
    startsAt=_TIME,
    endsAt=_null(_TIME),
    generatorURL=_STR,
    source=_STR,
    first_received=_TIME,
    last_received=_TIME,
    receive_count=_INT,
    decision=_object(
        rule=_null(_STR),
        key=_null(_STR),
        action=_enum(
            "opened", "joined", "reopened", "unrouted", "orphan_resolve", "suppressed", "attached"
        ),
        reason=_STR,
    ),
)
_FOUND_ALERT = {
    **_ALERT,
    "properties": {
        **_ALERT["properties"],
        "incident_id": _null(_INCIDENT_ID),
        "state": _enum("firing", "resolved", "suppressed", "unrouted"),
    },
    "required": sorted([*_ALERT["required"], "incident_id", "state"]),
}
_TIMELINE = _object(at=_TIME, kind=_STR, message=_STR, actor=_STR, rule=_null(_STR))
_PROBLEM = _object(
    id={"type": "string", "pattern": "^PRB-[0-9]+$"},
    status=_enum("open", "known_error", "resolved"),
    title=_STR,
    rule=_STR,
    key=_STR,
    opened_at=_TIME,
    resolved_at=_null(_TIME),
    root_cause=_null(_STR),
    root_cause_by=_null(_STR),
    workaround=_null(_STR),
    workaround_by=_null(_STR),
    resolved_by=_null(_STR),
    incident_count=_INT,
)
_WINDOW = _object(
    name=_STR,
    source=_STR,
    match={"type": "array", "items": _STR},
    action=_enum("suppress", "annotate"),
    start=_null(_TIME),
    end=_null(_TIME),
    every=_null(_STR),
    duration=_null(_STR),
    timezone=_STR,
    change=_null(_STR),
    active=_BOOL,
    active_until=_null(_TIME),
    comment=_null(_STR),
    created_by=_null(_STR),
    state=_enum("active", "scheduled", "ended"),
)
_INGEST_RESULT = _object(
    received=_INT,
    new=_INT,
    updated=_INT,
    duplicate=_INT,
    unrouted=_INT,
    incidents={"type": "array", "items": _INCIDENT_ID},
)
_INCOMING_ALERT = {
    **_object(
        False,
        labels=_LABELS,
        annotations=_LABELS,
        status=_enum("firing", "resolved"),
        startsAt=_TIME,
        endsAt=_TIME,
        generatorURL=_STR,
        fingerprint=_STR,
    ),
    "required": ["labels"],
}
_NOTIFICATION = _object(
    id=_INT,
    event_id=_STR,
    event=_STR,
    subject=_STR,
    route=_STR,
    connector=_STR,
    state=_enum("pending", "sent", "dead", "cancelled", "muted"),
    attempts=_INT,
    created_at=_TIME,
    due_at=_TIME,
    sent_at=_null(_TIME),
    last_error=_null(_STR),
    unless=_null(_STR),
    retried_by=_null(_STR),
)
_CHECK = _object(
    name=_STR,
    type=_STR,
    service=_null(_STR),
    up=_null(_BOOL),
    last_run=_null(_TIME),
    last_error=_null(_STR),
    consecutive_failures=_INT,
    duration_s=_null(_NUM),
    interval_s=_NUM,
)
_LEVEL = {
    **_object(
        service=_null(_STR),
        availability=_RATIOS,
        coverage=_RATIOS,
        measured_since=_null(_TIME),
        downtime_s=_RATIOS,
        maintenance_s=_RATIOS,
        slo=_null(_NUM),
        error_budget_left=_null(_NUM),
        burn_rate=_null(_NUM),
    ),
    "description": "One service or check (checks add `check`); ratios per window (1d, 7d, 30d).",
}

# A report's figure beside the previous period's (docs/reports.md).
_FIGURE = _object(value=_null(_NUM), previous=_null(_NUM), change=_null(_NUM))
_TIMING = _object(median=_FIGURE, p90=_FIGURE, count=_FIGURE)
_PERIOD = _object(
    **{"from": _TIME, "to": _TIME},
    tz=_STR,
    local_from=_STR,
    local_to=_STR,
    days=_NUM,
    hours=_NUM,
)
_REVIEW_SERVICE = _object(
    service=_null(_STR),
    slo=_null(_NUM),
    incidents=_FIGURE,
    by_priority={"type": "object", "additionalProperties": _FIGURE},
    mtta_s=_TIMING,
    mttr_s=_TIMING,
    sla={"type": "object", "description": "per priority: `respond` and `resolve` verdicts"},
    availability={"type": "object", "description": "ratio, coverage, error_budget_used"},
    problems={"type": "array", "items": {"type": "object"}},
    capacity={"type": "array", "items": {"type": "object"}},
)
_REVIEW_RULE = _object(
    rule=_STR,
    in_rules=_BOOL,
    matched=_null(_BOOL),
    alerts=_FIGURE,
    incidents=_FIGURE,
    alerts_per_incident=_FIGURE,
    auto_resolved=_FIGURE,
    reopened=_FIGURE,
)

SCHEMAS: dict[str, Schema] = {
    "Error": {
        **_object(error=_STR, detail={}),
        "description": "`error` says what is wrong; `detail` is null or structured "
        "(`field` for 422, `allowed` for 405, `refused` for a partly refused ingest).",
    },
    "Incident": _INCIDENT,
    "IncidentDetail": {
        **_INCIDENT,
        "properties": {
            **_INCIDENT["properties"],
            "alerts": {"type": "array", "items": _ALERT},
            "timeline": {"type": "array", "items": _TIMELINE},
        },
        "required": sorted([*_INCIDENT["required"], "alerts", "timeline"]),
    },
    "IncidentList": _list_of("incidents", _link("Incident")),
    "Alert": _ALERT,
    "FoundAlert": _FOUND_ALERT,
    "AlertList": _list_of("alerts", _link("FoundAlert")),
    "AlertEpisodes": _object(
        fingerprint=_STR,
        episodes={"type": "array", "items": _link("FoundAlert")},
    ),
    "Problem": _PROBLEM,
    "ProblemDetail": {
        **_PROBLEM,
        "properties": {
            **_PROBLEM["properties"],
            "incidents": {
                "type": "array",
                "items": _object(id=_INCIDENT_ID, title=_STR, status=_STR, opened_at=_TIME),
            },
        },
        "required": sorted([*_PROBLEM["required"], "incidents"]),
    },
    "ProblemList": _list_of("problems", _link("Problem")),
    "MaintenanceWindow": _WINDOW,
    "MaintenanceList": _list_of("maintenance", _link("MaintenanceWindow"), paged=False),
    "MaintenanceBody": {
        **_object(
            False,
            name=_STR,
            match={"oneOf": [_STR, {"type": "array", "items": _STR}]},
            action=_enum("suppress", "annotate"),
            start=_TIME,
            end=_TIME,
            every=_STR,
            duration=_STR,
            timezone=_STR,
            change=_STR,
            comment=_STR,
            actor=_STR,
        ),
        "required": ["name", "match"],
        "description": "The keys of a `maintenance:` entry of a rule file.",
    },
    "IngestResult": _INGEST_RESULT,
    "WebhookBody": {
        **_object(
            False,
            version={"const": "4"},
            alerts={"type": "array", "items": _INCOMING_ALERT},
            receiver=_STR,
            status=_STR,
            groupLabels=_LABELS,
            commonLabels=_LABELS,
            commonAnnotations=_LABELS,
            externalURL=_STR,
            groupKey=_STR,
            truncatedAlerts=_INT,
        ),
        "required": ["version", "alerts"],
        "description": "Alertmanager's webhook payload, version 4.",
    },
    "GenericAlerts": {"type": "array", "items": _INCOMING_ALERT},
    "ActionBody": {
        **_object(False, note=_STR, assignee=_STR, text=_STR, actor=_STR),
        "description": "`note` for ack, resolve and reopen; `assignee` for assign; "
        "`text` for comment; `actor` names the person behind a shared token.",
    },
    "ProblemActionBody": {
        **_object(False, text=_STR, workaround=_STR),
        "description": "`text` for root_cause, `workaround` for known_error.",
    },
    "Notification": _NOTIFICATION,
    "NotificationList": _list_of("notifications", _link("Notification")),
    "CheckList": _list_of("checks", _CHECK, paged=False),
    "Reconcile": _object(
        configured=_BOOL,
        alertmanagers={"type": "array", "items": _STR},
        reconcile_every=_null(_STR),
        grace=_null(_STR),
        receiver=_null(_STR),
        leader=_BOOL,
        last_round=_null(
            _object(
                at=_TIME,
                duration_s=_NUM,
                complete=_BOOL,
                alertmanagers={
                    "type": "array",
                    "items": _object(
                        url=_STR, answered=_BOOL, alerts=_null(_INT), error=_null(_STR)
                    ),
                },
                resolved=_INT,
                ingested=_INT,
                missing=_INT,
                unseen=_INT,
            )
        ),
    ),
    "Availability": _object(
        services={"type": "array", "items": _LEVEL},
        checks={"type": "array", "items": _LEVEL},
    ),
    "Capacity": _object(
        capacity={
            "type": "array",
            "items": _object(
                check=_STR,
                labels=_LABELS,
                value=_null(_NUM),
                threshold=_null({"type": "object"}),
                exhausts_at=_null(_TIME),
                forecast_ready=_null(_BOOL),
                forecast_since=_null(_TIME),
                forecast_reason=_null(_STR),
                samples={
                    "type": "array",
                    "items": {"type": "array", "prefixItems": [_NUM, _NUM], "minItems": 2},
                    "description": "[unix seconds, value] pairs, oldest first",
                },
            ),
        }
    ),
    "SlaSummary": _object(
        window=_STR,
        priorities={
            "type": "array",
            "items": _object(
                priority=_STR,
                incidents=_INT,
                respond={**_TARGET, "properties": {**_TARGET["properties"], "not_needed": _INT}},
                resolve=_TARGET,
                mtta_s=_null(_NUM),
                mttr_s=_null(_NUM),
            ),
        },
    ),
    "ServiceReview": _object(
        period=_PERIOD,
        previous_period=_PERIOD,
        service=_null(_STR),
        generated_at=_TIME,
        percentile={"const": "nearest-rank"},
        totals={"type": "object"},
        services={"type": "array", "items": _REVIEW_SERVICE},
        rules={"type": "array", "items": _REVIEW_RULE},
        unmatched_rules={"type": "array", "items": _STR},
        noisy_alertnames={"type": "array", "items": {"type": "object"}},
        weeks={"type": "array", "items": {"type": "object"}},
        suggestions={
            "type": "array",
            "items": _object(
                kind=_enum(
                    "rule_never_matched", "rule_reopens", "below_slo", "problem_without_known_error"
                ),
                subject=_null(_STR),
                text=_STR,
            ),
        },
    ),
    "IncidentReview": _object(
        incident=_INCIDENT,
        impact=_object(**{"from": _TIME}, to=_null(_TIME), duration_s=_null(_NUM), ongoing=_BOOL),
        services={"type": "array", "items": _STR},
        parent={"type": ["object", "null"]},
        symptoms={"type": "array", "items": {"type": "object"}},
        common_labels=_LABELS,
        alerts={"type": "array", "items": {"type": "object"}},
        timeline={"type": "array", "items": {"type": "object"}},
        sla={"type": "object"},
        problem={"type": ["object", "null"]},
        known_error=_null(_STR),
        sections=_object(
            root_cause=_STR,
            what_went_well=_STR,
            what_did_not=_STR,
            follow_ups={"type": "array", "items": _STR},
        ),
    ),
    "ReloadResult": _object(
        status={"const": "reloaded"},
        rules=_INT,
        restart_needed={"type": "array", "items": _STR},
    ),
}
