"""End-to-end: a real Alertmanager posts webhooks to a running itsmd.

Every assertion goes through itsmd's JSON API or /metrics.
Alerts are pushed with an explicit `startsAt` a minute in the past, so Alertmanager
flushes a new group at once instead of after `group_wait`, and two Alertmanagers
given the same alert send the same `startsAt` (without one, each stamps its own).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsmd.correlation.fingerprint import fingerprint
from tests.conftest import wait_until
from tests.e2e.conftest import (
    WEBHOOK_PATH,
    AlertmanagerFactory,
    AlertmanagerProc,
    ItsmdFactory,
    ItsmdProc,
    make_alert,
    rfc3339,
)

pytestmark = pytest.mark.e2e

DELIVERY_TIMEOUT_S = 10.0  # a flush is immediate (old startsAt); this is slack for slow CI
RESOLVE_TIMEOUT_S = 15.0  # next group_interval tick (2 s), then the auto-resolve hold (0 s)

BY_SERVICE: dict[str, Any] = {
    "name": "by-service",
    "match": '{severity=~"critical|warning"}',
    "group_by": ["service"],
    "window": "15m",
    "title": "{{ labels.service }} degraded",
    "auto_resolve": "0s",
}
CATCH_ALL: dict[str, Any] = {"name": "catch-all", "match": "{}", "group_by": ["alertname"]}

# Two Alertmanager groups ({alertname, service}); one itsmd incident (key: service).
CHECKOUT_ALERTS: list[dict[str, str]] = [
    {
        "alertname": "HighErrorRate",
        "service": "checkout",
        "severity": "critical",
        "instance": "checkout-1",
    },
    {
        "alertname": "HighErrorRate",
        "service": "checkout",
        "severity": "critical",
        "instance": "checkout-2",
    },
    {
        "alertname": "HighLatency",
        "service": "checkout",
        "severity": "critical",
        "instance": "checkout-1",
    },
]


# --- helpers ---------------------------------------------------------------------------


def write_rules(directory: Path, *rules: Mapping[str, Any]) -> Path:
    """A rules dir holding one file with an `incidents:` section."""
    directory.mkdir()
    body = yaml.safe_dump({"incidents": [dict(rule) for rule in rules]}, sort_keys=False)
    (directory / "10-incidents.yml").write_text(body)
    return directory


def a_minute_ago() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def list_incidents(itsmd: ItsmdProc, token: str | None = None) -> list[dict[str, Any]]:
    resp = itsmd.get("/api/v1/incidents", token=token)
    assert resp.status == 200, f"GET /api/v1/incidents: {resp.status} {resp.text}"
    body = resp.json()
    assert body["next"] is None, f"a handful of incidents should fit one page: {body}"
    incidents: list[dict[str, Any]] = body["incidents"]
    return incidents


def get_incident(itsmd: ItsmdProc, incident_id: str, token: str | None = None) -> dict[str, Any]:
    resp = itsmd.get(f"/api/v1/incidents/{incident_id}", token=token)
    assert resp.status == 200, f"GET /api/v1/incidents/{incident_id}: {resp.status} {resp.text}"
    incident: dict[str, Any] = resp.json()
    return incident


def wait_for_alerts(itsmd: ItsmdProc, count: int, token: str | None = None) -> list[dict[str, Any]]:
    """Poll until the incidents hold `count` alerts in all; return the incidents."""

    seen: list[dict[str, Any]] = []

    def arrived() -> list[dict[str, Any]] | None:
        seen[:] = list_incidents(itsmd, token)
        return list(seen) if sum(i["alert_count"] for i in seen) >= count else None

    return wait_until(
        arrived,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what=lambda: f"{count} alert(s) in itsmd incidents; incidents seen last: {seen}",
    )


def push_checkout_alerts(am: AlertmanagerProc, starts_at: datetime) -> None:
    am.push(
        [
            make_alert(labels, starts_at=starts_at, annotations={"summary": "checkout is slow"})
            for labels in CHECKOUT_ALERTS
        ]
    )


def open_checkout_incident(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> tuple[ItsmdProc, AlertmanagerProc, datetime, dict[str, Any]]:
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=db_url
    )
    am = alertmanager.start(itsmd.webhook_url)
    starts_at = a_minute_ago()
    push_checkout_alerts(am, starts_at)
    incidents = wait_for_alerts(itsmd, len(CHECKOUT_ALERTS))
    assert len(incidents) == 1, f"expected one incident for service checkout: {incidents}"
    return itsmd, am, starts_at, incidents[0]


def timeline_text(entry: object) -> str:
    return json.dumps(entry, sort_keys=True).lower()


def webhook_payload(labels: Mapping[str, str]) -> dict[str, Any]:
    """A minimal but valid Alertmanager v4 webhook body with one firing alert."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "itsmd",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": dict(labels),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": dict(labels),
                "annotations": {},
                "startsAt": rfc3339(a_minute_ago()),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint(labels),
            }
        ],
    }


