"""`itsmd explain`: which rules did not match and why, then the decision, storing nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.correlation.rules import RuleSet, load_rules, rule_files
from itsmd.ruletools.explain import explain
from tests.unit.correlation.test_correlate import alert
from tests.unit.test_shipped_files import copy_shipped_rules, shipped_rule_files

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(shipped_rule_files())


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The shipped rules alone: `rules/` may hold an SRE's own files too."""
    return copy_shipped_rules(tmp_path / "rules")


def _where(rules: RuleSet, name: str) -> str:
    rule = rules.rule(name)
    assert rule is not None
    return f"{rule.file}:{rule.line}"


def test_each_rule_before_the_match_says_which_matcher_failed(shipped: RuleSet) -> None:
    lines = explain(alert(severity="info", service="web"), shipped, {}, NOW)

    assert lines[2:6] == [
        f"  rule check-alerts ({_where(shipped, 'check-alerts')}): no match: "
        'alertname=~"CheckFailed|CertificateExpiring|HeartbeatMissing|CapacityThreshold|'
        'CapacityForecast" does not hold (alertname="Down")',
        f"  rule service-outage ({_where(shipped, 'service-outage')}): no match: "
        'severity="critical" does not hold (severity="info")',
        f"  rule service-degraded ({_where(shipped, 'service-degraded')}): no match: "
        'severity="warning" does not hold (severity="info")',
        f"  rule catch-all ({_where(shipped, 'catch-all')}): matches "
        '{alertname!~"Watchdog|InfoInhibitor"}',
    ]
    assert _where(shipped, "service-outage") == f"{ROOT}/rules/10-services.yml:18"
    assert '  key: catch-all{alertname="Down"}' in lines
    assert (
        "  would open: 'Down on web', priority P5 (impact low x urgency low from severity "
        "info)" in lines
    )


@pytest.mark.parametrize(
    "labels",
    [
        {"severity": "critical", "env": "prod"},
        {"severity": "critical", "env": "dev"},
        {"severity": "warning"},
        {},
    ],
)
def test_the_rule_it_names_is_the_one_the_daemon_routes_to(
    shipped: RuleSet, labels: dict[str, str]
) -> None:
    a = alert(**labels)
    route = shipped.route(a.labels)
    assert route is not None
    assert any(
        line.startswith(f"  rule {route.rule.name} (") and ": matches " in line
        for line in explain(a, shipped, {}, NOW)
    )


def test_an_alert_no_rule_matches_is_unrouted() -> None:
    rules = load_rules(rule_files(ROOT / "rules" / "10-services.yml"))

    lines = explain(alert(severity="info"), rules, {}, NOW)

    assert lines[-1] == "  no incident rule matches: the alert is stored and counted as unrouted"


def test_the_shipped_rules_leave_watchdog_unrouted(shipped: RuleSet) -> None:
    lines = explain(alert(alertname="Watchdog", severity="none"), shipped, {}, NOW)

    assert lines[-2] == (
        f"  rule catch-all ({_where(shipped, 'catch-all')}): no match: "
        'alertname!~"Watchdog|InfoInhibitor" does not hold (alertname="Watchdog")'
    )
    assert lines[-1] == "  no incident rule matches: the alert is stored and counted as unrouted"


