"""The `itsmd` command. Errors go to stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from itsmd import __version__
from itsmd.cli import backup, client, completion, incidents, maintenance, oncall, reports
from itsmd.config import Overrides, Settings, load_config, load_settings
from itsmd.correlation.rules import RuleSet, load_rules, rule_files
from itsmd.dburl import is_sqlite
from itsmd.durations import parse_time
from itsmd.logs import LOG_FORMAT
from itsmd.models import Action, Alert, AlertStatus, StoredAlert
from itsmd.yamlsource import LoadError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from itsmd.correlation.correlate import WorkingSet
    from itsmd.store.engine import Database

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
# `now` for recorded alerts: they carry their own times; one without an end time
# is resolved when its endsAt has passed, which for a recording it has.
_RECORDED_NOW = datetime.max.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None, clock: Callable[[], datetime] | None = None) -> int:
    """`clock`: what the API commands call now, for the ages they show (tests give one)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.now = (clock or _utcnow)()
    try:
        result: int = args.func(args)
        return result
    except LoadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    except client.ClientError as exc:
        print(f"itsmd: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `itsmd explain ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="itsmd", description="Incident automation daemon.")
    p.add_argument("--version", action="version", version=f"itsmd {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    _add_settings_args(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="listen address (env ITSMD_LISTEN)")
    run.add_argument("--migrate", action="store_true", help="upgrade an outdated schema first")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)

    config = sub.add_parser("config", help="config file tools").add_subparsers(metavar="ACTION")
    check = config.add_parser("check", help="validate a config file and the rules it names")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_config_check)

    rules = sub.add_parser("rules", help="rule file tools").add_subparsers(metavar="ACTION")
    rcheck = rules.add_parser("check", help="validate rule files (exit 1 on errors)")
    rcheck.add_argument("paths", nargs="+", metavar="DIR|FILE")
    rcheck.set_defaults(func=_rules_check)
    rtest = rules.add_parser("test", help="run rule unit tests (exit 1 on a failure)")
    rtest.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rtest.set_defaults(func=_rules_test)

    explain = sub.add_parser(
        "explain", help="show how the rules decide on an alert, storing nothing"
    )
    explain.add_argument(
        "file",
        type=Path,
        metavar="ALERT.json",
        help="an alert (Alertmanager shape) or a webhook payload",
    )
    explain.add_argument(
        "--config",
        type=Path,
        help="config file (itsmd.yml): its rules and sla targets, as `itsmd run` uses them",
    )
    explain.add_argument("--rules", metavar="DIR", help="rules directory or file (env ITSMD_RULES)")
    explain.add_argument(
        "--db",
        metavar="URL",
        help="read this store (nothing is written) to tell which of its incidents the "
        "alert would join; without it, explain decides against an empty store",
    )
    explain.set_defaults(func=_explain)

    replay = sub.add_parser(
        "replay", help="recorded alerts through rules in virtual time, storing nothing"
    )
    replay.add_argument(
        "alerts",
        type=Path,
        metavar="ALERTS.jsonl",
        help="one alert or webhook payload per line (itsmd export alerts)",
    )
    replay.add_argument("--rules", required=True, metavar="DIR", help="the rules to replay")
    replay.add_argument(
        "--against", metavar="DIR", help="another rule set: show what changes from it to --rules"
    )
    replay.add_argument("--config", type=Path, help="config file, for its sla: targets")
    replay.set_defaults(func=_replay)

    export = sub.add_parser("export", help="export from the store").add_subparsers(metavar="WHAT")
    exalerts = export.add_parser(
        "alerts", help="alerts received since a time, as JSON lines for itsmd replay"
    )
    exalerts.add_argument(
        "--since", required=True, metavar="DURATION|TIME", help="e.g. 7d, or 2026-11-20T00:00:00Z"
    )
    _add_settings_args(exalerts)
    exalerts.set_defaults(func=_export_alerts)

    db = sub.add_parser("db", help="database tools").add_subparsers(metavar="ACTION")
    upgrade = db.add_parser("upgrade", help="create or upgrade the schema")
    _add_settings_args(upgrade)
    upgrade.set_defaults(func=_db_upgrade)
    backup.add_commands(sub)

    incidents.add_commands(sub)
    incidents.add_problem_commands(sub)
    oncall.add_commands(sub)
    maintenance.add_commands(sub)
    reports.add_commands(sub)
    completion.add_command(sub, p)
    return p


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _add_settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="config file (itsmd.yml)")
    p.add_argument("--db", metavar="URL", help="database URL (env ITSMD_DB)")
    p.add_argument("--rules", metavar="DIR", help="rules directory or file (env ITSMD_RULES)")


