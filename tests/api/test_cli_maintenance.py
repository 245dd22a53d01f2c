"""`itsmd maintenance add|list|end|delete` against a running daemon, as amtool's
silence commands (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.api import test_maintenance_api
from tests.api.api_support import ApiClient, MakeClient, alert
from tests.api.cli_support import berlin, itsmd, rows  # noqa: F401 - berlin: autouse fixture

# the daemon with the route that ends a window
make_daemon = test_maintenance_api.make_daemon

RULES = """\
incidents:
  - name: svc
    match: '{}'
    group_by: [service]
maintenance:
  - name: nightly
    match: '{service="legacy"}'
    every: '0 3 * * *'
    duration: 1h
"""


async def windows(client: ApiClient) -> dict[str, dict[str, Any]]:
    body = await client.get_json("/api/v1/maintenance")
    return {w["name"]: w for w in body["maintenance"]}


async def test_add_suppresses_the_matching_alerts_and_prints_the_generated_name(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_daemon(RULES)

    code, out, err = await itsmd(
        client,
        capsys,
        "maintenance",
        "add",
        "--for",
        "2h",
        "--comment",
        "pg 16 upgrade",
        "--change",
        "CHG-42",
        "service=db",
        '{env!="dev"}',
    )

    assert code == 0, err
    name = out.strip()
    assert name.startswith("mw-20261128-0300-")
    assert err == 'suppress {service="db", env!="dev"} from 04:00 (just now) until 06:00 (in 2 h)\n'
    window = (await windows(client))[name]
    assert window | {"name": None} == {
        "name": None,
        "source": "api",
        "match": ['{service="db", env!="dev"}'],
        "action": "suppress",
        "start": "2026-11-28T03:00:00Z",
        "end": "2026-11-28T05:00:00Z",
        "every": None,
        "duration": None,
        "timezone": "UTC",
        "change": "CHG-42",
        "comment": "pg 16 upgrade",
        "created_by": "carol",
        "active": True,
        "active_until": "2026-11-28T05:00:00Z",
        "state": "active",
    }
    assert (await client.webhook(alert("Down", service="db", env="prod")))["incidents"] == []
    result = await client.webhook(alert("Down", service="db", env="dev"))
    assert result["incidents"] == ["INC-1"]


async def test_add_takes_a_start_and_an_until_in_local_time_and_a_name(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_daemon(RULES)

    code, out, err = await itsmd(
        client,
        capsys,
        "maintenance",
        "add",
        "--start",
        "2026-11-28T08:00",
        "--until",
        "2026-11-28T09:30:00+01:00",
        "--comment",
        "reboot",
        "--name",
        "db-reboot",
        "--action",
        "annotate",
        "--as",
        "dan",
        'DiskFull{instance=~"db-.*"}',
    )

    assert (code, out) == (0, "db-reboot\n"), err
    window = (await windows(client))["db-reboot"]
    assert (window["start"], window["end"]) == ("2026-11-28T07:00:00Z", "2026-11-28T08:30:00Z")
    assert window["match"] == ['{alertname="DiskFull", instance=~"db-.*"}']
    assert (window["action"], window["state"], window["created_by"]) == (
        "annotate",
        "scheduled",
        "dan",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--for", "2h", "service=db"], "the following arguments are required: --comment"),
        (["--comment", "x", "service=db"], "one of the arguments --for --until is required"),
        (["--for", "2h", "--until", "2026-11-28T09:00", "--comment", "x", "a=b"], "not allowed"),
    ],
)
async def test_add_without_what_amtool_requires_is_a_usage_error(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    client = await make_daemon(RULES)
    with pytest.raises(SystemExit) as exited:
        await itsmd(client, capsys, "maintenance", "add", *argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--for", "soon", "--comment", "x", "a=b"], "--for: "),
        (["--until", "tomorrow", "--comment", "x", "a=b"], "--until: expected a time such as"),
        (
            ["--until", "2026-11-28T03:30:00Z", "--comment", "x", "a=b"],
            "the window would be over already: it ends at 2026-11-28T03:30:00Z",
        ),
        (
            ["--start", "2026-11-28T09:00", "--until", "2026-11-28T08:00", "--comment", "x", "a"],
            "the window would end (2026-11-28T07:00:00Z) before it starts",
        ),
        (["--for", "1h", "--comment", " ", "a=b"], "--comment: say why"),
        (["--for", "1h", "--comment", "x", 'a="b'], "matcher 'a=\"b': "),
    ],
)
async def test_a_bad_window_is_refused_before_any_request(
    make_daemon: MakeClient,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    client = await make_daemon(RULES)
    client.clock.advance(timedelta(hours=1))

    code, _, err = await itsmd(client, capsys, "maintenance", "add", *argv)

    assert code == 1
    assert err.startswith("itsmd: " + message), err
    assert set(await windows(client)) == {"nightly"}


async def test_a_taken_name_is_the_daemons_409(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_daemon(RULES)
    argv = ("maintenance", "add", "--for", "1h", "--comment", "x", "--name", "nightly", "a=b")
    code, _, err = await itsmd(client, capsys, *argv)
    assert code == 1
    assert err.startswith("itsmd: POST /api/v1/maintenance: 409 maintenance window 'nightly' is ")


async def test_list_shows_windows_on_and_to_come_and_end_ends_one_now(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_daemon(RULES)
    add = ("maintenance", "add", "--comment")
    await itsmd(client, capsys, *add, "pg upgrade", "--for", "2h", "--name", "now", "service=db")
    await itsmd(
        client,
        capsys,
        *add,
        "later",
        "--start",
        "2026-11-28T10:00",
        "--for",
        "1h",
        "--name",
        "later",
        "service=api",
    )
    await itsmd(client, capsys, *add, "short", "--for", "10m", "--name", "short", "service=x")
    client.clock.advance(timedelta(minutes=20))  # `short` is over

    code, out, err = await itsmd(client, capsys, "maintenance", "list")

    assert code == 0, err
    table = rows(out)
    assert table[0] == ["NAME", "STATE", "ACTION", "MATCH", "WHEN", "CHANGE", "SOURCE", "COMMENT"]
    assert [r[:2] for r in table[1:]] == [
        ["nightly", "active"],
        ["now", "active"],
        ["later", "scheduled"],
    ]
    assert table[1][4] == "cron '0 3 * * *' for 1h (UTC), on until 05:00"
    assert table[2][4:] == [
        "04:00 (20 min ago) .. 06:00 (in 1 h 40 min)",
        "-",
        "api, by carol",
        "pg upgrade",
    ]
    _, every, _ = await itsmd(client, capsys, "maintenance", "list", "--all")
    assert [r[:2] for r in rows(every)[1:]][-1] == ["short", "ended"]

    code, out, err = await itsmd(client, capsys, "maintenance", "end", "now")

    assert (code, out, err) == (0, "maintenance window now ended 04:20 (just now)\n", "")
    assert (await client.webhook(alert("Down", service="db")))["incidents"] == ["INC-1"]
    _, out, _ = await itsmd(client, capsys, "maintenance", "list")
    assert "now" not in [r[0] for r in rows(out)]
    _, out, _ = await itsmd(client, capsys, "maintenance", "list", "--all", "--json")
    assert json.loads(out)["maintenance"][1]["state"] == "ended"

    code, _, err = await itsmd(client, capsys, "maintenance", "end", "now")
    assert (code, err) == (
        1,
        "itsmd: POST /api/v1/maintenance/now/end: 409 maintenance window 'now' ended at "
        "2026-11-28T03:20:00Z; nothing to end\n",
    )
    code, _, err = await itsmd(client, capsys, "maintenance", "end", "nightly")
    assert code == 1
    assert "409 maintenance window 'nightly' is defined in test-rules.yml:6" in err

    code, out, _ = await itsmd(client, capsys, "maintenance", "delete", "short")
    assert (code, out) == (0, "maintenance window short deleted\n")
    assert "short" not in await windows(client)


async def test_an_empty_list_says_what_is_hidden(
    make_daemon: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_daemon("incidents: []\n")
    await itsmd(client, capsys, "maintenance", "add", "--for", "5m", "--comment", "x", "a=b")
    client.clock.advance(timedelta(minutes=10))

    code, out, err = await itsmd(client, capsys, "maintenance", "list")

    assert (code, out) == (0, "")
    assert err == "no maintenance windows on or to come (1 ended: --all)\n"
