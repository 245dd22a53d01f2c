"""What the CLI tests share: the real `itsmd` command against a test daemon, with
the daemon's clock, a local time zone that is not UTC, and a table reader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from itsmd.cli.main import main
from tests.api.api_support import ApiClient


@pytest.fixture(autouse=True)
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+1 (T0, 03:00 UTC, reads 04:00); who acts is $USER; no token
    or URL from the environment. Autouse in every module that imports it."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.setenv("USER", "carol")
    for name in ("ITSMD_TOKEN", "ITSMD_TOKEN_FILE", "ITSMD_URL"):
        monkeypatch.delenv(name, raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def itsmd(
    client: ApiClient, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """Run `itsmd ARGV --url <daemon>` with the daemon's clock; (exit code, out, err)."""
    url = str(client.make_url("")).rstrip("/")
    code = await asyncio.to_thread(main, [*argv, "--url", url], lambda: client.clock.now)
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(out: str) -> list[list[str]]:
    """A table's lines split on runs of two spaces (cells hold single spaces)."""
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in out.splitlines()]
