"""`itsmd incidents ...` and `itsmd problems ...` as on-call reads them: the real CLI
against a running daemon (SQLite and PostgreSQL), with the daemon's clock as the
CLI's and times shown in a local time zone that is not UTC."""

from __future__ import annotations

from datetime import timedelta

import pytest

from itsmd.config import Role, Token
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from tests.api.api_support import ApiClient, MakeClient, alert, resolved
from tests.api.cli_support import berlin, itsmd, rows  # noqa: F401 - berlin: autouse fixture

RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
  - name: by-service
    match: '{}'
    group_by: [service]
known_errors:
  - name: web-oom
    match: '{alertname="OOMKilled"}'
    workaround: 'raise the memory limit of {{ labels.pod }}'
problems:
  - name: recurring
    match: '{alertname="DiskFull"}'
    group_by: [instance]
    after: 2
    within: 7d
    title: 'Disk keeps filling on {{ labels.instance }}'
"""
SLA = {Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=1))}


async def test_the_list_hides_resolved_incidents_and_shows_age_ack_and_alerts(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    db = alert("Down", service="db", instance="a")
    await client.webhook(db, alert("Down", service="db", instance="b"))
    await client.webhook(alert("Down", service="api"))
    await client.webhook(alert("Down", service="cache"))
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(db, client.clock.now))
    assert (await itsmd(client, capsys, "incidents", "resolve", "INC-3"))[0] == 0
    assert (await itsmd(client, capsys, "incidents", "ack", "INC-2", "--as", "alice"))[0] == 0
    client.clock.advance(timedelta(minutes=7))

    code, out, err = await itsmd(client, capsys, "incidents", "list")

    assert code == 0, err
    assert rows(out) == [
        ["ID", "PRI", "STATUS", "AGE", "ACK", "ASSIGNEE", "SERVICE", "ALERTS", "TITLE"],
        ["INC-2", "P4", "acknowledged", "12 min", "yes", "-", "api", "1/1", "Down (api)"],
        ["INC-1", "P4", "open", "12 min", "-", "-", "db", "1/2", "Down (db)"],
    ]
    _, every, _ = await itsmd(client, capsys, "incidents", "list", "--all")
    assert [r[0] for r in rows(every)[1:]] == ["INC-3", "INC-2", "INC-1"]
    _, done, _ = await itsmd(client, capsys, "incidents", "list", "--status", "resolved")
    assert [r[0] for r in rows(done)[1:]] == ["INC-3"]


async def test_a_list_longer_than_a_page_says_how_to_get_the_next(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    for service in ("a", "b", "c"):
        await client.webhook(alert("Down", service=service))

    code, out, err = await itsmd(client, capsys, "incidents", "list", "--limit", "2")

    assert code == 0
    assert [r[0] for r in rows(out)[1:]] == ["INC-3", "INC-2"]
    assert err.startswith("2 incidents shown, newest first; the next page: --cursor ")
    cursor = err.split("--cursor ")[1].split()[0]
    _, rest, rest_err = await itsmd(client, capsys, "incidents", "list", "--cursor", cursor)
    assert [r[0] for r in rows(rest)[1:]] == ["INC-1"]
    assert rest_err == ""


async def test_show_puts_the_workaround_first_and_groups_the_alerts(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES, sla=SLA)
    pods = [
        alert("OOMKilled", service="web", pod=f"web-{n}", env="prod", severity="critical")
        for n in range(30)
    ]
    for pod in pods:
        await client.webhook(pod)
    await client.webhook(
        alert("Latency", service="web", pod="web-0", env="prod", severity="critical")
    )
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(pods[-1], client.clock.now))
    await itsmd(client, capsys, "incidents", "ack", "INC-1")
    client.clock.advance(timedelta(minutes=7))

    code, out, err = await itsmd(client, capsys, "incidents", "show", "INC-1")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "INC-1  acknowledged  P1  OOMKilled (web)"
    assert lines[1] == "  workaround    raise the memory limit of web-0"
    assert "  acknowledged  04:05 (7 min ago) by carol" in lines
    assert "  sla respond   due 04:15 (in 3 min): met" in lines
    assert "  sla resolve   due 05:00 (in 48 min): pending" in lines
    assert "  problem       -" in lines
    assert "alerts (31, 30 firing):" in lines
    assert "  OOMKilled: 30 alerts, 29 firing" in lines
    assert "    firing    pod=web-0   since 04:00 (12 min ago)" in lines
    assert "    … and 10 more (--json shows all)" in lines
    assert "  Latency: 1 alerts, 1 firing" in lines
    # Why the 30 OOMKilled alerts are here: the opener's reason, then the others' once.
    why = [line for line in lines if line.startswith("    why: ")]
    assert [line.split(": ", 2)[1] for line in why] == ["opened", "joined", "joined"]
    assert why[1].endswith(" … ×29")
    # the labels that tell the alerts apart; not those they share, nor the fingerprint
    assert "env=prod" not in out
    fingerprints = [a["fingerprint"] for a in (await client.incident("INC-1"))["alerts"]]
    alerts_part = out.split("\ntimeline:")[0]
    assert not [f for f in fingerprints if f in alerts_part]
    joined = [line for line in lines if "alert_joined" in line]
    assert len(joined) == 3  # the first, 29 alike folded into one, Latency
    assert joined[1].endswith("… ×29  (itsmd)")
    assert "04:00  acknowledged" not in out
    assert "04:05  acknowledged     acknowledged by carol" in out


async def test_actions_are_recorded_under_the_local_user_or_as(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("Down", service="db"))

    assert (await itsmd(client, capsys, "incidents", "ack", "INC-1"))[0] == 0
    assert (await itsmd(client, capsys, "incidents", "comment", "INC-1", "hi", "--as", "dan"))[
        0
    ] == 0

    timeline = (await client.incident("INC-1"))["timeline"]
    assert [(e["kind"], e["actor"]) for e in timeline[-2:]] == [
        ("acknowledged", "carol"),
        ("commented", "dan"),
    ]
    assert timeline[-2]["message"] == "acknowledged by carol"


async def test_with_a_token_the_person_is_recorded_beside_the_token(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = (Token("ingest", Role.INGEST, "s-ingest"), Token("oncall", Role.RESPOND, "s-oncall"))
    client = await make_client(RULES, tokens=tokens)
    headers = {"Authorization": "Bearer s-ingest"}
    resp = await client.post("/api/v1/alerts", json=[alert(service="db")], headers=headers)
    assert resp.status == 200
    monkeypatch.setenv("ITSMD_TOKEN", "s-oncall")

    code, _, err = await itsmd(client, capsys, "incidents", "assign", "INC-1", "bob")

    assert code == 0, err
    resp = await client.get("/api/v1/incidents/INC-1", headers={"Authorization": "Bearer s-oncall"})
    last = (await resp.json())["timeline"][-1]
    assert last["actor"] == "carol (token oncall)"


async def test_an_empty_as_is_refused_before_any_request(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("Down", service="db"))

    code, _, err = await itsmd(client, capsys, "incidents", "ack", "INC-1", "--as", " ")

    assert code == 1
    assert err == "itsmd: --as: expected a name, got an empty one\n"
    assert (await client.incident("INC-1"))["status"] == "open"


async def _episode(client: ApiClient, instance: str = "db-1") -> None:
    firing = alert("DiskFull", instance=instance, starts_at=client.clock.now)
    await client.webhook(firing)
    client.clock.advance(timedelta(minutes=10))
    await client.webhook(resolved(firing, client.clock.now))
    client.clock.advance(timedelta(days=1))
    await client.sweep()


async def test_every_problem_action_works_from_the_command_line(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(RULES)
    await _episode(client)
    await _episode(client)

    code, out, err = await itsmd(client, capsys, "problems", "list")
    assert code == 0, err
    assert rows(out)[1][:3] == ["PRB-1", "open", "2"]

    steps = [
        (("root-cause", "PRB-1", "log rotation is off"), "PRB-1: open"),
        (("known-error", "PRB-1", "run logrotate -f"), "PRB-1: known_error"),
        (("resolve", "PRB-1"), "PRB-1: resolved"),
    ]
    for argv, said in steps:
        code, out, err = await itsmd(client, capsys, "problems", *argv)
        assert (code, out, err) == (0, said + "\n", "")
    problem = await client.get_json("/api/v1/problems/PRB-1")
    assert (problem["root_cause"], problem["workaround"], problem["status"]) == (
        "log rotation is off",
        "run logrotate -f",
        "resolved",
    )
    code, out, _ = await itsmd(client, capsys, "problems", "show", "PRB-1")
    assert out.splitlines()[:4] == [
        "PRB-1  resolved  Disk keeps filling on db-1",
        "  workaround  run logrotate -f (by carol)",  # who acts is $USER
        "  root cause  log rotation is off (by carol)",
        f"  opened      {out.splitlines()[3].split(maxsplit=1)[1]}",
    ]
    assert out.splitlines()[4].endswith("(by carol)")  # resolved
    code, _, err = await itsmd(client, capsys, "problems", "resolve", "PRB-1")
    assert code == 1
    assert err == "itsmd: POST /api/v1/problems/PRB-1/resolve: 409 PRB-1 is resolved\n"
