"""End-to-end: reconciliation against real Alertmanagers (docs/connectors.md,
"Reconciliation with Alertmanager").

The lost resolve: itsmd is down while the alerts resolve, then Alertmanager
restarts (it keeps alerts in memory only), so the resolve is never delivered.
Reconciliation must resolve the incident; an Alertmanager out of reach must stop
it from resolving anything; an alert Alertmanager never delivered is ingested,
one it holds silenced is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsmd.durations import parse_time
from tests.conftest import get_free_port, wait_until
from tests.e2e.conftest import (
    AlertmanagerFactory,
    ItsmdFactory,
    ItsmdProc,
    http_request,
    make_alert,
    rfc3339,
)

pytestmark = pytest.mark.e2e

EVERY_S, GRACE_S = 1, 5  # grace above the Alertmanagers' group_interval (2s): docs/connectors.md
# A repair is due within grace + one round; the rest is slack for a slow machine.
REPAIR_TIMEOUT_S = GRACE_S + EVERY_S + 8
RULES = {
    "incidents": [
        {"name": "by-alertname", "match": "{}", "group_by": ["alertname"], "auto_resolve": "0s"}
    ]
}


def reconcile_config(*urls: str) -> dict[str, Any]:
    return {
        "connectors": {
            "alertmanager": {
                "urls": list(urls),
                "reconcile_every": f"{EVERY_S}s",
                "grace": f"{GRACE_S}s",
                "timeout": "500ms",
            }
        }
    }


def start_itsmd(itsmd_server: ItsmdFactory, tmp_path: Path, *urls: str) -> ItsmdProc:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yml").write_text(yaml.safe_dump(RULES))
    return itsmd_server.start(rules_dir=rules, config=reconcile_config(*urls))


def down_alerts(n: int = 3) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(minutes=1)
    return [
        make_alert({"alertname": "Down", "instance": f"api-{i}"}, starts_at=start) for i in range(n)
    ]


def incident(itsmd: ItsmdProc, ref: str = "INC-1") -> dict[str, Any]:
    answer = itsmd.get(f"/api/v1/incidents/{ref}")
    assert answer.status == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def firing_count(itsmd: ItsmdProc) -> int | None:
    answer = itsmd.get("/api/v1/incidents/INC-1")
    return answer.json()["firing_count"] if answer.status == 200 else None


def test_a_resolve_lost_with_an_alertmanager_restart_is_reconciled(
    tmp_path: Path, alertmanager: AlertmanagerFactory, itsmd_server: ItsmdFactory
) -> None:
    am_port = get_free_port()
    itsmd = start_itsmd(itsmd_server, tmp_path, f"http://127.0.0.1:{am_port}")
    am = alertmanager.start(itsmd.webhook_url, port=am_port)
    alerts = down_alerts()
    am.push(alerts)
    wait_until(lambda: firing_count(itsmd) == 3, timeout_s=10, what="3 alerts firing in INC-1")

    itsmd.stop()
    for alert in alerts:
        am.resolve(alert["labels"], starts_at=datetime.now(UTC) - timedelta(minutes=1))
    am.restart()  # the undelivered resolves are gone with Alertmanager's memory
    assert am.alerts() == []
    itsmd.restart()
    assert firing_count(itsmd) == 3  # what itsmd believes until it reconciles

    wait_until(
        lambda: incident(itsmd)["status"] == "resolved",
        timeout_s=REPAIR_TIMEOUT_S,
        what=lambda: f"INC-1 resolved by reconciliation: {incident(itsmd)}",
    )
    inc = incident(itsmd)
    assert inc["firing_count"] == 0
    assert {a["status"] for a in inc["alerts"]} == {"resolved"}
    lines = [t["message"] for t in inc["timeline"] if t["kind"] == "reconciled"]
    assert len(lines) == 3, inc["timeline"]
    assert all(f"no Alertmanager asked (http://127.0.0.1:{am_port})" in m for m in lines)
    assert any(t["kind"] == "auto_resolved" for t in inc["timeline"])
    assert itsmd.metric("itsmd_reconcile_repairs_total", kind="resolved") == 3
    assert itsmd.metric("itsmd_leader", job="reconcile") == 1

    status = itsmd.get("/api/v1/reconcile").json()
    assert status["configured"] is True
    assert status["grace"] == f"{GRACE_S}s"
    last = status["last_round"]
    assert last["complete"] is True
    assert last["alertmanagers"] == [
        {"url": f"http://127.0.0.1:{am_port}", "answered": True, "alerts": 0, "error": None}
    ]


def test_an_alertmanager_out_of_reach_stops_every_resolve(
    tmp_path: Path, alertmanager: AlertmanagerFactory, itsmd_server: ItsmdFactory
) -> None:
    am_port, dead = get_free_port(), f"http://127.0.0.1:{get_free_port()}"
    itsmd = start_itsmd(itsmd_server, tmp_path, f"http://127.0.0.1:{am_port}", dead)
    am = alertmanager.start(itsmd.webhook_url, port=am_port)
    am.push(down_alerts(1))
    wait_until(lambda: firing_count(itsmd) == 1, timeout_s=10, what="1 alert firing in INC-1")
    am.restart()  # it forgets the alert, which is still firing in itsmd

    errors_then = itsmd.metric("itsmd_reconcile_errors_total") or 0
    rounds = GRACE_S // EVERY_S + 2  # well past grace
    wait_until(
        lambda: (itsmd.metric("itsmd_reconcile_errors_total") or 0) >= errors_then + rounds,
        timeout_s=REPAIR_TIMEOUT_S,
        what=f"{rounds} rounds that could not reach the second Alertmanager",
    )
    assert firing_count(itsmd) == 1  # well past grace, and still not proven absent
    last = itsmd.get("/api/v1/reconcile").json()["last_round"]
    assert last["complete"] is False
    assert last["resolved"] == 0
    out = [a for a in last["alertmanagers"] if a["url"] == dead]
    assert out[0]["answered"] is False
    assert "connection refused" in out[0]["error"]

    # The unreachable one is taken out of the config: the next rounds prove absence.
    itsmd.config_path.write_text(yaml.safe_dump(reconcile_config(am.url)))
    assert itsmd.post("/-/reload").status == 200
    wait_until(
        lambda: firing_count(itsmd) == 0,
        timeout_s=REPAIR_TIMEOUT_S,
        what="the alert resolved once every Alertmanager answers",
    )
    assert itsmd.metric("itsmd_reconcile_repairs_total", kind="resolved") == 1


def test_an_alert_never_delivered_is_ingested_and_a_silenced_one_is_not(
    tmp_path: Path, alertmanager: AlertmanagerFactory, itsmd_server: ItsmdFactory
) -> None:
    am_port = get_free_port()
    itsmd = start_itsmd(itsmd_server, tmp_path, f"http://127.0.0.1:{am_port}")
    # Alertmanager's webhook goes nowhere: nothing it holds is ever delivered.
    am = alertmanager.start(f"http://127.0.0.1:{get_free_port()}/hook", port=am_port)
    start = datetime.now(UTC) - timedelta(minutes=1)
    silence = {
        "matchers": [{"name": "alertname", "value": "Muted", "isRegex": False}],
        "startsAt": rfc3339(start),
        "endsAt": rfc3339(start + timedelta(hours=1)),
        "createdBy": "test",
        "comment": "planned work",
    }
    answer = http_request("POST", f"{am.url}/api/v2/silences", json_body=silence)
    assert answer.status == 200, answer.text
    am.push(
        [
            make_alert({"alertname": "Lost", "instance": "db-1"}, starts_at=start),
            make_alert({"alertname": "Muted", "instance": "db-1"}, starts_at=start),
        ]
    )
    wait_until(
        lambda: itsmd.get("/api/v1/incidents/INC-1").status == 200,
        timeout_s=REPAIR_TIMEOUT_S,
        what="the undelivered alert ingested by reconciliation",
    )
    inc = incident(itsmd)
    assert inc["firing_count"] == 1
    assert [a["labels"]["alertname"] for a in inc["alerts"]] == ["Lost"]
    assert parse_time(inc["alerts"][0]["startsAt"]) == start.replace(
        microsecond=start.microsecond // 1000 * 1000  # Alertmanager keeps milliseconds
    )
    lines = [t["message"] for t in inc["timeline"] if t["kind"] == "reconciled"]
    assert len(lines) == 1, inc["timeline"]
    assert f"held as active by {am.url}" in lines[0]

    # Had the silenced alert been ingestible, a round by now + grace would take it.
    later = rfc3339(datetime.now(UTC) + timedelta(seconds=GRACE_S))
    wait_until(
        lambda: itsmd.get("/api/v1/reconcile").json()["last_round"]["at"] > later,
        timeout_s=REPAIR_TIMEOUT_S,
        what=f"a round after {later}",
    )
    stored = itsmd.get("/api/v1/alerts?filter=alertname%3D%22Muted%22").json()["alerts"]
    assert stored == []  # silenced in Alertmanager: it would not have sent it either
    assert itsmd.metric("itsmd_reconcile_repairs_total", kind="ingested") == 1
    assert itsmd.get("/api/v1/incidents/INC-2").status == 404
