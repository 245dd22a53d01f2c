"""watch_rules: changed rule files reload, all or nothing, once per change."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from itsmd.config import Overrides, load_settings
from itsmd.correlation.rules import load_rules, rule_files
from itsmd.runtime.housekeeping import RuleWatch
from itsmd.runtime.metrics import Metrics
from itsmd.runtime.state import Runtime
from itsmd.yamlsource import LoadError

RULE = "incidents:\n  - name: {name}\n    match: '{{}}'\n"


def _runtime(tmp_path: Path) -> Runtime:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-a.yml").write_text(RULE.format(name="a"))
    config = tmp_path / "itsmd.yml"
    config.write_text("rules: rules/\nwatch_rules: 5s\n")
    settings = load_settings(config, Overrides(), env={})
    assert settings.watch_rules == timedelta(seconds=5)
    return Runtime(
        settings, load_rules(rule_files(settings.rules)), Metrics(), lambda: datetime.now(UTC)
    )


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()  # a new mtime even within the filesystem's clock resolution
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_nothing_changed_nothing_reloads(tmp_path: Path) -> None:
    watch = RuleWatch(_runtime(tmp_path))
    assert await watch.check() is None


async def test_an_edited_or_added_file_reloads(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    watch = RuleWatch(runtime)

    (tmp_path / "rules" / "20-b.yml").write_text(RULE.format(name="b"))
    result = await watch.check()

    assert result is not None
    assert result.ok
    assert [r.name for r in runtime.rules.incident_rules] == ["a", "b"]
    assert await watch.check() is None


async def test_a_broken_file_keeps_the_old_rules_and_is_not_retried(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    watch = RuleWatch(runtime)

    _touch(tmp_path / "rules" / "10-a.yml", "incidents:\n  - name: a\n")
    result = await watch.check()

    assert result is not None
    assert not result.ok
    assert "missing 'match'" in result.errors[0]
    assert [r.name for r in runtime.rules.incident_rules] == ["a"]
    assert await watch.check() is None  # the same broken files: reported once


@pytest.mark.parametrize("value", ["0s", "500ms", "soon"])
def test_a_bad_interval_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "itsmd.yml"
    config.write_text(f"watch_rules: {value}\n")
    with pytest.raises(LoadError, match="watch_rules"):
        load_settings(config, Overrides(), env={})


async def test_a_reload_refuses_what_a_start_refuses(tmp_path: Path) -> None:
    """A prometheus check needs connectors.prometheus, at start and on reload alike."""
    runtime = _runtime(tmp_path)
    watch = RuleWatch(runtime)
    check = "checks:\n  - {name: q, type: prometheus, query: up, critical: {below: 1}}\n"
    (tmp_path / "rules" / "20-checks.yml").write_text(check)

    result = await watch.check()

    assert result is not None
    assert not result.ok
    assert "needs connectors.prometheus" in "\n".join(result.errors)
    assert runtime.rules.checks == ()
