"""watch_rules: changed rule files reload, all or nothing, once per change; the
maintenance windows of the API a replica reads back from the store."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from itsmd.config import Overrides, load_settings
from itsmd.correlation.matchers import parse_selector
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow, load_rules, rule_files
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


def test_a_read_of_the_windows_begun_before_a_change_here_is_dropped(tmp_path: Path) -> None:
    """The periodic read brings other replicas' windows in; one that began before this
    replica ended a window must not put the window back until the next read."""
    runtime = _runtime(tmp_path)
    nightly = MaintenanceWindow(
        "nightly", (parse_selector("{}"),), every="0 3 * * *", file=API_WINDOWS
    )
    runtime.set_api_windows([nightly])
    before = runtime.windows_version
    runtime.set_api_windows([])  # ended here while the periodic read was under way
    runtime.set_api_windows([nightly], read_at=before)  # what that read found
    assert runtime.api_windows == ()
    runtime.set_api_windows([nightly], read_at=runtime.windows_version)  # another replica's
    assert [w.name for w in runtime.api_windows] == ["nightly"]
    assert [w.name for w in runtime.rules.maintenance] == ["nightly"]
