"""Ingest batches in a process of their own (runtime/ingestproc.py), the default on a
SQLite file: every API test on SQLite goes through it. These tests cover what is its
own: batches leave the daemon's process, a child that dies, a reload, a human's
change to an incident, signals, the stop."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from itsmd.correlation.fingerprint import fingerprint
from itsmd.correlation.rules import parse_rule_sections
from itsmd.models import Alert, AlertStatus
from itsmd.runtime.batches import Context, Done, drop_notes
from itsmd.runtime.hotstate import CurrentIncidents
from itsmd.runtime.ingestproc import (
    ProcessBatches,
    Request,
    pickle_request,
    portable,
    store_requests,
)
from itsmd.runtime.writer import is_conflict
from itsmd.store.engine import Database, SqliteWriter, StoreUnavailable, describe_error
from itsmd.store.migrate import upgrade
from tests.api.api_support import WEBHOOK, ApiClient, MakeClient, alert, webhook_body

RULES = """\
incidents:
  - name: by-service
    match: '{severity="critical"}'
    group_by: [service]
    window: 15m
"""


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: PostgreSQL's batches run in the daemon's process."""
    return sqlite_url


def runner(client: ApiClient) -> ProcessBatches:
    writer = client.runtime.writer
    assert writer is not None
    batches = writer.batches
    assert isinstance(batches, ProcessBatches)
    return batches


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def stored(client: ApiClient) -> list[str]:
    return sorted(row["labels"]["alertname"] for row in await client.stored_alerts())


