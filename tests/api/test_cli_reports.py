"""`itsmd report review` and `itsmd report incident`: the real CLI against a running
daemon (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.api_support import MakeClient
from tests.api.cli_support import berlin, itsmd  # noqa: F401 - berlin: autouse fixture
from tests.api.test_reports_api import history


async def test_report_review_prints_markdown_html_or_json(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    client = await history(make_client)
    period = ["--from", "2026-11-01", "--to", "2026-12-01"]
    code, out, err = await itsmd(client, capsys, "report", "review", *period)
    assert code == 0, err
    assert out.startswith("# Service review: 2026-11-01 to 2026-12-01\n")
    assert "## Service api" in out

    code, out, err = await itsmd(client, capsys, "report", "review", *period, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["totals"]["incidents"]["value"] == 4

    page = tmp_path / "review.html"
    code, out, err = await itsmd(
        client,
        capsys,
        "report",
        "review",
        *period,
        "--service",
        "api",
        "--format",
        "html",
        "-o",
        str(page),
    )
    assert (code, out) == (0, "")
    assert page.read_text().startswith("<!doctype html>")


async def test_report_review_errors_are_one_line_on_stderr(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await history(make_client)
    code, out, err = await itsmd(
        client, capsys, "report", "review", "--from", "2026-12-01", "--to", "2026-11-01"
    )
    assert code == 1
    assert out == ""
    assert err.startswith("itsmd: GET /api/v1/reports/review?")
    assert "400 from: must be before to" in err
    code, _, err = await itsmd(
        client,
        capsys,
        "report",
        "review",
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01",
        "--tz",
        "Mars/Olympus",
    )
    assert code == 1
    assert "tz: unknown time zone 'Mars/Olympus'" in err


async def test_report_incident_prints_the_skeleton(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await history(make_client)
    code, out, err = await itsmd(client, capsys, "report", "incident", "INC-4")
    assert code == 0, err
    assert out.startswith("# Post-incident review: INC-4 ")
    assert "## Root cause\n\n_To be written._" in out
    code, _, err = await itsmd(client, capsys, "report", "incident", "INC-404")
    assert code == 1
    assert "404 no incident INC-404" in err
