"""`itsmd alerts`, `checks`, `availability`, `sla` and `notifications`: the real CLI
against a running daemon (SQLite and PostgreSQL), with the daemon's clock as the
CLI's and times shown in a local time zone that is not UTC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from itsmd.api.keys import RECONCILE
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from itsmd.notify.config import AlertmanagerPeers, Connectors
from itsmd.store.tables import notifications
from tests.api.api_support import T0, MakeClient, alert, resolved
from tests.api.cli_support import berlin, itsmd, rows  # noqa: F401 - berlin: autouse fixture
from tests.connectors.fakes_http import Answer, FakePeer, running_peer

RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
maintenance:
  - name: db-work
    match: '{service="db"}'
    start: 2026-11-28T02:00:00Z
    end: 2026-11-28T06:00:00Z
"""


async def test_alerts_query_takes_matchers_as_amtool_does_and_shows_their_state(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    web7 = alert("Down", service="web", pod="web-7", env="prod")
    await client.webhook(web7, alert("Down", service="web", pod="web-8", env="prod"))
    await client.webhook(alert("Down", service="db", pod="db-1"))  # in the window
    await client.webhook(alert("Down", pod="lonely"))  # no service: no rule
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(web7, client.clock.now))

    code, out, err = await itsmd(client, capsys, "alerts", "query", "Down")
    assert code == 0, err
    assert rows(out) == [
        ["INCIDENT", "STATE", "ALERTNAME", "LABELS", "STARTS"],
        ["-", "unrouted", "Down", "pod=lonely", "04:00 (5 min ago)"],
        ["-", "suppressed", "Down", "pod=db-1 service=db", "04:00 (5 min ago)"],
        ["INC-1", "firing", "Down", "env=prod pod=web-8 service=web", "04:00 (5 min ago)"],
        ["INC-1", "resolved", "Down", "env=prod pod=web-7 service=web", "04:00 (5 min ago)"],
    ]
    for matchers in (
        ['{pod="web-7"}'],
        ['pod="web-7"'],
        ["pod=web-7"],
        ["service=web", "pod=~.*7"],
    ):
        code, out, err = await itsmd(client, capsys, "alerts", "query", *matchers)
        assert code == 0, (matchers, err)
        assert rows(out)[1:] == [
            ["INC-1", "resolved", "Down", "env=prod pod=web-7 service=web", "04:00 (5 min ago)"]
        ], matchers
    _, out, _ = await itsmd(client, capsys, "alerts", "query", "service=web")
    assert [r[3] for r in rows(out)[1:-1]] == ["pod=web-8", "pod=web-7"]
    assert out.splitlines()[-1] == "labels of all of them: env=prod service=web"
    _, out, _ = await itsmd(
        client, capsys, "alerts", "query", "--state", "suppressed", "--state", "unrouted"
    )
    assert [r[1] for r in rows(out)[1:]] == ["unrouted", "suppressed"]
    code, _, err = await itsmd(client, capsys, "alerts", "query", 'pod="web-7')
    assert code == 1
    assert err.startswith("itsmd: matcher 'pod=\"web-7': ")


async def test_alerts_show_lists_the_episodes_of_one_fingerprint(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    first = alert("Down", service="web", pod="web-7", annotations={"summary": "web-7 down"})
    await client.webhook(first)
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(first, client.clock.now))
    _, found, _ = await itsmd(client, capsys, "alerts", "query", "pod=web-7", "--json")
    fingerprint = json.loads(found)["alerts"][0]["fingerprint"]

    code, out, err = await itsmd(client, capsys, "alerts", "show", fingerprint)

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Down  {fingerprint}"
    assert "  pod = web-7" in lines
    assert "  @summary: web-7 down" in lines
    assert "episodes (1):" in lines
    assert rows(out)[-1][:5] == ["resolved", "INC-1", "04:00 (5 min ago)", "04:05 (just now)", "2"]
    code, _, err = await itsmd(client, capsys, "alerts", "show", "0123456789abcdef")
    assert (code, err) == (
        1,
        "itsmd: GET /api/v1/alerts/0123456789abcdef: 404 no alert with "
        "fingerprint 0123456789abcdef\n",
    )


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer(Answer(200, '{"status": "ok"}')) as p:
        yield p


CHECK_RULES = """\
incidents:
  - name: rest
    match: '{{}}'
    group_by: [alertname]
services:
  - {{name: api, slo: 99.9}}
checks:
  - name: api-health
    type: http
    service: api
    url: {url}
    interval: 30s
    timeout: 2s
  - name: never-run
    type: http
    url: {url}
    interval: 1m
"""


