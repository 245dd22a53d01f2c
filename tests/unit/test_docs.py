"""The docs move with the code: every metric, rule field, config key and command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from itsmd.cli import main as cli
from itsmd.config import TOP_KEYS
from itsmd.correlation.rules import INCIDENT_KEYS
from itsmd.models import Action, TimelineKind
from itsmd.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def doc(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


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
