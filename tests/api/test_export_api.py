"""`itsmd export alerts` reads what the daemon stored, in the shape `itsmd replay` takes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from itsmd.cli.main import _recorded_alerts, main
from itsmd.correlation.rules import load_rules
from itsmd.ruletools import replay
from tests.api.api_support import MakeClient, alert, resolved

RULES = """\
incidents:
  - name: svc
    match: '{}'
    group_by: [service]
    auto_resolve: 5m
"""


async def test_exported_alerts_replay_into_the_same_incidents(
    make_client: MakeClient,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await make_client(RULES)
    api, db = alert("Down", service="api"), alert("Down", service="db", instance="x")
    await client.webhook(api, db)
    client.clock.advance(timedelta(minutes=3))
    await client.webhook(resolved(api, client.clock.now))
    stored = await client.incidents()
    capsys.readouterr()

    code = await asyncio.to_thread(main, ["export", "alerts", "--since", "3650d", "--db", db_url])

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted((r["labels"]["service"], r["status"]) for r in records) == [
        ("api", "resolved"),
        ("db", "firing"),
    ]
    recording = tmp_path / "alerts.jsonl"
    recording.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    with recording.open() as f:
        timeline = replay.events(_recorded_alerts(f, str(recording)))
    opened = replay.replay(timeline, load_rules([rules]))
    assert sorted(o.incident.key for o in opened) == sorted(i["key"] for i in stored)


async def test_an_export_replays_whole_with_what_alertmanager_sends_at_its_edges(
    make_client: MakeClient, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resolve whose endsAt is before its startsAt (Alertmanager sends those) and a
    resolve of an alert never seen firing: the export of both replays, and the replay
    opens what the daemon opened, and nothing for the lone resolve."""
    client = await make_client(RULES)
    early = alert("Down", service="api")
    await client.webhook(early)
    client.clock.advance(timedelta(minutes=1))
    await client.webhook(resolved(early, client.clock.now - timedelta(hours=1)))
    await client.webhook(resolved(alert("Gone", service="never-seen"), client.clock.now))
    stored = await client.incidents()
    assert [i["key"] for i in stored] == ['svc{service="api"}']
    capsys.readouterr()

    code = await asyncio.to_thread(main, ["export", "alerts", "--since", "3650d", "--db", db_url])

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    lone = [json.loads(line) for line in lines if "never-seen" in line]
    assert [r.get("firingReceived") for r in lone] == [False]
    recording = tmp_path / "alerts.jsonl"
    recording.write_text("\n".join(lines) + "\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yml").write_text(RULES)
    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["replay", "--rules", str(tmp_path / "rules"), str(recording)]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.splitlines()[-1] == "2 alerts, 1 incidents"
    assert 'svc{service="api"}' in out.out


async def test_a_bad_since_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "alerts", "--since", "last tuesday"]) == 1
    assert "--since" in capsys.readouterr().err


def test_a_store_that_is_not_there_or_not_itsmds_is_named_not_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    argv = ["export", "alerts", "--since", "1h", "--db", f"sqlite+aiosqlite:///{missing}"]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"itsmd: --db: no database file {missing}\n"
    assert not missing.exists()  # opening it would have made an empty store

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    assert main(["export", "alerts", "--since", "1h", "--db", f"sqlite+aiosqlite:///{other}"]) == 1
    err = capsys.readouterr().err
    assert "is not an itsmd store of this version" in err
    assert "[SQL:" not in err
