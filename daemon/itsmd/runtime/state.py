"""What the running daemon holds: settings, the rule set in force, store, writer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from itsmd.config import Overrides, Settings, load_config
from itsmd.correlation.rules import API_WINDOWS, MaintenanceWindow, RuleSet, load_rules, rule_files
from itsmd.runtime.metrics import Metrics
from itsmd.runtime.writer import Writer
from itsmd.store.engine import Database
from itsmd.yamlsource import LoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    rules: int
    errors: tuple[str, ...] = ()
    restart_needed: tuple[str, ...] = ()


@dataclass
class Readiness:
    """Whether the store took a write lately, as the readiness probe last found it
    (docs/operations.md, Readiness). Not ready before the first probe, after a failed
    one, and when no probe succeeded for `stale_after` (a probe that hangs)."""

    stale_after: timedelta = timedelta(seconds=15)
    last_ok: datetime | None = None
    failure: str | None = None  # why the last probe failed; None once one succeeds

    def succeeded(self, at: datetime) -> bool:
        """Record a probe that succeeded; whether it ends a failure."""
        ended = self.failure is not None
        self.last_ok, self.failure = at, None
        return ended

    def failed(self, why: str) -> bool:
        """Record a probe that failed; whether it starts a failure."""
        started = self.failure is None
        self.failure = why
        return started

    def problem(self, now: datetime) -> str | None:
        """Why this replica is not ready now, or None when it is."""
        if self.failure is not None:
            return self.failure
        if self.last_ok is None:
            return "the store has not taken a write yet"
        if now - self.last_ok > self.stale_after:
            return (
                f"the store has not taken a write for {(now - self.last_ok).total_seconds():.0f}s"
            )
        return None


@dataclass
class Runtime:
    settings: Settings
    rules: RuleSet
    metrics: Metrics
    clock: Callable[[], datetime]
    overrides: Overrides = field(default_factory=Overrides)
    db: Database | None = None
    writer: Writer | None = None
    ready: bool = False  # started and not stopping
    readiness: Readiness = field(default_factory=Readiness)
    api_windows: tuple[MaintenanceWindow, ...] = ()
    windows_version: int = 0  # counts the changes of api_windows made on this replica
    # Called after a successful reload (sinks, checks): the composition root adds them.
    on_reload: list[Callable[[], None]] = field(default_factory=list)

    def set_api_windows(
        self, windows: Sequence[MaintenanceWindow], read_at: int | None = None
    ) -> None:
        """Maintenance windows created through the API join those of the rule files.

        `read_at`: the `windows_version` at which a read of the stored windows began
        (the periodic one that brings in other replicas' changes). It is dropped when a
        change was made here since: it may have read the store before that change."""
        if read_at is not None and read_at != self.windows_version:
            return
        if read_at is None:
            self.windows_version += 1
        if tuple(windows) != self.api_windows:
            self.api_windows = tuple(windows)
            self.rules = _with_windows(self.rules, self.api_windows)

    def reload(self) -> ReloadResult:
        """Re-read the config file and the rules; all or nothing."""
        try:
            if self.settings.config_file is not None:
                # Validated together, as at start: what `itsmd run` refuses, a reload does.
                settings, rules = load_config(self.settings.config_file, self.overrides)
            else:  # nothing to re-read but the rules
                settings, rules = self.settings, load_rules(rule_files(self.settings.rules))
        except LoadError as exc:
            self.metrics.rules_last_reload_success.set(0)
            findings = tuple(str(p) for p in exc.findings)
            log.error(
                "reload failed, the previous config and rules stay in force:\n%s",
                "\n".join(findings),
            )
            return ReloadResult(False, len(self.rules), findings)
        restart = tuple(
            name
            for name in (
                "listen",
                "database",
                "busy_timeout",
                "sqlite_synchronous",
                "ingest_process",
            )
            if getattr(settings, name) != getattr(self.settings, name)
        )
        if restart:
            log.warning("reload: %s changed; takes effect after a restart", ", ".join(restart))
            settings = _keep(settings, self.settings, restart)
        self.settings, self.rules = settings, _with_windows(rules, self.api_windows)
        self.record_rules_loaded()
        for hook in self.on_reload:
            hook()
        log.info("reloaded: %d incident rules from %d files", len(rules), len(rules.files))
        return ReloadResult(True, len(rules), restart_needed=restart)

    def record_rules_loaded(self) -> None:
        self.metrics.rules_loaded.set(len(self.rules))
        self.metrics.know_problem_rules(rule.name for rule in self.rules.problem_rules)
        self.metrics.rules_last_reload_success.set(1)
        self.metrics.rules_last_reload_timestamp.set(self.clock().timestamp())


def _keep(new: Settings, old: Settings, names: tuple[str, ...]) -> Settings:
    return replace(new, **{name: getattr(old, name) for name in names})


def _with_windows(rules: RuleSet, api: tuple[MaintenanceWindow, ...]) -> RuleSet:
    from_files = tuple(w for w in rules.maintenance if w.file != API_WINDOWS)
    return replace(rules, maintenance=from_files + api)
