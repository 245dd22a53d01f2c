"""End-to-end high availability: two real Alertmanagers (a cluster, then two
unclustered ones), each posting to both of two itsmd replicas on one PostgreSQL,
with nothing in between but the two URLs (docs/operations.md, "High availability").

Alert groups are fired with amtool and with Alertmanager's API, to both
Alertmanagers as Prometheus does; the counts must be exactly those of one process.
Then the replica that leads is killed (SIGKILL): checks, the SLA clock, outbox
deliveries and reconciliation go on on the other within 30 s, and a resolve lost
while itsmd was down and the Alertmanagers restarted is repaired by reconciliation.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import get_free_port, require_binary, wait_until
from tests.e2e.conftest import (
    AlertmanagerFactory,
    AlertmanagerProc,
    ItsmdFactory,
    ItsmdProc,
    make_alert,
    rfc3339,
)
from tests.e2e.hook_peer import SECRET, Peer

pytestmark = pytest.mark.e2e

GROUPS = 6  # alert groups, half fired with amtool, half with the API
PER_GROUP = 3
TAKEOVER_S = 30.0  # the lease runs out 15 s after its holder died; renewals every 5 s
EVERY_S, GRACE_S = 1, 5  # grace above the Alertmanagers' group_interval (2s): docs/connectors.md
RULES: dict[str, Any] = {
    "incidents": [
        {"name": "by-alertname", "match": "{}", "group_by": ["alertname"], "auto_resolve": "0s"}
    ],
}


def amtool_add(am: AlertmanagerProc, labels: dict[str, str], start: datetime) -> None:
    amtool = require_binary("amtool")
    args = [f"{k}={v}" for k, v in labels.items()]
    result = subprocess.run(
        [
            amtool,
            f"--alertmanager.url={am.url}",
            "alert",
            "add",
            *args,
            f"--start={rfc3339(start)}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def fire(ams: list[AlertmanagerProc], group: int, start: datetime) -> list[dict[str, str]]:
    """One group of PER_GROUP alerts, sent to every Alertmanager as Prometheus does."""
    labels = [{"alertname": f"Group{group}", "instance": f"i-{n}"} for n in range(PER_GROUP)]
    for am in ams:
        if group % 2:
            for one in labels:
                amtool_add(am, one, start)
        else:
            am.push([make_alert(one, starts_at=start) for one in labels])
    return labels


def incidents(replica: ItsmdProc) -> dict[str, dict[str, Any]]:
    """Every incident by its key (`rule{alertname="..."}`), as the full JSON."""
    body = replica.get("/api/v1/incidents?status=open,acknowledged,resolved&limit=100").json()
    return {i["key"]: replica.get(f"/api/v1/incidents/{i['id']}").json() for i in body["incidents"]}


def stored_alerts(replica: ItsmdProc) -> list[dict[str, Any]]:
    answer = replica.get("/api/v1/alerts?limit=500&state=firing,resolved,suppressed,unrouted")
    assert answer.status == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["alerts"]
    return items


def start_replicas(
    itsmd_server: ItsmdFactory,
    tmp_path: Path,
    postgres_url: str,
    config: dict[str, Any],
    rules: dict[str, Any] = RULES,
    env: dict[str, str] | None = None,
) -> list[ItsmdProc]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "rules.yml").write_text(yaml.safe_dump(rules))
    return [
        itsmd_server.start(rules_dir=rules_dir, db_url=postgres_url, config=config, env=env)
        for _ in range(2)
    ]


def start_alertmanagers(
    alertmanager: AlertmanagerFactory, replicas: list[ItsmdProc], *, clustered: bool
) -> list[AlertmanagerProc]:
    hooks = [r.webhook_url for r in replicas]
    first = alertmanager.start(hooks, cluster=clustered)
    second = alertmanager.start(hooks, cluster=clustered, peers=[first] if clustered else ())
    if clustered:
        for am in (first, second):
            am.wait_cluster_ready(2)
    return [first, second]


@pytest.mark.parametrize("clustered", [True, False], ids=["cluster", "unclustered"])
def test_two_alertmanagers_and_two_replicas_store_each_alert_once(
    clustered: bool,
    tmp_path: Path,
    postgres_url: str,
    alertmanager: AlertmanagerFactory,
    itsmd_server: ItsmdFactory,
) -> None:
    replicas = start_replicas(itsmd_server, tmp_path, postgres_url, {})
    ams = start_alertmanagers(alertmanager, replicas, clustered=clustered)
    start = datetime.now(UTC) - timedelta(minutes=1)
    fired = {g: fire(ams, g, start) for g in range(GROUPS)}

    def settled() -> bool:
        found = incidents(replicas[0])
        return len(found) == GROUPS and all(i["firing_count"] == PER_GROUP for i in found.values())

    wait_until(settled, timeout_s=20, what=lambda: f"{GROUPS} incidents of {PER_GROUP} firing")
    for replica in replicas:  # the same truth whichever replica answers
        found = incidents(replica)
        assert len(found) == GROUPS
        for inc in found.values():
            assert (inc["alert_count"], inc["firing_count"]) == (PER_GROUP, PER_GROUP)
        alerts = stored_alerts(replica)
        assert len(alerts) == GROUPS * PER_GROUP  # each alert stored once
        assert len({a["fingerprint"] for a in alerts}) == GROUPS * PER_GROUP
    # Every replica got deliveries: each Alertmanager sends to both URLs.
    for replica in replicas:
        assert (replica.metric("itsmd_alerts_received_total", source="alertmanager") or 0) > 0

    for labels in fired.values():
        for am in ams:
            for one in labels:
                am.resolve(one, starts_at=start)
    wait_until(
        lambda: all(i["status"] == "resolved" for i in incidents(replicas[1]).values()),
        timeout_s=20,
        what="every incident resolved",
    )
    found = incidents(replicas[1])
    assert len(found) == GROUPS
    assert {(i["alert_count"], i["firing_count"]) for i in found.values()} == {(PER_GROUP, 0)}
    assert len(stored_alerts(replicas[0])) == GROUPS * PER_GROUP


def leader(replicas: list[ItsmdProc], job: str) -> ItsmdProc | None:
    leading = [r for r in replicas if r.running and r.metric("itsmd_leader", job=job) == 1]
    assert len(leading) <= 1, f"{len(leading)} replicas lead {job}"
    return leading[0] if leading else None


def test_a_killed_replica_hands_over_checks_sla_outbox_and_reconciliation(
    tmp_path: Path,
    postgres_url: str,
    alertmanager: AlertmanagerFactory,
    itsmd_server: ItsmdFactory,
    peer: Peer,
) -> None:
    peer.failing = False
    am_ports = [get_free_port(), get_free_port()]
    rules = {
        **RULES,
        "checks": [
            {
                "name": "closed-port",
                "type": "tcp",
                "target": f"127.0.0.1:{get_free_port()}",
                "interval": "1s",
                "timeout": "500ms",
            }
        ],
    }
    config = {
        "sla": {p: {"respond": "3s", "resolve": "1h"} for p in ("P1", "P2", "P3", "P4", "P5")},
        "connectors": {
            "alertmanager": {
                "urls": [f"http://127.0.0.1:{port}" for port in am_ports],
                "reconcile_every": f"{EVERY_S}s",
                "grace": f"{GRACE_S}s",
                "timeout": "500ms",
            },
            "sinks": {"hook": peer.sink()},
        },
        "routes": [{"name": "all", "to": ["hook"]}],
    }
    replicas = start_replicas(
        itsmd_server, tmp_path, postgres_url, config, rules, env={"HOOK_SECRET": SECRET}
    )
    hooks = [r.webhook_url for r in replicas]
    first = alertmanager.start(hooks, cluster=True, port=am_ports[0])
    second = alertmanager.start(hooks, cluster=True, peers=[first], port=am_ports[1])
    ams = [first, second]
    for am in ams:
        am.wait_cluster_ready(2)

    lead = wait_until(lambda: leader(replicas, "checks"), timeout_s=TAKEOVER_S, what="a leader")
    assert leader(replicas, "reconcile") is lead
    survivor = next(r for r in replicas if r is not lead)
    lead.kill()
    killed_at = datetime.now(UTC)

    # The survivor takes the lead: checks and reconciliation rounds run there.
    assert wait_until(lambda: leader([survivor], "checks"), timeout_s=TAKEOVER_S) is survivor

    def check_ran_since_kill() -> bool:
        checks = survivor.get("/api/v1/checks").json()["checks"]
        return bool(checks[0]["last_run"] and checks[0]["last_run"] > rfc3339(killed_at))

    wait_until(check_ran_since_kill, timeout_s=TAKEOVER_S, what="a check run after the kill")

    def reconciled_since_kill() -> bool:
        status = survivor.get("/api/v1/reconcile").json()
        last = status["last_round"]
        return bool(status["leader"] and last and last["at"] > rfc3339(killed_at))

    wait_until(reconciled_since_kill, timeout_s=TAKEOVER_S, what="a round after the kill")

    # A new incident after the kill: the outbox delivers, the SLA clock marks the breach.
    start = datetime.now(UTC) - timedelta(minutes=1)
    labels = fire(ams, 0, start)
    inc = wait_until(
        lambda: next(
            (i for k, i in incidents(survivor).items() if k.endswith('{alertname="Group0"}')), None
        ),
        timeout_s=TAKEOVER_S,
        what="the incident of the group fired after the kill",
    )
    ref = inc["id"]

    def events() -> list[str]:
        with peer.lock:
            return [d["event"] for d in peer.accepted if d["incident"]["id"] == ref]

    wait_until(
        lambda: {"opened", "sla_breached"} <= set(events()),
        timeout_s=TAKEOVER_S,
        what=lambda: f"opened and sla_breached of {ref} delivered, got {events()}",
    )
    assert peer.bad == []
    assert events().count("opened") == 1

    # The lost resolve: itsmd is down while the alerts resolve, then the Alertmanagers
    # restart and forget them; reconciliation resolves the incident.
    survivor.stop()
    for am in ams:
        for one in labels:
            am.resolve(one, starts_at=start)
    for am in ams:
        am.restart()
    for am in ams:
        am.wait_cluster_ready(2)
    assert all(am.alerts() == [] for am in ams)
    survivor.restart()
    wait_until(
        lambda: survivor.get(f"/api/v1/incidents/{ref}").json()["status"] == "resolved",
        timeout_s=GRACE_S + EVERY_S + 10,
        what=f"{ref} resolved by reconciliation",
    )
    detail = survivor.get(f"/api/v1/incidents/{ref}").json()
    assert [t["kind"] for t in detail["timeline"]].count("reconciled") == PER_GROUP
    assert detail["firing_count"] == 0
