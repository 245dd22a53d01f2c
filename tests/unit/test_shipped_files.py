"""The shipped example config and rules load cleanly and behave as documented."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from itsmd.config import DEFAULT_LISTEN, Overrides, load_settings, parse_config
from itsmd.correlation.matchers import Selector
from itsmd.correlation.rules import RuleFile, RuleSet, load_rules, parse_rule_sections, rule_files
from itsmd.models import Level, Priority
from itsmd.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
EXAMPLE = ROOT / "itsmd.example.yml"


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(rule_files(RULES))


def test_the_rules_directory_holds_rule_files() -> None:
    assert [p.name for p in rule_files(RULES)] == sorted(
        p.name for p in RULES.iterdir() if p.suffix in (".yml", ".yaml")
    )
    assert rule_files(RULES)


@pytest.mark.parametrize("path", rule_files(RULES), ids=lambda p: p.name)
def test_each_shipped_rule_file_loads_cleanly(path: Path) -> None:
    parsed = parse_rule_sections(path.read_text(encoding="utf-8"), str(path))
    assert parsed != RuleFile(), f"{path.name} defines nothing"


def test_the_shipped_rules_load_together(shipped: RuleSet) -> None:
    names = [r.name for r in shipped.incident_rules]
    assert len(names) == len(set(names))
    assert shipped.files == tuple(str(p) for p in rule_files(RULES))


def test_the_last_shipped_incident_rule_is_a_catch_all(shipped: RuleSet) -> None:
    last = shipped.incident_rules[-1]
    assert last.match == (Selector(()),)
    raw = load_yaml(Path(last.file).read_text(encoding="utf-8"), last.file)
    assert raw["incidents"][-1]["match"] == "{}"
    route = shipped.route({"alertname": "SomethingNobodyExpected", "severity": "info"})
    assert route is not None
    assert route.rule is last


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
        ({"alertname": "Watchdog"}, "catch-all", Level.LOW),
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


def test_the_example_configs_rules_are_the_shipped_rules(shipped: RuleSet) -> None:
    settings = load_settings(EXAMPLE, Overrides(), env={})
    assert [Path(p).resolve() for p in settings.rules] == [RULES.resolve()]
    assert load_rules(rule_files(settings.rules)).incident_rules == shipped.incident_rules


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
