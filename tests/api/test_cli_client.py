"""`itsmd incidents ...` against a running daemon: every action's note reaches the
timeline (SQLite and PostgreSQL), recorded under the local user's name without a
token."""

from __future__ import annotations

import asyncio

import pytest

from itsmd.cli.main import main
from tests.api.api_support import MakeClient, alert

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ack", "INC-1", "--note", "looking"], "acknowledged by alice: looking"),
        (
            ["assign", "INC-1", "bob", "--note", "db expert"],
            "assigned to bob (was nobody) by alice: db expert",
        ),
        (["resolve", "INC-1", "--note", "restarted"], "resolved by alice"),
        (["comment", "INC-1", "restarted the pod"], "restarted the pod"),
    ],
)
async def test_an_action_from_the_command_line_keeps_its_note(
    make_client: MakeClient, argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    client = await make_client(RULES)
    await client.webhook(alert(service="api"))
    url = str(client.make_url("")).rstrip("/")

    code = await asyncio.to_thread(main, ["incidents", *argv, "--url", url])

    assert code == 0
    last = (await client.incident("INC-1"))["timeline"][-1]
    assert last["message"].startswith(message)
    if "--note" in argv:
        assert last["message"].endswith(argv[-1])