def auth_config() -> dict[str, Any]:
    return {
        "auth": {
            "tokens": [
                {"name": "alertmanager", "role": "ingest", "secret_env": "ITSMD_AM_TOKEN"},
                {"name": "oncall-reader", "role": "read", "secret_env": "ITSMD_READ_TOKEN"},
            ]
        }
    }


# --- a. correlation ---------------------------------------------------------------------


def test_alerts_of_one_service_open_one_incident(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    itsmd, _, _, incident = open_checkout_incident(tmp_path, db_url, itsmd_server, alertmanager)

    assert re.fullmatch(r"INC-\d+", incident["id"]), incident
    assert incident["status"] == "open"
    assert incident["title"] == "checkout degraded"
    assert incident["rule"] == "by-service"
    assert incident["service"] == "checkout"
    assert incident["labels"] == {"service": "checkout"}
    assert incident["alert_count"] == 3
    assert incident["firing_count"] == 3
    assert incident["resolved_at"] is None
    # severity critical -> urgency high; no service tier -> impact medium; medium x high = P2
    assert (incident["impact"], incident["urgency"], incident["priority"]) == (
        "medium",
        "high",
        "P2",
    )
    assert "checkout" in incident["key"]

    detail = get_incident(itsmd, incident["id"])
    assert detail["id"] == incident["id"]
    alerts = detail["alerts"]
    assert sorted((a["labels"] for a in alerts), key=lambda lb: sorted(lb.items())) == sorted(
        CHECKOUT_ALERTS, key=lambda lb: sorted(lb.items())
    )
    assert len({a["fingerprint"] for a in alerts}) == 3
    for alert in alerts:
        assert alert["status"] == "firing", alert
        decision = alert["decision"]
        assert decision["rule"] == "by-service", alert
        assert decision["key"] == incident["key"], alert
        assert isinstance(decision["action"], str), alert
        assert decision["action"], alert
        assert isinstance(decision["reason"], str), alert
        assert decision["reason"], alert
    assert detail["timeline"], "an incident opened by a rule has a timeline"
    assert any("by-service" in timeline_text(entry) for entry in detail["timeline"]), detail[
        "timeline"
    ]


# --- b. automatic resolution -------------------------------------------------------------


def test_resolving_in_alertmanager_resolves_the_incident(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    itsmd, am, starts_at, incident = open_checkout_incident(
        tmp_path, db_url, itsmd_server, alertmanager
    )

    for labels in CHECKOUT_ALERTS:
        am.resolve(labels, starts_at=starts_at)

    seen: dict[str, Any] = {}

    def resolved() -> dict[str, Any] | None:
        seen.update(get_incident(itsmd, incident["id"]))
        return dict(seen) if seen["status"] == "resolved" else None

    detail = wait_until(
        resolved,
        timeout_s=RESOLVE_TIMEOUT_S,
        interval_s=0.1,
        what=lambda: f"{incident['id']} resolved automatically; last seen: {seen}",
    )
    assert detail["resolved_at"] is not None
    assert detail["firing_count"] == 0
    assert detail["alert_count"] == 3, "resolves update the stored alerts, they add none"
    assert sorted(a["status"] for a in detail["alerts"]) == ["resolved"] * 3
    auto_entries = [
        entry
        for entry in detail["timeline"]
        if "auto" in timeline_text(entry) and "resolv" in timeline_text(entry)
    ]
    assert auto_entries, f"no timeline entry says it was resolved automatically: {detail}"
    assert [i["id"] for i in list_incidents(itsmd)] == [incident["id"]]


# --- c, d. authentication ------------------------------------------------------------------


def test_bearer_auth_from_alertmanager_and_roles_on_the_api(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    am_token, read_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL),
        config=auth_config(),
        db_url=sqlite_url,
        env={"ITSMD_AM_TOKEN": am_token, "ITSMD_READ_TOKEN": read_token},
    )
    am = alertmanager.start(itsmd.webhook_url, bearer=am_token)
    am.push(
        [
            make_alert(
                {"alertname": "DiskFull", "service": "db", "severity": "warning"},
                starts_at=a_minute_ago(),
            )
        ]
    )

    [incident] = wait_for_alerts(itsmd, 1, token=read_token)
    assert incident["rule"] == "by-service"
    assert am.notifications_ok() >= 1

    anonymous = itsmd.get("/api/v1/incidents")
    assert anonymous.status == 401, anonymous.text
    assert "error" in anonymous.json()
    assert itsmd.get("/api/v1/incidents", token="not-a-token").status == 401
    assert itsmd.get("/api/v1/incidents", token=am_token).status == 403, "ingest may only post"
    assert itsmd.get("/api/v1/incidents", token=read_token).status == 200

    probe = webhook_payload({"alertname": "AuthProbe", "service": "probe", "severity": "critical"})
    assert itsmd.post(WEBHOOK_PATH, json=probe).status == 401
    assert itsmd.post(WEBHOOK_PATH, json=probe, token="not-a-token").status == 401
    assert itsmd.post(WEBHOOK_PATH, json=probe, token=read_token).status == 403
    assert [i["id"] for i in list_incidents(itsmd, read_token)] == [incident["id"]], (
        "a refused webhook must store nothing"
    )


def test_basic_auth_from_alertmanager(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    am_token, read_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL),
        config=auth_config(),
        db_url=sqlite_url,
        env={"ITSMD_AM_TOKEN": am_token, "ITSMD_READ_TOKEN": read_token},
    )
    am = alertmanager.start(itsmd.webhook_url, basic=("alertmanager", am_token))
    am.push(
        [
            make_alert(
                {"alertname": "DiskFull", "service": "db", "severity": "warning"},
                starts_at=a_minute_ago(),
            )
        ]
    )

    [incident] = wait_for_alerts(itsmd, 1, token=read_token)
    assert incident["service"] == "db"
    assert am.notifications_failed() == 0