async def test_checks_and_availability_read_as_tables(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str], peer: FakePeer
) -> None:
    client = await make_client(CHECK_RULES.format(url=peer.url("/healthz")))
    await client.run_check("api-health")
    client.clock.advance(timedelta(hours=2))
    await client.run_check("api-health")

    code, out, err = await itsmd(client, capsys, "checks")

    assert code == 0, err
    table = rows(out)
    assert table[0] == [
        "NAME",
        "TYPE",
        "SERVICE",
        "STATE",
        "LAST RUN",
        "FAILS",
        "TOOK",
        "RUNS",
        "LAST ERROR",
    ]
    assert table[1][:5] == ["api-health", "http", "api", "up", "just now"]
    assert table[1][7] == "every 30 s"
    assert table[2][:5] == ["never-run", "http", "-", "unknown", "never"]

    code, out, err = await itsmd(client, capsys, "availability", "--window", "1h")
    assert code == 0, err
    table = rows(out)
    assert table[0] == [
        "KIND",
        "NAME",
        "1H",
        "1D",
        "7D",
        "30D",
        "COVERED 1h",
        "SLO",
        "BUDGET LEFT 1h",
        "BURN 1h",
    ]
    assert table[1] == [
        "service",
        "api",
        "100%",
        "100%",
        "100%",
        "100%",
        "100%",
        "99.9%",
        "100%",
        "0.00",
    ]
    code, _, err = await itsmd(client, capsys, "availability", "--window", "soon")
    assert code == 1
    assert err.startswith("itsmd: --window: ")


async def test_sla_sums_up_the_targets_per_priority(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    sla = {Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=1))}
    client = await make_client(RULES, sla=sla)
    await client.webhook(alert("Down", service="web", severity="critical"))
    await client.webhook(alert("Down", service="api", severity="critical"))
    client.clock.advance(timedelta(minutes=10))
    await itsmd(client, capsys, "incidents", "ack", "INC-1")
    client.clock.advance(timedelta(minutes=10))

    code, out, err = await itsmd(client, capsys, "sla", "--window", "7d")

    assert code == 0, err
    assert out.splitlines()[0] == "incidents opened in the last 7d"
    assert rows(out)[1:] == [
        ["PRI", "INCIDENTS", "RESPOND", "RESOLVE", "MTTA", "MTTR"],
        ["P1", "2", "1 met, 1 breached, 0 pending", "0 met, 0 breached, 2 pending", "10 min", "-"],
    ]
    _, raw, _ = await itsmd(client, capsys, "sla", "--json")
    assert json.loads(raw)["window"] == "30d"


async def test_notifications_list_by_state_and_a_dead_letter_is_retried(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    row = {
        "event": "opened",
        "subject": "INC-1",
        "route": "pager",
        "sink": "hook",
        "payload": {},
        "created_at": T0,
        "due_at": T0,
        "attempts": 1,
    }

    def store(conn: Connection) -> None:
        conn.execute(
            insert(notifications),
            [
                row | {"event_id": "e1", "state": "sent", "sent_at": T0, "last_error": None},
                row
                | {
                    "event_id": "e2",
                    "state": "dead",
                    "sent_at": None,
                    "last_error": "HTTP 400: bad key",
                },
            ],
        )

    db = client.runtime.db
    assert db is not None
    await db.write(store)
    client.clock.advance(timedelta(minutes=3))

    code, out, err = await itsmd(client, capsys, "notifications", "list")
    assert code == 0, err
    assert rows(out) == [
        ["ID", "STATE", "EVENT", "SUBJECT", "ROUTE", "TRIES", "CREATED", "NEXT", "LAST ERROR"],
        [
            "2",
            "dead",
            "opened",
            "INC-1",
            "pager -> hook",
            "1",
            "04:00 (3 min ago)",
            "-",
            "HTTP 400: bad key",
        ],
        [
            "1",
            "sent",
            "opened",
            "INC-1",
            "pager -> hook",
            "1",
            "04:00 (3 min ago)",
            "sent 3 min ago",
        ],
    ]
    _, dead, _ = await itsmd(client, capsys, "notifications", "list", "--state", "dead")
    assert [r[0] for r in rows(dead)[1:]] == ["2"]

    code, out, err = await itsmd(client, capsys, "notifications", "retry", "2")
    assert (code, out, err) == (0, "notification 2: pending, due just now\n", "")
    code, _, err = await itsmd(client, capsys, "notifications", "retry", "1")
    assert code == 1
    assert "409 notification 1 is not dead" in err


async def test_reconcile_shows_the_last_round_and_each_alertmanager(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    held = (Path(__file__).parents[1] / "fixtures/alertmanager-api/v2-alerts.json").read_text()
    async with running_peer(Answer(body=held, content_type="application/json")) as am:
        url = am.url().rstrip("/")
        peers = AlertmanagerPeers((url, "http://127.0.0.1:9"), grace=timedelta(minutes=5))
        client = await make_client(RULES, connectors=Connectors(alertmanager=peers))
        await client.app[RECONCILE].round()
        code, out, err = await itsmd(client, capsys, "reconcile")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "every 1m, grace 5m; this replica reconciles"
    assert lines[1].startswith(
        "last round 04:00 (just now): INCOMPLETE, an Alertmanager did not answer: "
        "nothing resolved; ingested 0;"
    )
    assert lines[1].endswith("within grace: 0 missing, 2 never received")
    table = rows("\n".join(lines[2:]))
    assert table[0] == ["ALERTMANAGER", "ANSWERED", "ALERTS", "ERROR"]
    assert table[1] == [url, "yes", "3"]
    assert table[2][:3] == ["http://127.0.0.1:9", "NO", "-"]
    assert "Alertmanager at http://127.0.0.1:9: connection refused" in lines[-1]

    # A second daemon on the same store (PostgreSQL: it stands by) without the section.
    off = await make_client(RULES)
    code, out, err = await itsmd(off, capsys, "reconcile")
    assert (code, out) == (0, "reconciliation is off: no connectors.alertmanager in the config\n")
