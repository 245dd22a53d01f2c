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


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("notaurl", "expected http://HOST:PORT"),
        ("ftp://itsmd.example", "expected http://HOST:PORT"),
        ("http://", "expected http://HOST:PORT"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:abc", "Port could not be cast to integer"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:0", "port 0 is no port"),
        ("http://itsmd example:9877", "has spaces or control characters"),
        ("http://127.0.0.1:9877/\x01", "has spaces or control characters"),
    ],
)
def test_a_url_that_cannot_be_one_is_an_error_line_not_a_traceback(
    url: str, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ITSMD_TOKEN", raising=False)
    monkeypatch.delenv("ITSMD_TOKEN_FILE", raising=False)
    monkeypatch.setenv("ITSMD_URL", url)

    assert main(["incidents", "list"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"itsmd: the itsmd URL {url!r} (--url or ITSMD_URL)"), err
    assert says in err
    assert "Traceback" not in err


def test_a_token_that_is_not_ascii_is_an_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ITSMD_TOKEN_FILE", raising=False)
    monkeypatch.setenv("ITSMD_TOKEN", "t\u00f6ken\u20ac")

    assert main(["incidents", "list", "--url", "http://127.0.0.1:9"]) == 1

    assert capsys.readouterr().err == "itsmd: ITSMD_TOKEN: a token is ASCII text\n"