def test_the_command_reads_a_webhook_or_one_alert(
    tmp_path: Path, rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/alertmanager/firing-grouped.json").read_text())
    webhook = tmp_path / "webhook.json"
    webhook.write_text(fixture["body_raw"])
    single = tmp_path / "alert.json"
    single.write_text('{"labels": {"alertname": "BackupLate"}}')

    assert main(["explain", str(webhook), "--rules", str(rules_dir)]) == 0
    assert capsys.readouterr().out.count("rule service-outage (") == 3
    assert main(["explain", str(single), "--rules", str(rules_dir)]) == 0
    assert 'key: catch-all{alertname="BackupLate"}' in capsys.readouterr().out


def test_an_sres_own_rule_file_does_not_change_what_the_tests_see(tmp_path: Path) -> None:
    copy = copy_shipped_rules(tmp_path / "rules")
    (copy / "05-mine.yml").write_text("incidents:\n  - name: mine\n    match: '{}'\n")
    a = alert(severity="info", service="web")

    with_mine = explain(a, load_rules(rule_files(copy)), {}, NOW)
    shipped_only = explain(a, load_rules(shipped_rule_files(copy)), {}, NOW)

    assert "  rule mine" in with_mine[2]
    assert shipped_only == [
        line.replace(str(ROOT / "rules"), str(copy))
        for line in explain(a, load_rules(shipped_rule_files()), {}, NOW)
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "malformed JSON"),
        ('{"labels": ["a"]}', "labels"),
        # Refused as the daemon's /api/v1/alerts refuses it (replay alone takes it).
        (
            '{"labels": {"alertname": "A"}, "startsAt": "2026-12-01T02:00:00Z",'
            ' "endsAt": "2026-12-01T01:00:00Z"}',
            "endsAt: expected a time not before startsAt",
        ),
    ],
)
def test_the_command_says_what_is_wrong_with_the_file(
    tmp_path: Path,
    rules_dir: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    path = tmp_path / "alert.json"
    path.write_text(content)

    assert main(["explain", str(path), "--rules", str(rules_dir)]) == 1
    assert message in capsys.readouterr().err


def test_a_suppressing_window_that_is_on_is_named(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(
        "incidents:\n  - name: any\n    match: '{}'\n"
        "maintenance:\n  - name: upgrade\n    match: '{}'\n"
        "    start: 2026-03-01T11:00:00Z\n    end: 2026-03-01T13:00:00Z\n    change: CHG-1\n"
    )

    lines = explain(alert(), load_rules([rules_file]), {}, NOW)

    assert lines[-1].startswith("  decision: suppressed: matched rule any {}; key any{};")
    assert "maintenance window upgrade (suppress, change CHG-1)" in lines[-1]


# --- where the rules come from, and the store ----------------------------------------------------


def _alert_file(tmp_path: Path, **labels: str) -> Path:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps({"labels": {"alertname": "Down", **labels}}))
    return path


CRITICAL = {"severity": "critical", "service": "api", "env": "prod", "instance": "a"}


def test_without_config_or_rules_it_says_so_instead_of_explaining_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`itsmd run` without them opens no incidents; explain does not pretend to know more."""
    monkeypatch.delenv("ITSMD_RULES", raising=False)
    monkeypatch.chdir(tmp_path)

    assert main(["explain", str(_alert_file(tmp_path, **CRITICAL))]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("itsmd: no rules to explain with: give --rules DIR")


def test_it_takes_the_rules_itsmd_run_takes(
    tmp_path: Path,
    rules_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _alert_file(tmp_path, **CRITICAL)
    config = tmp_path / "itsmd.yml"
    config.write_text("rules: rules/\nsla: {P1: {respond: 15m}}\n")
    monkeypatch.delenv("ITSMD_RULES", raising=False)

    assert main(["explain", str(path), "--config", str(config)]) == 0
    assert "would open: 'api failing in prod', priority P1" in capsys.readouterr().out

    monkeypatch.setenv("ITSMD_RULES", str(rules_dir))
    assert main(["explain", str(path)]) == 0
    assert "would open: 'api failing in prod', priority P1" in capsys.readouterr().out


def test_an_empty_rules_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "none").mkdir()

    assert main(["explain", str(_alert_file(tmp_path)), "--rules", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err == f"itsmd: no rule files in {tmp_path / 'none'}\n"


def _store_with_an_incident(tmp_path: Path, rules_dir: Path) -> str:
    """A store in which the shipped rules opened INC-1 for one alert of api in prod."""
    from itsmd.runtime.metrics import Metrics
    from itsmd.runtime.writer import Writer
    from itsmd.store.engine import Database
    from itsmd.store.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'itsmd.db'}"
    rules = load_rules(rule_files(rules_dir))
    now = datetime.now(UTC)

    async def fill() -> None:
        db = Database(url, busy_timeout=timedelta(seconds=3))
        try:
            await upgrade(db)
            writer = Writer(db, lambda: rules, dict, lambda: now, Metrics())
            writer.start()
            await writer.ingest([alert(**CRITICAL)])
            await writer.stop()
        finally:
            await db.dispose()

    asyncio.run(fill())
    return url


def test_with_db_it_reads_the_store_and_names_the_incident_an_alert_would_join(
    tmp_path: Path, rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _store_with_an_incident(tmp_path, rules_dir)
    other = {**CRITICAL, "instance": "b"}
    args = ["--rules", str(rules_dir), "--db", url]

    assert main(["explain", str(_alert_file(tmp_path, **other)), *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:-1] == [
        "  would join INC-1 'api failing in prod' (open, priority P1)",
        f"  timeline: alert Down ({alert(**other).fingerprint}): matched rule service-outage "
        '{severity="critical", env!="dev"}; key service-outage{service="api", env="prod"}; '
        "INC-1 takes alerts of its key while any fires (1 firing)",
    ]
    assert out[-1] == f"  (read from the store at {url}; nothing was written)"

    elsewhere = {**CRITICAL, "env": "staging"}
    assert main(["explain", str(_alert_file(tmp_path, **elsewhere)), *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3].startswith("  would open: 'api failing in staging', priority P1")
    assert out[-1] == (
        f"  (the store at {url} has no incident of this key that takes alerts now; "
        "nothing was written)"
    )

    assert main(["explain", str(_alert_file(tmp_path, **other)), "--rules", str(rules_dir)]) == 0
    assert "  (against an empty store:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "--db: expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://"),
        ("sqlite+aiosqlite:///{tmp}/missing.db", "--db: no database file {tmp}/missing.db"),
        ("sqlite+aiosqlite:///{tmp}/alert.json", "cannot read the store at"),
    ],
)
def test_a_store_it_cannot_read_is_an_error(
    tmp_path: Path,
    rules_dir: Path,
    capsys: pytest.CaptureFixture[str],
    url: str,
    message: str,
) -> None:
    path = _alert_file(tmp_path, **CRITICAL)

    db = url.format(tmp=tmp_path)
    assert main(["explain", str(path), "--rules", str(rules_dir), "--db", db]) == 1

    assert capsys.readouterr().err.startswith(f"itsmd: {message.format(tmp=tmp_path)}")
    assert not (tmp_path / "missing.db").exists()
