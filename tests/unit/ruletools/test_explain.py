"""`itsmd explain`: which rules did not match and why, then the decision, storing nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from itsmd.cli.main import main
from itsmd.correlation.rules import RuleSet, load_rules, rule_files
from itsmd.ruletools.explain import explain
from tests.unit.correlation.test_correlate import alert

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(rule_files(ROOT / "rules"))


def test_each_rule_before_the_match_says_which_matcher_failed(shipped: RuleSet) -> None:
    lines = explain(alert(severity="info", service="web"), shipped, {}, NOW)

    assert lines[2:5] == [
        '  rule service-outage (rules/10-services.yml:5): no match: severity="critical" '
        'does not hold (severity="info")'.replace("rules/", f"{ROOT}/rules/"),
        '  rule service-degraded (rules/10-services.yml:17): no match: severity="warning" '
        'does not hold (severity="info")'.replace("rules/", f"{ROOT}/rules/"),
        f"  rule catch-all ({ROOT}/rules/99-catch-all.yml:5): matches {{}}",
    ]
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


def test_the_command_reads_a_webhook_or_one_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/alertmanager/firing-grouped.json").read_text())
    webhook = tmp_path / "webhook.json"
    webhook.write_text(fixture["body_raw"])
    single = tmp_path / "alert.json"
    single.write_text('{"labels": {"alertname": "Watchdog"}}')

    assert main(["explain", str(webhook), "--rules", str(ROOT / "rules")]) == 0
    assert capsys.readouterr().out.count("rule service-outage (") == 3
    assert main(["explain", str(single), "--rules", str(ROOT / "rules")]) == 0
    assert 'key: catch-all{alertname="Watchdog"}' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "malformed JSON"), ('{"labels": ["a"]}', "labels")],
)
def test_the_command_says_what_is_wrong_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "alert.json"
    path.write_text(content)

    assert main(["explain", str(path), "--rules", str(ROOT / "rules")]) == 1
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
