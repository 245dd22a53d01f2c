"""`itsmd incidents ...` with tokens: from a file, the environment or the command line,
against a running daemon whose API wants them (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.config import Role, Token
from tests.api.api_support import ApiClient, MakeClient, alert

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
"""
SECRET = "s3cret-respond-token"
TOKENS = (
    Token("alertmanager", Role.INGEST, "s3cret-ingest-token"),
    Token("oncall", Role.RESPOND, SECRET),
)
WARNING = "itsmd: warning: --token is visible to other local users"


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITSMD_TOKEN", raising=False)
    monkeypatch.delenv("ITSMD_TOKEN_FILE", raising=False)
    monkeypatch.delenv("ITSMD_URL", raising=False)
    monkeypatch.setenv("USER", "alice")  # the name recorded beside the token's


@pytest.fixture
async def daemon(make_client: MakeClient) -> ApiClient:
    """A daemon that wants tokens, with one open incident (INC-1)."""
    client = await make_client(RULES, tokens=TOKENS)
    headers = {"Authorization": "Bearer s3cret-ingest-token"}
    response = await client.post("/api/v1/alerts", json=[alert(service="api")], headers=headers)
    assert response.status < 300, await response.text()
    return client


async def ack(daemon: ApiClient, *options: str) -> int:
    """`itsmd incidents ack INC-1 --note ... --url <daemon> <options>`, run as a command."""
    url = str(daemon.make_url("")).rstrip("/")
    argv = ["incidents", "ack", "INC-1", "--note", "on it", "--url", url, *options]
    return await asyncio.to_thread(main, argv)


async def acked_by(daemon: ApiClient) -> str | None:
    incident = await daemon.get(
        "/api/v1/incidents/INC-1", headers={"Authorization": f"Bearer {SECRET}"}
    )
    last = (await incident.json())["timeline"][-1]
    return str(last["message"]) if last["kind"] == "acknowledged" else None


def token_file(tmp_path: Path, text: str = SECRET + "\n") -> str:
    path = tmp_path / "itsmd.token"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


async def test_without_a_token_the_daemon_refuses(
    daemon: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await ack(daemon) == 1
    assert "401" in capsys.readouterr().err
    assert await acked_by(daemon) is None


async def test_the_token_comes_from_a_file(
    daemon: ApiClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await ack(daemon, "--token-file", token_file(tmp_path)) == 0
    assert await acked_by(daemon) == "acknowledged by alice (token oncall): on it"
    assert capsys.readouterr().err == ""


async def test_the_token_file_may_come_from_the_environment(
    daemon: ApiClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ITSMD_TOKEN_FILE", token_file(tmp_path))
    assert await ack(daemon) == 0
    assert await acked_by(daemon) == "acknowledged by alice (token oncall): on it"
    assert capsys.readouterr().err == ""


async def test_the_token_may_come_from_the_environment(
    daemon: ApiClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ITSMD_TOKEN", SECRET)
    assert await ack(daemon) == 0
    assert await acked_by(daemon) == "acknowledged by alice (token oncall): on it"
    assert capsys.readouterr().err == ""


async def test_a_token_on_the_command_line_works_with_a_warning(
    daemon: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await ack(daemon, "--token", SECRET) == 0
    assert await acked_by(daemon) == "acknowledged by alice (token oncall): on it"
    err = capsys.readouterr().err
    assert err.startswith(WARNING), err
    assert "--token-file" in err
    assert SECRET not in err


async def test_the_command_line_wins_over_the_environment(
    daemon: ApiClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSMD_TOKEN", "s3cret-ingest-token")  # may not acknowledge
    assert await ack(daemon, "--token-file", token_file(tmp_path)) == 0
    assert await acked_by(daemon) == "acknowledged by alice (token oncall): on it"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the token file {path} (--token-file): No such file or directory"),
        ("\n", "the token file {path} (--token-file) is empty"),
        ("two words\n", "the token file {path} (--token-file): a token has no spaces"),
    ],
    ids=["missing", "empty", "spaces"],
)
async def test_a_bad_token_file_is_an_error_before_any_request(
    daemon: ApiClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    path = token_file(tmp_path, content) if content is not None else str(tmp_path / "nope")
    assert await ack(daemon, "--token-file", path) == 1
    assert capsys.readouterr().err.startswith("itsmd: " + message.format(path=path))
    assert await acked_by(daemon) is None


async def test_both_token_variables_are_an_error(
    daemon: ApiClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ITSMD_TOKEN", SECRET)
    monkeypatch.setenv("ITSMD_TOKEN_FILE", token_file(tmp_path))
    assert await ack(daemon) == 1
    assert "both ITSMD_TOKEN and ITSMD_TOKEN_FILE are set" in capsys.readouterr().err


def test_token_and_token_file_together_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["incidents", "list", "--token", SECRET, "--token-file", token_file(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
