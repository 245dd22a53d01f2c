"""`itsmd replay`: recorded alerts through rule sets in virtual time, and the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.correlation.rules import load_rules
from itsmd.ruletools import replay
from tests.unit.correlation.test_correlate import MIN, T0, alert
from tests.unit.test_shipped_files import copy_shipped_rules, shipped_rule_files


def _line(labels: dict[str, str], start: str, end: str | None = None) -> str:
    record: dict[str, object] = {"labels": labels, "startsAt": start}
    if end is not None:
        record |= {"endsAt": end, "status": "resolved"}
    return json.dumps(record)


API = {"alertname": "InstanceDown", "severity": "critical", "service": "api", "env": "prod"}
RECORDING = (
    "\n".join(
        [
            _line(API | {"instance": "a"}, "2026-11-20T10:00:00Z", "2026-11-20T10:20:00Z"),
            _line(API | {"instance": "b"}, "2026-11-20T10:05:00Z", "2026-11-20T10:21:00Z"),
            # 2h later: after the 15m window, 5m hold and 1h reopen: a new incident
            _line(API | {"instance": "a"}, "2026-11-20T12:30:00Z"),
            _line(
                {"alertname": "DiskFull", "severity": "warning", "service": "db"},
                "2026-11-20T11:00:00Z",
            ),
        ]
    )
    + "\n"
)


def test_a_resolved_record_fires_at_its_start_and_resolves_at_its_end() -> None:
    fired = alert("resolved", T0)
    timeline = replay.events([fired, alert("firing", T0 - MIN, instance="x")])

    assert [(at, a.status.value) for at, a in timeline] == [
        (T0 - MIN, "firing"),
        (T0, "firing"),
        (T0 + MIN, "resolved"),
    ]


def test_replay_opens_what_the_daemon_would_open(tmp_path: Path) -> None:
    recording = tmp_path / "alerts.jsonl"
    recording.write_text(RECORDING)
    alerts = _alerts(recording)

    opened = replay.replay(replay.events(alerts), load_rules(shipped_rule_files()))

    assert [(o.incident.key, o.incident.status.value, o.incident.alert_count) for o in opened] == [
        ('service-outage{service="api", env="prod"}', "resolved", 2),
        ('service-degraded{service="db", alertname="DiskFull"}', "open", 1),
        ('service-outage{service="api", env="prod"}', "open", 1),
    ]


def test_against_another_rule_set_shows_what_would_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "alerts.jsonl"
    recording.write_text(RECORDING)
    current = copy_shipped_rules(tmp_path / "rules")
    changed = tmp_path / "changed"
    changed.mkdir()
    services = (current / "10-services.yml").read_text()
    (changed / "10-services.yml").write_text(
        services.replace("impact: high", "impact: medium").replace("reopen: 1h", "reopen: 3h")
    )

    assert main(["replay", str(recording), "--rules", str(changed), "--against", str(current)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("- 2026-11-20 12:30:00 P1 open")  # it reopens the first instead
    assert out[1].startswith("~ 2026-11-20 10:00:00 P2 open")  # reopened at 12:30
    assert out[2] == "    priority P1 -> P2; status resolved -> open; alert_count 2 -> 3"
    assert out[-1].endswith(f"3 incidents with {current}, 2 with {changed}; 2 differ")


def test_a_bad_line_is_named_with_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "alerts.jsonl"
    recording.write_text(RECORDING + '{"labels": "oops"}\n')

    assert main(["replay", str(recording), "--rules", str(copy_shipped_rules(tmp_path))]) == 1
    assert f"{recording}:5: " in capsys.readouterr().err


def _alerts(path: Path) -> list[replay.Alert]:
    from itsmd.cli.main import _recorded_alerts

    with path.open() as lines:
        return _recorded_alerts(lines, str(path))