async def test_batches_run_in_a_child_process(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    result = await client.webhook(alert("A", severity="critical", service="db"))
    assert result["new"] == 1
    pid = runner(client).pid
    assert pid is not None
    assert pid != os.getpid()
    assert alive(pid)
    assert await stored(client) == ["A"]


async def test_the_ingest_process_can_be_turned_off(make_client: MakeClient) -> None:
    client = await make_client(RULES, ingest_process=False)
    writer = client.runtime.writer
    assert writer is not None
    assert not isinstance(writer.batches, ProcessBatches)
    assert (await client.webhook(alert("A", severity="critical", service="db")))["new"] == 1


async def test_a_child_killed_between_batches_is_replaced_and_nothing_is_lost(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("A", severity="critical", service="db"))
    first = runner(client).pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    while alive(first):
        await asyncio.sleep(0.01)
    result = await client.webhook(alert("B", severity="critical", service="db"))
    assert result["new"] == 1
    assert runner(client).pid not in (None, first)
    assert await stored(client) == ["A", "B"]
    # The new child learned the open incident from the store, not from memory.
    assert len(await client.incidents()) == 1


async def test_a_child_that_dies_under_a_batch_answers_503_and_the_resend_is_stored_once(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("A", severity="critical", service="db"))
    batches = runner(client)
    pid, sent = batches.pid, batches.sent
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the batch reaches the pipe, never an answer
    body = webhook_body(alert("B", severity="critical", service="db"))
    posted = asyncio.create_task(client.post(WEBHOOK, json=body))
    while batches.sent == sent:
        await asyncio.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    resp = await posted
    assert resp.status == 503, await resp.text()
    assert "ingest process ended" in await resp.text()
    again = await client.ingest(WEBHOOK, body)  # as Alertmanager retries
    assert again["new"] + again["duplicate"] + again["updated"] == 1
    assert await stored(client) == ["A", "B"]


async def test_a_reload_reaches_the_child(make_client: MakeClient, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    client = await make_client(RULES, rules=(str(rules),))
    await client.webhook(alert("A", severity="critical", service="db"))
    rules.write_text(RULES.replace("by-service", "by-service-v2"))
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    await client.webhook(alert("B", severity="critical", service="web"))
    assert sorted(i["rule"] for i in await client.incidents()) == ["by-service", "by-service-v2"]


async def test_an_incident_a_human_resolved_takes_no_more_alerts_in_the_child(
    make_client: MakeClient,
) -> None:
    """The child keeps current incidents in memory: a resolve by a human, written by
    the daemon itself, makes it read them again."""
    client = await make_client(RULES)
    opened = await client.webhook(alert("A", severity="critical", service="db"))
    ref = opened["incidents"][0]
    resp = await client.act(ref, "resolve", {"note": "fixed by hand"})
    assert resp.status == 200, await resp.text()
    later = await client.webhook(alert("B", severity="critical", service="db"))
    assert later["incidents"] != [ref]
    assert (await client.incident(ref))["status"] == "resolved"


async def test_signals_for_the_whole_group_leave_the_child_to_the_daemon(
    make_client: MakeClient,
) -> None:
    """Ctrl-C in a terminal, systemd's stop and reload reach every process of the
    service: the child waits for the daemon to stop it after its queue."""
    client = await make_client(RULES)
    await client.webhook(alert("A", severity="critical", service="db"))
    pid = runner(client).pid
    assert pid is not None
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(pid, signum)
    await client.webhook(alert("B", severity="critical", service="db"))
    assert runner(client).pid == pid
    assert alive(pid)


async def test_the_child_ends_with_the_daemon(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("A", severity="critical", service="db"))
    pid = runner(client).pid
    assert pid is not None
    await client.close()
    assert not alive(pid)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a clean stop"


def test_a_database_error_crosses_with_its_class() -> None:
    """The writer retries a conflict, splits a batch on a faulty statement and answers
    503 when the store is unavailable: it tells them apart by the error's class and
    the driver's own error, which the child's errors keep."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER UNIQUE)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(IntegrityError) as raised:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    crossed = pickle.loads(pickle.dumps(portable(raised.value))).received()
    assert isinstance(crossed, IntegrityError)
    assert is_conflict(crossed)
    assert describe_error(crossed) == "IntegrityError: UNIQUE constraint failed: t.a"
    assert any("raised in the ingest process" in note for note in crossed.__notes__)


def test_alerts_cross_the_pipe_with_what_correlation_reads_of_their_payload() -> None:
    """Of an alert's raw payload only whether it gave startsAt crosses (a send without
    it continues the episode it belongs to); every field crosses as it is."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    labels = {"alertname": "A", "severity": "critical"}
    payload = {"labels": labels, "startsAt": now.isoformat(), "extra": "x" * 1000}
    given = Alert(
        fingerprint(labels), AlertStatus.FIRING, labels, {"s": "t"}, now, None, "u", "am", payload
    )
    without = Alert(fingerprint(labels), AlertStatus.RESOLVED, labels, {}, now, now, "", "am", {})

    data = pickle_request(Request([[given, without]], now, None, False))
    (job,) = pickle.loads(data).jobs

    assert job == [given, without]  # every field (raw is not compared)
    assert [alert.raw for alert in job] == [{"startsAt": None}, {}]
    assert len(data) < 1000  # the rest of the payload stayed behind


def test_an_error_that_does_not_pickle_crosses_as_its_text() -> None:
    class Local(Exception):  # a class pickle cannot find by name
        pass

    crossed = pickle.loads(pickle.dumps(portable(Local("no such thing")))).received()
    assert type(crossed) is RuntimeError
    assert str(crossed) == "Local: no such thing"
    assert any("raised in the ingest process" in note for note in crossed.__notes__)


async def test_a_faulty_request_merged_with_others_fails_alone(sqlite_url: str) -> None:
    """The child runs the requests waiting in the pipe in one transaction; when it
    fails for another reason than an outage, each runs again on its own, in order,
    so that only the faulty one fails (as the writer splits a batch it merged)."""
    database = Database(sqlite_url, busy_timeout=timedelta(seconds=1))
    await upgrade(database)
    await database.dispose()
    store = SqliteWriter(sqlite_url, busy_timeout=timedelta(seconds=1), synchronous="NORMAL")
    rules = parse_rule_sections(RULES, "rules.yml").rule_set("rules.yml")
    context = Context(rules, {}, drop_notes)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def one(name: str, starts_at: Any = now) -> Alert:
        labels = {"alertname": name, "severity": "critical", "service": "db"}
        return Alert(fingerprint(labels), AlertStatus.FIRING, labels, {}, starts_at, None, "", "t")

    faulty = one("B", starts_at="not a time")  # no parser lets this through
    requests = [Request([[one("A")]], now, context, False), Request([[faulty]], now, None, False)]
    requests.append(Request([[one("C")]], now, None, False))
    try:
        answers = store_requests(store, requests, context, CurrentIncidents())
    finally:
        store.dispose()
    assert [ok for ok, _ in answers] == [True, False, True]
    first, third = answers[0][1], answers[2][1]
    assert isinstance(first, Done)
    assert isinstance(third, Done)
    assert first.results[0].new == third.results[0].new == 1
    assert first.results[0].incidents == third.results[0].incidents  # one incident, in order


async def test_a_unit_of_work_that_gives_up_behind_batches_leaves_the_writer_running(
    make_client: MakeClient,
) -> None:
    """A unit of work waits for the batches in flight; if its caller gives up meanwhile,
    the writer goes on with what is queued instead of taking it for a unit."""
    client = await make_client(RULES)
    writer = client.runtime.writer
    assert writer is not None
    pid = runner(client).pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the batch stays in flight
    try:
        posted = asyncio.create_task(
            client.post(WEBHOOK, json=webhook_body(alert("A", severity="critical", service="db")))
        )
        while runner(client).sent == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(StoreUnavailable):
            await writer.run(lambda _conn, _now: None, timeout_s=0.05)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (await posted).status == 200
    assert await writer.run(lambda _conn, _now: "ran") == "ran"
    assert writer.running
