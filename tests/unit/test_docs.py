"""The docs move with the code: every metric, rule field, config key and command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from itsmd.checks.spec import CHECK_KEYS
from itsmd.cli import main as cli
from itsmd.config import SECTION_KEYS, TOP_KEYS
from itsmd.correlation.rules import (
    INCIDENT_KEYS,
    KNOWN_ERROR_KEYS,
    MAINTENANCE_KEYS,
    PROBLEM_KEYS,
    SERVICE_KEYS,
)
from itsmd.models import Action, TimelineKind
from itsmd.notify.config import COMMON_SINK_KEYS, CONNECTOR_KEYS, PROMETHEUS_KEYS, ROUTE_KEYS
from itsmd.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def doc(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def documents(name: str, key: str) -> bool:
    """The key is named in the text (`key`) or set in one of its YAML examples."""
    text = doc(name)
    return f"`{key}`" in text or re.search(rf"^\s*(- )?{re.escape(key)}:", text, re.M) is not None


def exposed_metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


@pytest.mark.parametrize("name", sorted(exposed_metric_names()))
def test_every_metric_is_documented(name: str) -> None:
    assert f"`{name}`" in doc("docs/metrics.md")


def test_documented_metrics_exist() -> None:
    documented = set(re.findall(r"^\| `(itsmd_[a-z_]+)`", doc("docs/metrics.md"), re.M))
    assert documented == exposed_metric_names()


@pytest.mark.parametrize("key", INCIDENT_KEYS)
def test_every_incident_rule_field_is_documented(key: str) -> None:
    assert f"| `{key}` |" in doc("docs/rules.md")


@pytest.mark.parametrize("kind", [*Action, *TimelineKind])
def test_decisions_and_timeline_kinds_are_documented(kind: str) -> None:
    assert f"`{kind}`" in doc("docs/rules.md")


@pytest.mark.parametrize("key", TOP_KEYS)
def test_every_config_key_is_documented(key: str) -> None:
    assert f"### `{key}`" in doc("docs/configuration.md") or f"`{key}`" in doc(
        "docs/configuration.md"
    )


@pytest.mark.parametrize(
    ("section", "key"), [(section, key) for section, keys in SECTION_KEYS.items() for key in keys]
)
def test_every_nested_config_key_is_documented(section: str, key: str) -> None:
    assert documents("docs/configuration.md", key), f"{section}.{key}"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        *(("connectors", k) for k in CONNECTOR_KEYS),
        *(("connectors.prometheus", k) for k in PROMETHEUS_KEYS),
        *(("connectors.sinks.*", k) for k in COMMON_SINK_KEYS),
        *(("routes[]", k) for k in ROUTE_KEYS),
    ],
)
def test_every_connector_and_route_key_is_documented(section: str, key: str) -> None:
    assert documents("docs/connectors.md", key) or documents("docs/configuration.md", key), section


@pytest.mark.parametrize(
    ("section", "key"),
    [
        *(("problems", k) for k in PROBLEM_KEYS),
        *(("services", k) for k in SERVICE_KEYS),
        *(("known_errors", k) for k in KNOWN_ERROR_KEYS),
        *(("maintenance", k) for k in MAINTENANCE_KEYS),
        *(("checks", k) for k in CHECK_KEYS),
    ],
)
def test_every_rule_section_key_is_documented(section: str, key: str) -> None:
    assert documents("docs/rules.md", key), f"{section}: {key}"


def _sources() -> list[Path]:
    tracked = ("daemon", "connectors", "tests", "bench", "docs", "rules", "systemd")
    found = [p for top in tracked for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".md"}]
    return [*found, ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_references_point_at_documents_the_repository_has(path: Path) -> None:
    """A maintainer with only this repository can follow every reference."""
    text = path.read_text(encoding="utf-8")
    outside = re.findall(r"\b(?:DESIGN|PEERS|STYLE)(?:\.md)?\s*(?:§|section|\d)", text)
    assert not outside, f"cites documents the repository does not have: {outside}"
    # A path of the repository, not one that merely ends so (/usr/lib/systemd/system).
    found = re.findall(r"(?<![\w/])(docs/[\w./-]+\.md|bench/[\w.-]+\.md|systemd/[\w.-]+)", text)
    for ref in found:
        assert (ROOT / ref).exists(), f"{ref} does not exist"


def _commands(parser: object, prefix: str = "itsmd") -> list[str]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize("command", _commands(cli._parser()))
def test_every_command_is_in_the_readme(command: str) -> None:
    """`itsmd incidents ack` may be written `itsmd incidents show|ack|resolve ID`."""
    parent, _, last = command.rpartition(" ")
    lines = [line for line in doc("README.md").splitlines() if parent + " " in line]
    assert any(last in re.split(r"[\s|\[\]]+", line.split(parent + " ", 1)[1]) for line in lines)