def test_basic_auth_with_a_wrong_password_is_refused(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    am_token, read_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL),
        config=auth_config(),
        db_url=sqlite_url,
        env={"ITSMD_AM_TOKEN": am_token, "ITSMD_READ_TOKEN": read_token},
    )
    am = alertmanager.start(itsmd.webhook_url, basic=("alertmanager", "wrong-" + am_token))
    am.push(
        [
            make_alert(
                {"alertname": "DiskFull", "service": "db", "severity": "warning"},
                starts_at=a_minute_ago(),
            )
        ]
    )

    # A 4xx is not retried: the flush fails at once and Alertmanager counts it.
    wait_until(
        am.notifications_failed,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="Alertmanager to count the refused notification",
    )
    assert am.notifications_ok() == 0
    assert list_incidents(itsmd, read_token) == []


# --- e. duplicates from two Alertmanagers ------------------------------------------------------


def test_same_alert_from_two_alertmanagers_is_stored_once(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=db_url
    )
    # Not clustered: each one sends every notification (no gossip tells one the other sent it).
    am1 = alertmanager.start(itsmd.webhook_url)
    am2 = alertmanager.start(itsmd.webhook_url)
    alert = make_alert(
        {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"},
        starts_at=a_minute_ago(),
        annotations={"summary": "5xx above 5%"},
    )
    am1.push([alert])
    am2.push([alert])

    am1.wait_notified(1, timeout_s=DELIVERY_TIMEOUT_S)
    am2.wait_notified(1, timeout_s=DELIVERY_TIMEOUT_S)

    incidents = list_incidents(itsmd)
    assert len(incidents) == 1, incidents
    assert incidents[0]["alert_count"] == 1, incidents
    detail = get_incident(itsmd, incidents[0]["id"])
    assert len(detail["alerts"]) == 1, detail["alerts"]
    assert detail["alerts"][0]["labels"] == alert["labels"]


def test_alerts_pushed_without_starts_at_to_two_alertmanagers_are_stored_once(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    """Each unclustered Alertmanager stamps its own startsAt on an alert pushed
    without one, milliseconds apart: still one alert each."""
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=db_url
    )
    am1 = alertmanager.start(itsmd.webhook_url)
    am2 = alertmanager.start(itsmd.webhook_url)
    alerts = [
        {
            "labels": {
                "alertname": "Down",
                "severity": "critical",
                "service": f"s{n % 3}",
                "instance": f"i-{n}",
            }
        }
        for n in range(30)
    ]
    am1.push(alerts)
    am2.push(alerts)
    am1.wait_notified(3, timeout_s=DELIVERY_TIMEOUT_S)
    am2.wait_notified(3, timeout_s=DELIVERY_TIMEOUT_S)

    incidents = wait_for_alerts(itsmd, 30)
    assert sorted(i["alert_count"] for i in incidents) == [10, 10, 10], incidents
    stored = [a for i in incidents for a in get_incident(itsmd, i["id"])["alerts"]]
    assert len(stored) == 30
    assert all(a["receive_count"] >= 2 for a in stored), "both Alertmanagers' copies"


# --- f. restart ----------------------------------------------------------------------------


def test_restart_keeps_incidents_and_absorbs_the_repeat(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=sqlite_url
    )
    # An unchanged group is re-sent every ~3 s: the repeat lands on the restarted daemon.
    am = alertmanager.start(itsmd.webhook_url, group_interval="1s", repeat_interval="3s")
    am.push(
        [
            make_alert(
                {"alertname": "QueueBacklog", "service": "orders", "severity": "warning"},
                starts_at=a_minute_ago(),
            )
        ]
    )
    [before] = wait_for_alerts(itsmd, 1)

    stopping = time.monotonic()
    returncode = itsmd.stop()
    stopped_after_s = time.monotonic() - stopping
    assert returncode == 0, f"SIGTERM must be a clean exit, got {returncode}\n{itsmd.log}"
    assert stopped_after_s < 10.0

    itsmd.restart()
    [after] = list_incidents(itsmd)
    assert after["id"] == before["id"]
    assert after["status"] == "open"
    assert after["alert_count"] == 1

    # Counters start at zero in the new process: this is the re-sent notification.
    wait_until(
        lambda: (itsmd.metric("itsmd_alerts_received_total") or 0) >= 1,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="Alertmanager's repeat to reach the restarted daemon",
    )
    incidents = list_incidents(itsmd)
    assert [i["id"] for i in incidents] == [before["id"]]
    assert incidents[0]["alert_count"] == 1
    assert len(get_incident(itsmd, before["id"])["alerts"]) == 1


# --- g. unrouted -----------------------------------------------------------------------------


def test_alert_no_rule_matches_is_stored_and_counted_but_opens_nothing(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    critical_only = {
        "name": "critical-only",
        "match": '{severity="critical"}',
        "group_by": ["service"],
    }
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", critical_only), db_url=sqlite_url
    )
    am = alertmanager.start(itsmd.webhook_url)
    am.push(
        [
            make_alert(
                {"alertname": "BackupSlow", "service": "backup", "severity": "info"},
                starts_at=a_minute_ago(),
            )
        ]
    )

    # 2xx means committed (docs/api.md, Ingestion), so a successful notification means stored.
    am.wait_notified(1, timeout_s=DELIVERY_TIMEOUT_S)
    wait_until(
        lambda: itsmd.metric("itsmd_alerts_unrouted_total") == 1.0,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="itsmd_alerts_unrouted_total 1.0 in /metrics",
    )
    assert itsmd.metric("itsmd_alerts_received_total") == 1.0
    assert list_incidents(itsmd) == []


# --- maintenance windows and known errors ------------------------------------------------


def test_maintenance_window_and_known_error_through_alertmanager(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    rules = write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL)
    known = {
        "name": "error-rate",
        "match": '{alertname="HighErrorRate"}',
        "workaround": "Roll back {{ labels.service }} (runbook RB-1)",
    }
    (rules / "20-known-errors.yml").write_text(yaml.safe_dump({"known_errors": [known]}))
    itsmd = itsmd_server.start(rules_dir=rules, db_url=sqlite_url)
    now = datetime.now(UTC)
    window = {
        "name": "payments-upgrade",
        "match": '{service="payments"}',
        "start": rfc3339(now - timedelta(hours=1)),
        "end": rfc3339(now + timedelta(hours=1)),
        "change": "CHG-9",
    }
    created = itsmd.post("/api/v1/maintenance", json=window)
    assert created.status == 201, created.text
    am = alertmanager.start(itsmd.webhook_url)

    push_checkout_alerts(am, a_minute_ago())
    am.push(
        [
            make_alert(
                {"alertname": "HighLatency", "service": "payments", "severity": "critical"},
                starts_at=a_minute_ago(),
            )
        ]
    )

    (incident,) = wait_for_alerts(itsmd, 3)
    assert incident["known_error"] == "Roll back checkout (runbook RB-1)"
    wait_until(
        lambda: itsmd.metric("itsmd_alerts_suppressed_total", window="payments-upgrade") == 1.0,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="itsmd_alerts_suppressed_total{window=payments-upgrade} 1.0 in /metrics",
    )
    assert [i["service"] for i in list_incidents(itsmd)] == ["checkout"]

    assert itsmd.request("DELETE", "/api/v1/maintenance/payments-upgrade").status == 204

    # The sweep (every second) correlates the alert that still fires.
    payments = wait_until(
        lambda: [i for i in list_incidents(itsmd) if i["service"] == "payments"] or None,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.2,
        what="an incident for the payments alert once its window is gone",
    )
    detail = get_incident(itsmd, payments[0]["id"])
    assert detail["alerts"][0]["decision"]["reason"].startswith(
        "suppressed by maintenance window payments-upgrade (suppress, change CHG-9) until it ended"
    )


def test_symptoms_attach_to_the_upstream_incident_through_alertmanager(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    rules = write_rules(tmp_path / "rules", BY_SERVICE | {"attach_to_upstream": True}, CATCH_ALL)
    catalog = {
        "services": [
            {"name": "checkout", "depends_on": ["postgres"]},
            {"name": "postgres", "tier": 1},
        ]
    }
    (rules / "20-services.yml").write_text(yaml.safe_dump(catalog))
    itsmd = itsmd_server.start(rules_dir=rules, db_url=sqlite_url)
    am = alertmanager.start(itsmd.webhook_url)

    am.push(
        [
            make_alert(
                {"alertname": "PostgresDown", "service": "postgres", "severity": "critical"},
                starts_at=a_minute_ago(),
            )
        ]
    )
    (root,) = wait_for_alerts(itsmd, 1)
    push_checkout_alerts(am, a_minute_ago())

    (incident,) = wait_for_alerts(itsmd, 4)
    assert incident["id"] == root["id"]
    assert incident["service"] == "postgres"
    assert incident["impact"] == "high"  # postgres is tier 1
    detail = get_incident(itsmd, incident["id"])
    symptoms = [a for a in detail["alerts"] if a["labels"]["service"] == "checkout"]
    assert len(symptoms) == 3
    assert {a["decision"]["action"] for a in symptoms} == {"attached"}


def test_recurring_incidents_open_a_problem_through_alertmanager(
    tmp_path: Path, sqlite_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    per_instance = {
        "name": "per-instance",
        "match": "{}",
        "group_by": ["instance"],
        "auto_resolve": "0s",
    }
    rules = write_rules(tmp_path / "rules", per_instance)
    problem = {
        "name": "disk-keeps-filling",
        "match": '{alertname="DiskFull"}',
        "group_by": ["service"],
        "after": 3,
        "within": "1d",
    }
    (rules / "20-problems.yml").write_text(yaml.safe_dump({"problems": [problem]}))
    itsmd = itsmd_server.start(rules_dir=rules, db_url=sqlite_url)
    am = alertmanager.start(itsmd.webhook_url)

    # Three hosts of one service fill their disks: three incidents, one recurrence key.
    am.push(
        [
            make_alert(
                {"alertname": "DiskFull", "service": "storage", "instance": f"nas-{n}"},
                starts_at=a_minute_ago(),
            )
            for n in range(3)
        ]
    )
    wait_for_alerts(itsmd, 3)

    problems = wait_until(
        lambda: itsmd.get("/api/v1/problems").json()["problems"] or None,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="a problem once three incidents of one key opened",
    )
    assert [(p["key"], p["incident_count"]) for p in problems] == [
        ('disk-keeps-filling{service="storage"}', 3)
    ]
    assert itsmd.metric("itsmd_problems_opened_total", rule="disk-keeps-filling") == 1.0


# --- h. what a real Alertmanager sends, checked alert by alert ---------------------------------

# Label text Alertmanager accepts (any UTF-8): its fingerprint of it must be ours.
ODD_LABELS: list[dict[str, str]] = [
    {
        "alertname": "OddLabels",
        "service": "intl",
        "severity": "warning",
        "city": "Zürich",
        "note": 'quotes " and \\ backslash, tab\tand newline\n',
    },
    {
        "alertname": "OddLabels",
        "service": "intl",
        "severity": "warning",
        "city": "東京 🗼",
        "a_very_long_label_name_0123456789": "x" * 2000,
    },
    {"alertname": "OddLabels", "service": "intl", "severity": "warning", "_": "=,{}"},
]


def test_alertmanagers_fingerprints_of_any_label_text_are_accepted(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    """itsmd refuses a fingerprint that is not its labels': every one a real
    Alertmanager sends must pass, the whole group stored."""
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=db_url
    )
    am = alertmanager.start(itsmd.webhook_url)
    am.push([make_alert(labels, starts_at=a_minute_ago()) for labels in ODD_LABELS])

    [incident] = wait_for_alerts(itsmd, len(ODD_LABELS))

    stored = {a["fingerprint"]: a["labels"] for a in get_incident(itsmd, incident["id"])["alerts"]}
    assert stored == {a["fingerprint"]: a["labels"] for a in am.alerts()}
    assert am.notifications_failed() == 0
    assert not itsmd.metric("itsmd_alerts_rejected_total")


def test_an_alert_the_store_cannot_hold_does_not_cost_its_group(
    tmp_path: Path, db_url: str, itsmd_server: ItsmdFactory, alertmanager: AlertmanagerFactory
) -> None:
    """Alertmanager passes a NUL character through (valid UTF-8); PostgreSQL text
    cannot hold one. That alert is refused by its index, the rest of the group stored;
    Alertmanager counts the 422 as a failed notification (it retries no 4xx; a later
    flush of the group is refused the same way and stores nothing twice)."""
    itsmd = itsmd_server.start(
        rules_dir=write_rules(tmp_path / "rules", BY_SERVICE, CATCH_ALL), db_url=db_url
    )
    am = alertmanager.start(itsmd.webhook_url)
    starts_at = a_minute_ago()
    bad = {"summary": "checkout is \x00 slow"}
    am.push(
        [
            make_alert(
                labels,
                starts_at=starts_at,
                annotations=bad if n == 1 else {"summary": "checkout is slow"},
            )
            for n, labels in enumerate(CHECKOUT_ALERTS)
        ]
    )
    assert any("\x00" in a["annotations"].get("summary", "") for a in am.alerts())

    [incident] = wait_for_alerts(itsmd, len(CHECKOUT_ALERTS) - 1)
    wait_until(
        am.notifications_failed,
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
        what="Alertmanager to count the notification answered 422",
    )

    stored = get_incident(itsmd, incident["id"])["alerts"]
    assert sorted(a["labels"]["instance"] for a in stored) == ["checkout-1", "checkout-1"]
    assert {a["labels"]["alertname"] for a in stored} == {"HighErrorRate", "HighLatency"}
    assert (itsmd.metric("itsmd_alerts_rejected_total", reason="invalid_alert") or 0) >= 1
    assert not itsmd.metric("itsmd_alerts_rejected_total", reason="error")
    assert "Traceback" not in itsmd.log
