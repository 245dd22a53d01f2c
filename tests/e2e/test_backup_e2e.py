"""`itsmd backup` while the daemon ingests a burst, `itsmd restore` into a new daemon
(docs/operations.md, Backup and restore).

The daemons are real processes on loopback; the burst is a thread posting
Alertmanager webhooks; the commands run as the `itsmd` CLI does, through `main`.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.cli.main import main
from itsmd.correlation.fingerprint import fingerprint
from tests.conftest import wait_until
from tests.e2e.conftest import ItsmdFactory, ItsmdProc, http_request, rfc3339

pytestmark = pytest.mark.e2e

BURST_BATCH = 5  # alerts per webhook
ACKED = 4  # incidents acknowledged before the backup, of INCIDENTS_BEFORE
INCIDENTS_BEFORE = 8


def webhook_body(instances: list[str], starts_at: datetime) -> dict[str, Any]:
    alerts = []
    for instance in instances:
        labels = {"alertname": "BurstDown", "instance": instance}
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": rfc3339(starts_at),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint(labels),
            }
        )
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BurstDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "itsmd",
        "groupLabels": {"alertname": "BurstDown"},
        "commonLabels": {"alertname": "BurstDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


@dataclass
class Burst:
    """Posts webhooks of new alerts until stopped; remembers what was sent and which
    alerts the daemon acknowledged with a 2xx."""

    server: ItsmdProc
    sent: int = 0
    acknowledged: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        starts_at = datetime.now(UTC) - timedelta(minutes=1)
        batch = 0
        while not self.stop.is_set():
            instances = [f"b-{batch}-{i}" for i in range(BURST_BATCH)]
            batch += 1
            with self.lock:
                self.sent += len(instances)
            resp = self.server.post(
                "/api/v1/webhooks/alertmanager", webhook_body(instances, starts_at)
            )
            with self.lock:
                if 200 <= resp.status < 300:
                    self.acknowledged.extend(instances)
                else:
                    self.failures.append(f"{resp.status} {resp.text}")

    def acknowledged_now(self) -> set[str]:
        with self.lock:
            return set(self.acknowledged)

    def sent_now(self) -> int:
        with self.lock:
            return self.sent


@pytest.fixture
def burst_of(itsmd_server: ItsmdFactory) -> Iterator[Any]:
    threads: list[tuple[Burst, threading.Thread]] = []

    def start(server: ItsmdProc) -> Burst:
        burst = Burst(server)
        thread = threading.Thread(target=burst.run, name="burst", daemon=True)
        thread.start()
        threads.append((burst, thread))
        return burst

    yield start
    for burst, thread in threads:
        burst.stop.set()
        thread.join(timeout=10)


def facts(output: str) -> dict[str, str]:
    """The command's `name: value` lines."""
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def all_alerts(server: ItsmdProc) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        resp = server.get(f"/api/v1/alerts?{urllib.parse.urlencode(query)}")
        assert resp.status == 200, resp.text
        page = resp.json()
        found.extend(page["alerts"])
        cursor = page["next"]
        if cursor is None:
            return found


def incidents_by_id(server: ItsmdProc) -> Mapping[str, dict[str, Any]]:
    resp = server.get("/api/v1/incidents?status=open,acknowledged,resolved&limit=500")
    assert resp.status == 200, resp.text
    return {inc["id"]: inc for inc in resp.json()["incidents"]}


def open_and_acknowledge(server: ItsmdProc) -> list[str]:
    """INCIDENTS_BEFORE incidents (one per alert name); the ids of the ACKED acknowledged."""
    for n in range(INCIDENTS_BEFORE):
        resp = server.post("/api/v1/alerts", [{"labels": {"alertname": f"Down{n}"}}])
        assert resp.status == 200, resp.text
    ids = sorted(incidents_by_id(server))
    assert len(ids) == INCIDENTS_BEFORE
    for incident_id in ids[:ACKED]:
        resp = server.post(f"/api/v1/incidents/{incident_id}/ack", {"note": "on it"})
        assert resp.status == 200, resp.text
    return ids[:ACKED]