def _settings(args: argparse.Namespace) -> tuple[Settings, Overrides]:
    overrides = Overrides(listen=getattr(args, "listen", None), database=args.db, rules=args.rules)
    return load_settings(args.config, overrides), overrides


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=LOG_FORMAT,
    )
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A fatal signal (SIGBUS when SQLite's memory-mapped -shm file cannot be written,
    # SIGSEGV) kills the process where no Python code runs: the tracebacks of every
    # thread go to the log first, so the journal says where it died.
    with contextlib.suppress(AttributeError, ValueError):  # a stderr without a file
        faulthandler.enable(file=sys.stderr, all_threads=True)
    overrides = Overrides(listen=args.listen, database=args.db, rules=args.rules)
    settings, rules = load_config(args.config, overrides)
    host, port = settings.host_port
    if not settings.tokens and not settings.loopback_only:
        return _fail(
            f"listen address {settings.listen} is not loopback and auth.tokens is "
            "empty: configure tokens, or listen on 127.0.0.1"
        )
    if settings.ingest_process and is_sqlite(settings.database):
        from itsmd.runtime import forkserver

        forkserver.start()  # it imports the ingest process's modules while we import ours
    from itsmd.server.app import StartupError, build_app
    from itsmd.server.serve import serve

    app = build_app(settings, overrides=overrides, migrate=args.migrate, rules=rules)
    try:
        asyncio.run(serve(app, host, port))
    except (StartupError, OSError) as exc:
        return _fail(str(exc))
    return EXIT_OK


def _config_check(args: argparse.Namespace) -> int:
    settings, ruleset = load_config(args.file)
    warnings = _print_warnings(ruleset)
    c = settings.connectors
    print(
        f"{args.file}: ok ({len(settings.tokens)} tokens, {len(ruleset)} incident rules "
        f"and {len(ruleset.checks)} checks in {len(ruleset.files)} files, {len(c.sinks)} sinks, "
        f"{len(c.routes)} routes, {warnings} warnings)"
    )
    return EXIT_OK


def _rules_check(args: argparse.Namespace) -> int:
    paths = rule_files(args.paths)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        return _fail(f"no such file or directory: {', '.join(missing)}")
    ruleset = load_rules(paths)
    warnings = _print_warnings(ruleset)
    checks = f" and {len(ruleset.checks)} checks" if ruleset.checks else ""
    print(f"ok: {len(ruleset)} incident rules{checks} in {len(paths)} files, {warnings} warnings")
    return EXIT_OK


def _print_warnings(ruleset: RuleSet) -> int:
    """Rules that load but cannot do what they say; they do not fail the check."""
    from itsmd.ruletools.check import lint

    warnings = lint(ruleset)
    for warning in warnings:
        print(warning, file=sys.stderr)
    return len(warnings)


def _rules_test(args: argparse.Namespace) -> int:
    from itsmd.ruletools.unittests import load_test_file, run_file

    passed = failed = 0
    for path in args.files:
        test_file = load_test_file(path)
        print(f"{path}: {len(test_file.tests)} tests")
        for result in run_file(test_file):
            where = f"{path}:{result.test.line}"
            if result.ok:
                passed += 1
                print(f"  ok    {result.test.name}")
                continue
            failed += 1
            print(f"  FAIL  {result.test.name} ({where})")
            for failure in result.failures:
                print("        " + failure.replace("\n", "\n        "))
    print(f"{passed + failed} tests, {passed} passed, {failed} failed")
    return EXIT_FAIL if failed else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    import json

    from itsmd.ruletools.explain import explain
    from itsmd.sources import PayloadError

    # The rules `itsmd run` would use with the same --config, --rules and ITSMD_RULES.
    settings, rules = load_config(args.config, Overrides(rules=args.rules))
    if not rules.files:
        named = ", ".join(settings.rules)
        return _fail(
            f"no rule files in {named}"
            if named
            else "no rules to explain with: give --rules DIR, or --config FILE whose "
            "rules: names them (itsmd run without either opens no incidents: every alert "
            "is stored unrouted)"
        )
    try:
        body = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        return _fail(f"{args.file}: malformed JSON: {exc}")
    now = datetime.now(UTC)
    try:
        alerts = _parse_alerts(body, now)
    except PayloadError as exc:
        return _fail(f"{args.file}: {exc}")
    if args.db is None:
        for alert in alerts:
            print("\n".join(explain(alert, rules, settings.sla, now)))
        return EXIT_OK
    problem = _store_problem(args.db)
    if problem is not None:
        return _fail(problem)
    try:
        shown, states = asyncio.run(_stored_states(args.db, settings, rules, alerts))
    except _StoreError as exc:
        return _fail(str(exc))
    for alert, state in zip(alerts, states, strict=True):
        print("\n".join(explain(alert, rules, settings.sla, now, state, shown)))
    return EXIT_OK


class _StoreError(Exception):
    pass


def _store_problem(url: str) -> str | None:
    """Why `url` is no store to read from, before opening it (opening a missing SQLite
    file would create an empty store)."""
    from itsmd.config import database_problem

    problem = database_problem(url)
    if problem is not None:
        return f"--db: {problem}"
    if is_sqlite(url) and not Path(url.split(":///", 1)[1]).is_file():
        return f"--db: no database file {url.split(':///', 1)[1]}"
    return None


async def _current_schema(db: Database) -> None:
    """Raise _StoreError unless `db` is an itsmd store of this version."""
    from itsmd.store.migrate import SchemaState, schema_state

    state, revision = await schema_state(db)
    if state is not SchemaState.CURRENT:
        raise _StoreError(
            f"the store at {db.safe_url} is not an itsmd store of this version "
            f"({state}, revision {revision}): run `itsmd db upgrade --db URL` first"
        )


def _first_line(exc: Exception) -> str:
    """A database error without the statement and the link SQLAlchemy add to it."""
    return str(exc).split("\n", 1)[0]


async def _stored_states(
    url: str, settings: Settings, rules: RuleSet, alerts: Sequence[Alert]
) -> tuple[str, list[WorkingSet]]:
    """For each alert, what the store holds that it may touch, read as the daemon's
    writer reads it before correlating (in a read transaction: nothing is written)."""
    from itsmd.store.engine import Database

    db = Database(url, busy_timeout=settings.busy_timeout)
    shown = db.safe_url
    try:
        await _current_schema(db)
        return shown, [await db.read(_loader(alert, rules)) for alert in alerts]
    except _StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - a clean message for operators
        raise _StoreError(f"cannot read the store at {shown}: {_first_line(exc)}") from None
    finally:
        await db.dispose()


def _loader(alert: Alert, rules: RuleSet) -> Callable[[Connection], WorkingSet]:
    """What the writer loads for one alert (runtime/writer.py): its stored episode, the
    firing episode a resolve or a send without startsAt continues, the current incident
    of its key, and the open incidents of its upstream services."""
    from itsmd.store import repo

    route = rules.route(alert.labels) if alert.status is AlertStatus.FIRING else None
    service = alert.labels.get("service")
    upstream = (
        rules.upstream(service) if route and route.rule.attach_to_upstream and service else []
    )
    episodic = (
        [alert.fingerprint]
        if alert.status is AlertStatus.RESOLVED or "startsAt" not in alert.raw
        else []
    )
    keys = [route.key] if route else []
    return lambda conn: repo.load_working_set(conn, [alert.identity], episodic, keys, (), upstream)


def _replay(args: argparse.Namespace) -> int:
    from itsmd.ruletools import replay

    settings = load_settings(args.config, Overrides(), env=None)
    try:
        with args.alerts.open(encoding="utf-8") as lines:
            alerts = _recorded_alerts(lines, str(args.alerts))
    except OSError as exc:
        return _fail(f"cannot read {args.alerts}: {exc.strerror}")
    except ValueError as exc:
        return _fail(str(exc))
    timeline = replay.events(alerts)
    new = replay.replay(timeline, load_rules(rule_files(args.rules)), settings.sla)
    if args.against is None:
        for opened in new:
            print(opened.summary())
        print(f"{len(alerts)} alerts, {len(new)} incidents")
        return EXIT_OK
    old = replay.replay(timeline, load_rules(rule_files(args.against)), settings.sla)
    changes = replay.diff(new, old)
    print("\n".join(changes))
    print(
        f"{len(alerts)} alerts; {len(old)} incidents with {args.against}, {len(new)} with "
        f"{args.rules}; {len(changes)} differ"
    )
    return EXIT_OK


def _parse_alerts(body: object, now: datetime, *, recorded: bool = False) -> Sequence[Alert]:
    """A webhook payload, a list of alerts, or one alert (Alertmanager's shape),
    through the daemon's own sources."""
    from itsmd.server.app import SOURCES

    webhook, generic = (route.source for route in SOURCES)
    if isinstance(body, dict) and "alerts" in body:
        return webhook.parse(body, now)
    items = body if isinstance(body, list) else [body]
    if recorded:  # replay: what the daemon stored, not a request
        items = [_as_recorded(item) for item in items]
    return generic.parse(items, now)


def _as_recorded(item: object) -> object:
    """A recorded alert as the generic source takes it. Alertmanager sends some
    resolves with an endsAt before the startsAt (the webhook source stores them as
    sent, and the export writes them so); the generic source, like Alertmanager's
    API, refuses that in a request. Replay resolves such an alert at its start
    (`replay.events`), so here it ends there."""
    if not isinstance(item, dict):
        return item
    starts, ends = item.get("startsAt"), item.get("endsAt")
    if not (isinstance(starts, str) and isinstance(ends, str)):
        return item
    try:
        if parse_time(ends) >= parse_time(starts):
            return item
    except ValueError:
        return item  # the source names what is wrong
    return {**item, "endsAt": starts}


def _recorded_alerts(lines: Iterable[str], name: str) -> list[Alert]:
    """Alerts of a JSON-lines file: each line an alert or a webhook payload."""
    import orjson

    from itsmd.sources import PayloadError

    alerts: list[Alert] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            alerts.extend(_parse_alerts(orjson.loads(line), _RECORDED_NOW, recorded=True))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{name}:{number}: malformed JSON: {exc}") from None
        except PayloadError as exc:
            raise ValueError(f"{name}:{number}: {exc}") from None
    return alerts


def _export_alerts(args: argparse.Namespace) -> int:
    import orjson

    from itsmd.durations import parse_since
    from itsmd.ruletools import replay
    from itsmd.store import repo
    from itsmd.store.engine import Database

    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        return _fail(f"--since: {exc}")
    settings, _ = _settings(args)

    problem = _store_problem(settings.database)
    if problem is not None:
        return _fail(problem)

    async def read() -> list[StoredAlert]:
        db = Database(settings.database, busy_timeout=settings.busy_timeout)
        try:
            await _current_schema(db)
            return await db.read(lambda conn: repo.alerts_received_since(conn, since))
        finally:
            await db.dispose()

    try:
        stored = asyncio.run(read())
    except _StoreError as exc:
        return _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a clean message for operators
        return _fail(f"cannot read the store: {_first_line(exc)}")
    for alert in stored:
        record: dict[str, object] = {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": alert.starts_at.isoformat().replace("+00:00", "Z"),
            "status": alert.status.value,
            "fingerprint": alert.fingerprint,
            "generatorURL": alert.generator_url,
        }
        if alert.ends_at is not None:
            record["endsAt"] = alert.ends_at.isoformat().replace("+00:00", "Z")
        if alert.decision.action is Action.ORPHAN_RESOLVE:
            record[replay.FIRING_RECEIVED] = False  # replay sends only its resolve
        sys.stdout.buffer.write(orjson.dumps(record) + b"\n")
    return EXIT_OK


def _db_upgrade(args: argparse.Namespace) -> int:
    from itsmd.store.engine import Database
    from itsmd.store.migrate import head_revision, upgrade

    settings, _ = _settings(args)

    async def go() -> None:
        db = Database(settings.database, busy_timeout=settings.busy_timeout)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    try:
        asyncio.run(go())
    except Exception as exc:  # noqa: BLE001 - a clean message for operators
        return _fail(f"database upgrade failed: {exc}")
    print(f"database at revision {head_revision()}")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"itsmd: {message}", file=sys.stderr)
    return EXIT_FAIL
