"""The shipped example config and rules load cleanly and behave as documented."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from itsmd.checks.state import ALERT_NAMES
from itsmd.config import DEFAULT_LISTEN, Overrides, load_config, load_settings, parse_config
from itsmd.correlation.rules import RuleFile, RuleSet, load_rules, parse_rule_sections, rule_files
from itsmd.models import Level, Priority

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
EXAMPLE = ROOT / "itsmd.example.yml"
# The example rules itsmd ships, by name. `rules/` is also where `make run` loads an
# SRE's own rule files from (the README invites them there): no test may depend on
# what else is in it.
SHIPPED_RULES = ("10-services.yml", "50-checks.yml", "99-catch-all.yml")
SHIPPED_TESTS = ("tests/shipped.test.yml",)
# Fire all the time on purpose; the shipped rules open no incident for them.
ALWAYS_FIRING = ("Watchdog", "InfoInhibitor")


def shipped_rule_files(rules: Path = RULES) -> list[Path]:
    return [rules / name for name in SHIPPED_RULES]


def copy_shipped_rules(to: Path) -> Path:
    """A rules directory holding the shipped rule files and their tests, and nothing else."""
    for name in (*SHIPPED_RULES, *SHIPPED_TESTS):
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RULES / name, to / name)
    return to


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(shipped_rule_files())


def test_the_shipped_rule_files_are_in_the_rules_directory() -> None:
    assert set(shipped_rule_files()) <= set(rule_files(RULES))
    assert all((RULES / name).is_file() for name in SHIPPED_TESTS)


@pytest.mark.parametrize("path", shipped_rule_files(), ids=lambda p: p.name)
def test_each_shipped_rule_file_loads_cleanly(path: Path) -> None:
    parsed = parse_rule_sections(path.read_text(encoding="utf-8"), str(path))
    assert parsed != RuleFile(), f"{path.name} defines nothing"


def test_the_shipped_rules_load_together(shipped: RuleSet) -> None:
    names = [r.name for r in shipped.incident_rules]
    assert len(names) == len(set(names))
    assert shipped.files == tuple(str(p) for p in shipped_rule_files())


def test_the_last_shipped_incident_rule_catches_all_but_the_always_firing(
    shipped: RuleSet,
) -> None:
    last = shipped.incident_rules[-1]
    assert last.name == "catch-all"
    for labels in ({"alertname": "SomethingNobodyExpected", "severity": "info"}, {}):
        route = shipped.route(labels)
        assert route is not None
        assert route.rule is last
    for name in ALWAYS_FIRING:
        assert shipped.route({"alertname": name, "severity": "none"}) is None


def test_every_check_alert_has_an_incident_of_its_check(shipped: RuleSet) -> None:
    """Also a check without a service: its key is its own, not the key every
    critical alert without service and env labels shares."""
    for name in ALERT_NAMES:
        for severity in ("critical", "warning"):
            route = shipped.route({"alertname": name, "check": "c", "severity": severity})
            assert route is not None
            assert (route.rule.name, route.key) == ("check-alerts", 'check-alerts{check="c"}')
    route = shipped.route({"alertname": "NodeDown", "severity": "critical"})
    assert route is not None
    assert route.rule.name == "service-outage"


def test_an_sres_own_files_in_the_rules_directory_change_no_test(tmp_path: Path) -> None:
    """What `make run` loads may hold more than the shipped files; the tests load only
    the shipped ones, so they still see what they expect."""
    rules = copy_shipped_rules(tmp_path / "rules")
    (rules / "20-mine.yml").write_text(
        "incidents:\n  - name: mine\n    match: '{}'\n    group_by: [team]\n",
        encoding="utf-8",
    )
    (rules / "tests" / "mine.test.yml").write_text("this is not a test file\n")
    everything = load_rules(rule_files(rules))
    assert [r.name for r in everything.incident_rules][-2:] == ["mine", "catch-all"]

    copied = load_rules(shipped_rule_files(rules))

    assert [(r.name, r.match, r.group_by) for r in copied.incident_rules] == [
        (r.name, r.match, r.group_by) for r in load_rules(shipped_rule_files()).incident_rules
    ]


@pytest.mark.parametrize(
    ("labels", "rule", "impact"),
    [
        (
            {"alertname": "Down", "severity": "critical", "env": "prod", "service": "api"},
            "service-outage",
            Level.HIGH,
        ),
        ({"alertname": "Down", "severity": "critical", "env": "dev"}, "catch-all", Level.LOW),
        (
            {"alertname": "Slow", "severity": "warning", "service": "api"},
            "service-degraded",
            Level.MEDIUM,
        ),
        ({"alertname": "Watchdog2"}, "catch-all", Level.LOW),
        (
            {"alertname": "HeartbeatMissing", "check": "watchdog", "severity": "critical"},
            "check-alerts",
            Level.MEDIUM,
        ),
        ({}, "catch-all", Level.LOW),
    ],
)
def test_shipped_routing(
    shipped: RuleSet, labels: dict[str, str], rule: str, impact: Level
) -> None:
    route = shipped.route(labels)
    assert route is not None
    assert route.rule.name == rule
    assert route.rule.impact is impact


def test_shipped_rule_titles_render(shipped: RuleSet) -> None:
    labels = {"alertname": "Down", "severity": "critical", "env": "prod", "service": "api"}
    for rule in shipped.incident_rules:
        key, group = rule.key_for(labels)
        context = {
            "labels": labels,
            "annotations": {},
            "rule": rule.name,
            "key": key,
            "group": group,
        }
        for template in (rule.title, rule.description):
            _text, error = template.render(context)
            assert error is None, (rule.name, error)
        assert rule.title.render(context)[0]


def test_the_example_config_loads_cleanly() -> None:
    settings = load_settings(EXAMPLE, Overrides(), env={})
    assert settings.listen == DEFAULT_LISTEN
    assert settings.loopback_only
    assert settings.tokens == ()
    assert settings.database == "sqlite+aiosqlite:///itsmd.db"
    assert settings.max_body == 1024 * 1024
    assert settings.max_alerts == 1000
    assert set(settings.sla) == {Priority.P1, Priority.P2, Priority.P3, Priority.P4}


def test_the_example_configs_rules_are_the_shipped_rules(shipped: RuleSet, tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE, Overrides(), env={})
    assert [Path(p).resolve() for p in settings.rules] == [RULES.resolve()]
    copy_shipped_rules(tmp_path / "rules")
    config = tmp_path / EXAMPLE.name
    shutil.copyfile(EXAMPLE, config)

    _settings, rules = load_config(config, Overrides(), env={})

    assert [(r.name, r.match) for r in rules.incident_rules] == [
        (r.name, r.match) for r in shipped.incident_rules
    ]
    assert [c.name for c in rules.checks] == [c.name for c in shipped.checks]


def test_the_readme_slack_route_makes_a_valid_config() -> None:
    """A newcomer follows the README: its snippet replaces the example's empty sections."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Send incidents to Slack") :]
    snippet = section[
        section.index("```yaml") + 7 : section.index("```", section.index("```yaml") + 7)
    ]
    snippet = textwrap.dedent(snippet)
    example = EXAMPLE.read_text(encoding="utf-8")
    assert "connectors: {}\nroutes: []\n" in example
    text = example.replace("connectors: {}\nroutes: []\n", snippet)
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x"}
    settings = parse_config(text, str(EXAMPLE), env)
    (route,) = settings.connectors.routes
    assert route.to == ("team-slack",)
    assert settings.connectors.sinks["team-slack"].kind == "slack"