def test_a_backup_taken_during_a_burst_restores_into_a_daemon_with_every_acknowledged_alert(
    itsmd_server: ItsmdFactory,
    burst_of: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = itsmd_server.start()
    acked_incidents = open_and_acknowledge(first)
    burst = burst_of(first)
    wait_until(lambda: len(burst.acknowledged_now()) >= 200, timeout_s=20, what="200 alerts in")

    answered_before = burst.acknowledged_now()
    target = tmp_path / "backups" / "itsmd.db"
    target.parent.mkdir()
    code = main(["backup", str(target), "--db", first.db_url])
    sent_after = burst.sent_now()
    wait_until(
        lambda: len(burst.acknowledged_now()) >= len(answered_before) + 50,
        timeout_s=20,
        what="the burst going on after the backup",
    )
    burst.stop.set()

    out, err = capsys.readouterr()
    assert code == 0, err
    backup_facts = facts(out)
    assert backup_facts["written"] == str(target)
    assert backup_facts["integrity"] == "ok"
    assert not burst.failures, burst.failures[:3]
    # One consistent moment between the start and the end of the backup: everything
    # answered before it, nothing not yet sent after it.
    in_backup = int(backup_facts["alerts"])
    assert INCIDENTS_BEFORE + len(answered_before) <= in_backup <= INCIDENTS_BEFORE + sent_after
    assert int(backup_facts["incidents"]) == INCIDENTS_BEFORE + 1  # and BurstDown's

    restored = tmp_path / "restored" / "itsmd.db"
    restored.parent.mkdir()
    restored_url = f"sqlite+aiosqlite:///{restored}"
    assert main(["restore", str(target), "--db", restored_url]) == 0, capsys.readouterr().err
    second = itsmd_server.start(db_url=restored_url)

    incidents = incidents_by_id(second)
    assert len(incidents) == INCIDENTS_BEFORE + 1
    for incident_id in acked_incidents:
        assert incidents[incident_id]["status"] == "acknowledged", incidents[incident_id]
        assert incidents[incident_id]["acknowledged_at"] is not None
    alerts = all_alerts(second)
    assert len(alerts) == in_backup
    instances = {a["labels"].get("instance") for a in alerts}
    assert answered_before <= instances, sorted(answered_before - instances)[:5]


def test_restore_refuses_while_the_daemon_runs_and_keeps_the_old_store_after(
    itsmd_server: ItsmdFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = itsmd_server.start()
    acked = open_and_acknowledge(server)
    target = tmp_path / "itsmd-backup.db"
    assert main(["backup", str(target), "--db", server.db_url]) == 0
    resp = server.post("/api/v1/alerts", [{"labels": {"alertname": "AfterTheBackup"}}])
    assert resp.status == 200, resp.text
    db_file = Path(server.db_url.split(":///", 1)[1])
    capsys.readouterr()

    assert main(["restore", str(target), "--db", server.db_url]) == 1
    err = capsys.readouterr().err
    assert f"{db_file} is in use" in err
    assert http_request("GET", f"{server.url}/-/ready").status == 200  # left untouched
    assert any("AfterTheBackup" in i["title"] for i in incidents_by_id(server).values())

    assert server.stop() == 0
    assert main(["restore", str(target), "--db", server.db_url]) == 0
    out = facts(capsys.readouterr().out)
    kept = Path(out["previous store kept"])
    assert kept == db_file.with_name(db_file.name + ".before-restore")
    assert not db_file.with_name(db_file.name + "-wal").exists()

    server.restart()
    titles = {i["title"] for i in incidents_by_id(server).values()}
    assert not any("AfterTheBackup" in title for title in titles)
    assert all(incidents_by_id(server)[i]["status"] == "acknowledged" for i in acked)
    # The kept store is whole without its WAL: a daemon opens it with the later alert.
    other = itsmd_server.start(db_url=f"sqlite+aiosqlite:///{kept}")
    assert any("AfterTheBackup" in i["title"] for i in incidents_by_id(other).values())
