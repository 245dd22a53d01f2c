"""End-to-end: two `itsmd run` daemons on one PostgreSQL, alerts of the same incidents
posted to both at once, give exactly the counts one process gives."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ItsmdFactory, ItsmdProc, rfc3339

pytestmark = pytest.mark.e2e

RULES = {
    "incidents": [
        {
            "name": "by-service",
            "match": "{}",
            "group_by": ["service"],
            "window": "1h",
            "auto_resolve": "0s",
        }
    ]
}
SERVICES = ("api", "db", "web")
PER_SERVICE = 100
BATCH = 5
SENDERS = 8


def webhook(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "itsmd",
        "groupKey": "{}:{}",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": alerts,
    }


def send_all(replicas: list[ItsmdProc], alerts: list[dict[str, Any]]) -> None:
    """Batches of BATCH to a random replica from SENDERS threads; a 5xx is sent
    again, as Alertmanager does."""
    batches = [alerts[i : i + BATCH] for i in range(0, len(alerts), BATCH)]
    pick = random.Random(7)
    targets = [pick.choice(replicas) for _ in batches]

    def post(job: tuple[ItsmdProc, list[dict[str, Any]]]) -> int:
        replica, batch = job
        for _ in range(30):
            answer = replica.request(
                "POST", "/api/v1/webhooks/alertmanager", json_body=webhook(batch)
            )
            if answer.status < 500:
                return answer.status
        return answer.status

    with ThreadPoolExecutor(SENDERS) as pool:
        statuses = list(pool.map(post, zip(targets, batches, strict=True)))
    assert set(statuses) == {200}, statuses


def incidents(replica: ItsmdProc) -> dict[str, dict[str, Any]]:
    body = replica.get("/api/v1/incidents?limit=100").json()
    return {
        i["service"]: replica.get(f"/api/v1/incidents/{i['id']}").json() for i in body["incidents"]
    }


def test_two_daemons_on_one_postgresql_keep_counts_exact(
    tmp_path: Path, postgres_url: str, itsmd_server: ItsmdFactory
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yml").write_text(yaml.safe_dump(RULES))
    replicas = [itsmd_server.start(rules_dir=rules, db_url=postgres_url) for _ in range(2)]
    start = datetime.now(UTC) - timedelta(minutes=1)
    firing = [
        {
            "status": "firing",
            "labels": {"alertname": "Down", "service": s, "instance": f"{s}-{n}"},
            "annotations": {},
            "startsAt": rfc3339(start),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
        }
        for n in range(PER_SERVICE)
        for s in SERVICES
    ]
    random.Random(1).shuffle(firing)

    send_all(replicas, firing)
    for service, inc in incidents(replicas[1]).items():
        assert (inc["alert_count"], inc["firing_count"]) == (PER_SERVICE, PER_SERVICE), service
        assert len(inc["alerts"]) == PER_SERVICE

    keep = {a["labels"]["instance"] for a in firing[:: PER_SERVICE // 4]}
    ending = [
        {**a, "status": "resolved", "endsAt": rfc3339(datetime.now(UTC))}
        for a in firing
        if a["labels"]["instance"] not in keep
    ]
    send_all(replicas, ending)

    for service, inc in incidents(replicas[0]).items():
        still = [a for a in inc["alerts"] if a["status"] == "firing"]
        assert (inc["alert_count"], inc["firing_count"]) == (len(inc["alerts"]), len(still))
        assert inc["status"] == ("resolved" if not still else "open"), service
    assert sum(i["firing_count"] for i in incidents(replicas[0]).values()) == len(keep)
