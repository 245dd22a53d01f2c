"""The config file (`itsmd.yml`), environment and flags, validated into Settings.

Precedence: command-line flags beat environment variables, which beat the file,
which beats the defaults. Unknown keys are errors; secrets are never inline.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

from itsmd.checks.spec import CheckType
from itsmd.correlation.businesshours import BusinessHours, parse_days, parse_span, parse_zone
from itsmd.correlation.rules import RuleSet, load_rules, rule_files
from itsmd.correlation.sla import SlaTarget
from itsmd.durations import format_duration, parse_duration, parse_size
from itsmd.models import Priority
from itsmd.notify.config import Connectors, parse_connectors
from itsmd.notify.connector import SinkKind, installed_kinds
from itsmd.yamlsource import (
    Finding,
    Findings,
    LoadError,
    LocDict,
    LocList,
    check_keys,
    convert,
    describe,
    expect_list,
    expect_mapping,
    get_bool,
    get_str,
    get_str_list,
    join,
    load_yaml,
)

DEFAULT_LISTEN = "127.0.0.1:9877"
DEFAULT_DATABASE = "sqlite+aiosqlite:///itsmd.db"
# The databases the store opens (store/engine.py).
SQLITE_URL = "sqlite+aiosqlite:///PATH"
POSTGRES_URL = "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB"
TOP_KEYS = (
    "listen",
    "external_url",
    "database",
    "rules",
    "watch_rules",
    "auth",
    "limits",
    "sla",
    "storage",
    "connectors",
    "routes",
    "retention",
)

TOKEN_KEYS = ("name", "role", "secret_env", "secret_file")
LIMIT_KEYS = (
    "max_body",
    "max_alerts",
    "read_timeout",
    "max_connections_per_client",
    "max_auth_failures",
)
# The shortest secret a token may have: shorter ones can be guessed.
MIN_SECRET_LENGTH = 16
# The shortest limits.read_timeout: a shorter one cuts off ordinary clients.
MIN_READ_TIMEOUT = timedelta(seconds=1)
STORAGE_KEYS = ("busy_timeout", "sqlite_synchronous", "ingest_process")
RETENTION_KEYS = ("incidents", "notifications")
# The shortest retention: shorter would delete what the reopen window and the
# delivery worker may still need.
MIN_RETENTION = timedelta(days=1)
SLA_TARGET_KEYS = ("respond", "resolve", "business_hours")
BUSINESS_HOURS_KEYS = ("timezone", "days", "hours", "holidays")
# Every nested section and its keys (tests check each one is in docs/configuration.md).
SECTION_KEYS = {
    "auth": ("tokens",),
    "auth.tokens[]": TOKEN_KEYS,
    "limits": LIMIT_KEYS,
    "storage": STORAGE_KEYS,
    "retention": RETENTION_KEYS,
    "sla.P1": SLA_TARGET_KEYS,
    "sla.business_hours": BUSINESS_HOURS_KEYS,
}


class Role(StrEnum):
    READ = "read"
    RESPOND = "respond"
    INGEST = "ingest"
    ADMIN = "admin"


ROLES = ", ".join(Role)


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: Role
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long history is kept (see docs/operations.md, Retention)."""

    incidents: timedelta = timedelta(days=400)  # since resolution, with alerts and timeline
    notifications: timedelta = timedelta(days=30)  # delivered, dead or cancelled outbox rows


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    database: str = DEFAULT_DATABASE
    rules: tuple[str, ...] = ()
    tokens: tuple[Token, ...] = ()
    max_body: int = 1024 * 1024
    max_alerts: int = 1000
    # A connection must deliver each request's head within this long of opening or of
    # its previous answer, and a body is read within this long.
    read_timeout: timedelta = timedelta(seconds=10)
    max_connections_per_client: int = 64  # open connections from one address
    max_auth_failures: int = 10  # wrong tokens from one address in a minute; 0: no limit
    sla: Mapping[Priority, SlaTarget] = field(default_factory=dict)
    busy_timeout: timedelta = timedelta(seconds=3)
    sqlite_synchronous: str = "NORMAL"
    # SQLite: ingest batches run in a process of their own (runtime/ingestproc.py).
    ingest_process: bool = True
    config_file: str | None = None
    watch_rules: timedelta | None = None  # how often to look for changed rule files
    external_url: str | None = None  # where humans reach this daemon (links in notifications)
    connectors: Connectors = field(default_factory=Connectors)
    retention: Retention = field(default_factory=Retention)

    @property
    def base_url(self) -> str:
        if self.external_url:
            return self.external_url
        host, port = self.host_port
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)

    @property
    def loopback_only(self) -> bool:
        host = self.host_port[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`; an IPv6 address in brackets (`[::1]:9877`), as in a URL."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    if host.startswith("["):
        host = host[1:-1] if host.endswith("]") else ""
        if not host or "[" in host or "]" in host:
            raise ValueError(f"expected HOST:PORT with an IPv6 host in brackets, got {listen!r}")
    elif "[" in host or "]" in host or ":" in host:
        raise ValueError(
            f"expected HOST:PORT, got {listen!r} (an IPv6 host goes in brackets: [::1]:9877)"
        )
    return host or "0.0.0.0", int(port)  # noqa: S104 - empty host means all


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values from the command line (they win over everything)."""

    listen: str | None = None
    database: str | None = None
    rules: str | None = None


def load_settings(
    path: str | Path | None,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The config file with the environment and flags over it; every error of the file
    and of the values from the command line or environment is raised at once."""
    settings, errors, _ = _load(path, overrides, env)
    if errors:
        raise LoadError(errors)
    return settings


def load_config(
    path: str | Path | None,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, RuleSet]:
    """The settings and the rules they name, validated together (what `itsmd config
    check` and `itsmd run` accept): every error of the config file, of the command line
    and environment, of the rule files, and between them, raised at once."""
    settings, errors, declared = _load(path, overrides, env)
    rules = RuleSet()
    try:
        rules = load_rules(rule_files(settings.rules))
    except LoadError as exc:
        errors += exc.findings
    else:
        if not declared:  # an invalid connectors.prometheus is reported already
            errors += _checks_without_prometheus(settings, rules)
    if errors:
        raise LoadError(errors)
    return settings, rules


def _load(
    path: str | Path | None, overrides: Overrides, env: Mapping[str, str] | None
) -> tuple[Settings, list[Finding], bool]:
    """The settings (with defaults where a value was bad), every error found, and
    whether the file declares connectors.prometheus."""
    env = os.environ if env is None else env
    settings, errors, declared = Settings(), [], False
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LoadError(
                [Finding(str(path), 0, f"cannot read config: {exc.strerror}")]
            ) from None
        settings, findings, top = _parse(text, str(path), env, None)
        errors = sorted(findings.errors, key=lambda p: p.line)
        connectors = top.get("connectors")
        declared = isinstance(connectors, LocDict) and connectors.get("prometheus") is not None
    listen = overrides.listen or env.get("ITSMD_LISTEN")
    database = overrides.database or env.get("ITSMD_DB")
    rules = overrides.rules or env.get("ITSMD_RULES")
    findings = Findings("command line or environment")
    if listen:
        try:
            split_listen(listen)
        except ValueError as exc:
            findings.error(0, "listen", str(exc))
    if database:
        problem = database_problem(database)
        if problem is not None:
            findings.error(0, "database", problem)
    settings = replace(
        settings,
        listen=listen or settings.listen,
        database=database or settings.database,
        rules=(rules,) if rules else settings.rules,
    )
    return settings, errors + findings.errors, declared


def _checks_without_prometheus(settings: Settings, rules: RuleSet) -> list[Finding]:
    """A prometheus check with no Prometheus to ask would fail at every run."""
    if settings.connectors.prometheus is not None:
        return []
    where = settings.config_file or "the config (no config file given)"
    out = []
    for check in rules.checks:
        if check.type is CheckType.PROMETHEUS:
            index = [c for c in rules.checks if c.file == check.file].index(check)
            message = (
                f"checks[{index}] ({check.name}): a prometheus check needs "
                f"connectors.prometheus (the Prometheus to query) in {where}, which has none"
            )
            out.append(Finding(check.file, check.line, message))
    return out


def parse_config(
    text: str,
    filename: str,
    env: Mapping[str, str],
    kinds: Mapping[str, SinkKind] | None = None,
) -> Settings:
    settings, findings, _ = _parse(text, filename, env, kinds)
    findings.raise_if_any()
    return settings


def _parse(
    text: str,
    filename: str,
    env: Mapping[str, str],
    kinds: Mapping[str, SinkKind] | None,
) -> tuple[Settings, Findings, LocDict]:
    """The settings, with defaults where a value is bad, and every finding; only a YAML
    syntax error (which hides the rest of the file) raises."""
    findings = Findings(filename)
    document = load_yaml(text, filename)
    top = expect_mapping(
        findings, LocDict() if document is None else document, getattr(document, "line", 1), ""
    )
    if top is None:
        return Settings(config_file=filename), findings, LocDict()
    check_keys(findings, top, TOP_KEYS, "")
    base = Path(filename).parent
    listen = get_str(findings, top, "listen", "")
    listen = DEFAULT_LISTEN if listen is None else listen
    try:
        split_listen(listen)
    except ValueError as exc:
        findings.error(top.line_of("listen"), "listen", str(exc))
    limits = _limits(findings, top)
    busy_timeout, synchronous, ingest_process = _storage(findings, top)
    settings = Settings(
        listen=listen,
        database=_database(findings, top),
        rules=_rules(findings, top, base),
        tokens=_tokens(findings, top, env, base),
        sla=_sla(findings, top),
        max_body=limits.max_body,
        max_alerts=limits.max_alerts,
        read_timeout=limits.read_timeout,
        max_connections_per_client=limits.max_connections_per_client,
        max_auth_failures=limits.max_auth_failures,
        busy_timeout=busy_timeout,
        sqlite_synchronous=synchronous,
        ingest_process=ingest_process,
        config_file=filename,
        watch_rules=_watch(findings, top),
        external_url=_external_url(findings, top),
        connectors=parse_connectors(findings, top, env, base, kinds or installed_kinds),
        retention=_retention(findings, top),
    )
    return settings, findings, top


def _external_url(findings: Findings, top: LocDict) -> str | None:
    url = get_str(findings, top, "external_url", "")
    if url is not None and not url.startswith(("http://", "https://")):
        findings.error(top.line_of("external_url"), "external_url", "expected an http(s):// URL")
    return url.rstrip("/") if url else None


def _database(findings: Findings, top: LocDict) -> str:
    database = get_str(findings, top, "database", "")
    if database == "":
        findings.error(top.line_of("database"), "database", "must not be empty")
    elif database is not None:
        problem = database_problem(database)
        if problem is not None:
            findings.error(top.line_of("database"), "database", problem)
            return DEFAULT_DATABASE
    return database or DEFAULT_DATABASE


def database_problem(url: str) -> str | None:
    """Why the store cannot open `url`, or None. Only the scheme is ever shown: the rest
    may hold a password."""
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite+aiosqlite" and sep:
        path = rest.removeprefix("/")
        if not rest.startswith("/") or path in ("", ":memory:"):
            return (
                f"expected a database file: {SQLITE_URL} (relative to the working "
                "directory; four slashes for an absolute path)"
            )
        return None
    if scheme == "postgresql+asyncpg" and sep:
        return None
    got = f"a {scheme}:// URL" if sep else "no URL (no scheme://)"
    hint = ""
    if scheme in ("sqlite", "sqlite3") or scheme.startswith("sqlite+"):
        hint = " (write sqlite+aiosqlite://)"
    elif scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        hint = " (write postgresql+asyncpg://)"
    return f"expected {SQLITE_URL} or {POSTGRES_URL}, got {got}{hint}"


def _rules(findings: Findings, top: LocDict, base: Path) -> tuple[str, ...]:
    value = top.get("rules")
    if value is None:
        return ()
    items = value if isinstance(value, LocList) else [value]
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            listed = isinstance(value, LocList)
            findings.error(
                value.line_of(index) if listed else top.line_of("rules"),
                join("rules", index) if listed else "rules",
                "expected a path or a list of paths",
            )
            continue
        out.append(str(base / item) if not Path(item).is_absolute() else item)
    return tuple(out)


def _tokens(
    findings: Findings, top: LocDict, env: Mapping[str, str], base: Path
) -> tuple[Token, ...]:
    auth = expect_mapping(findings, top.get("auth", LocDict()), top.line_of("auth"), "auth")
    if auth is None:
        return ()
    check_keys(findings, auth, SECTION_KEYS["auth"], "auth")
    items = expect_list(
        findings, auth.get("tokens", LocList()), auth.line_of("tokens"), "auth.tokens"
    )
    tokens: list[Token] = []
    for index, item in enumerate(items or []):
        path = join("auth.tokens", index)
        m = expect_mapping(findings, item, items.line_of(index) if items else 0, path)
        if m is None:
            continue
        inline = "secret" in m
        check_keys(findings, m, TOKEN_KEYS, path, ignore=("secret",))
        if inline:
            findings.error(
                m.line_of("secret"),
                join(path, "secret"),
                "secrets are never inline: use secret_env or secret_file",
            )
        name = get_str(findings, m, "name", path)
        role = convert(findings, m, "role", path, None, _role)
        secret = None if inline else _secret(findings, m, path, env, base)
        for key in ("name", "role"):
            if key not in m:
                choices = f" (one of {ROLES})" if key == "role" else ""
                findings.error(m.line, path, f"missing {key!r}{choices}")
        if "name" in m and m["name"] in (None, ""):
            findings.error(m.line_of("name"), join(path, "name"), "must not be empty")
        if name and role is not None and secret is not None:
            if any(t.name == name for t in tokens):
                findings.error(m.line, path, f"token name {name!r} is used twice")
            tokens.append(Token(name, role, secret))
    return tuple(tokens)


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValueError(f"expected one of {ROLES}, got {text!r}") from None


def _secret(
    findings: Findings, m: LocDict, path: str, env: Mapping[str, str], base: Path
) -> str | None:
    var, file = get_str(findings, m, "secret_env", path), get_str(findings, m, "secret_file", path)
    if (var is None) == (file is None):
        findings.error(m.line, path, "give exactly one of secret_env and secret_file")
        return None
    if var is not None:
        value = env.get(var)
        if not value:
            findings.error(
                m.line_of("secret_env"),
                join(path, "secret_env"),
                f"environment variable {var} is not set or empty",
            )
            return None
        return _long_enough(findings, m.line_of("secret_env"), path, var, value)
    assert file is not None
    try:
        value = (base / file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        findings.error(
            m.line_of("secret_file"),
            join(path, "secret_file"),
            f"cannot read {file}: {exc.strerror}",
        )
        return None
    if not value:
        findings.error(m.line_of("secret_file"), join(path, "secret_file"), f"{file} is empty")
        return None
    return _long_enough(findings, m.line_of("secret_file"), path, file, value)


def _long_enough(findings: Findings, line: int, path: str, source: str, secret: str) -> str | None:
    """The secret, or None (and an error naming its length, never the secret) when it is
    short enough to guess."""
    if len(secret) < MIN_SECRET_LENGTH:
        findings.error(
            line,
            path,
            f"secret from {source} is {len(secret)} characters; use {MIN_SECRET_LENGTH} or more",
        )
        return None
    return secret


@dataclass(frozen=True, slots=True)
class _Limits:
    max_body: int
    max_alerts: int
    read_timeout: timedelta
    max_connections_per_client: int
    max_auth_failures: int


def _limits(findings: Findings, top: LocDict) -> _Limits:
    d = Settings()
    default = _Limits(
        d.max_body, d.max_alerts, d.read_timeout, d.max_connections_per_client, d.max_auth_failures
    )
    limits = expect_mapping(findings, top.get("limits", LocDict()), top.line_of("limits"), "limits")
    if limits is None:
        return default
    check_keys(findings, limits, LIMIT_KEYS, "limits")

    def number(key: str, value: int, parse: Callable[[str], int], least: int) -> int:
        got = convert(findings, limits, key, "limits", value, parse)
        if got < least:
            what = "greater than zero" if least == 1 else f"at least {least}"
            findings.error(limits.line_of(key), f"limits.{key}", f"must be {what}")
            return value
        return got

    max_body = number("max_body", d.max_body, parse_size, 1)
    max_alerts = number("max_alerts", d.max_alerts, _positive, 1)
    read_timeout = convert(
        findings, limits, "read_timeout", "limits", d.read_timeout, parse_duration
    )
    if read_timeout < MIN_READ_TIMEOUT:
        findings.error(
            limits.line_of("read_timeout"),
            "limits.read_timeout",
            f"at least {format_duration(MIN_READ_TIMEOUT)}: ordinary clients take longer",
        )
        read_timeout = d.read_timeout
    return _Limits(
        max_body=max_body,
        max_alerts=max_alerts,
        read_timeout=read_timeout,
        max_connections_per_client=number(
            "max_connections_per_client", d.max_connections_per_client, _positive, 1
        ),
        max_auth_failures=number("max_auth_failures", d.max_auth_failures, _positive, 0),
    )


def _positive(text: str) -> int:
    if not text.isdecimal():
        raise ValueError(f"expected a whole number, got {text!r}")
    return int(text)


def _watch(findings: Findings, top: LocDict) -> timedelta | None:
    every = convert(findings, top, "watch_rules", "", None, parse_duration)
    if every is not None and every < timedelta(seconds=1):
        findings.error(top.line_of("watch_rules"), "watch_rules", "at least 1s (or leave it out)")
        return None
    return every


def _storage(findings: Findings, top: LocDict) -> tuple[timedelta, str, bool]:
    """(busy_timeout, sqlite_synchronous, ingest_process)"""
    default = Settings()
    storage = expect_mapping(
        findings, top.get("storage", LocDict()), top.line_of("storage"), "storage"
    )
    if storage is None:
        return default.busy_timeout, default.sqlite_synchronous, default.ingest_process
    check_keys(findings, storage, STORAGE_KEYS, "storage")
    busy = convert(
        findings,
        storage,
        "busy_timeout",
        "storage",
        default.busy_timeout,
        parse_duration,
    )
    synchronous = convert(
        findings,
        storage,
        "sqlite_synchronous",
        "storage",
        default.sqlite_synchronous,
        _synchronous,
    )
    process = get_bool(findings, storage, "ingest_process", "storage", default.ingest_process)
    return busy, synchronous, process


def _retention(findings: Findings, top: LocDict) -> Retention:
    default = Retention()
    section = expect_mapping(
        findings, top.get("retention", LocDict()), top.line_of("retention"), "retention"
    )
    if section is None:
        return default
    check_keys(findings, section, RETENTION_KEYS, "retention")
    kept: dict[str, timedelta] = {}
    for key in RETENTION_KEYS:
        value = convert(findings, section, key, "retention", getattr(default, key), parse_duration)
        if value < MIN_RETENTION:
            findings.error(
                section.line_of(key),
                f"retention.{key}",
                f"at least {format_duration(MIN_RETENTION)}, got {format_duration(value)}",
            )
            value = getattr(default, key)
        kept[key] = value
    return Retention(**kept)


def _synchronous(text: str) -> str:
    if text.upper() not in ("NORMAL", "FULL"):
        raise ValueError(f"expected normal or full, got {text!r}")
    return text.upper()


def _sla(findings: Findings, top: LocDict) -> dict[Priority, SlaTarget]:
    sla = expect_mapping(findings, top.get("sla", LocDict()), top.line_of("sla"), "sla")
    if sla is None:
        return {}
    hours = _business_hours(findings, sla) if "business_hours" in sla else None
    out: dict[Priority, SlaTarget] = {}
    for key, value in sla.items():
        path = join("sla", key)
        if key == "business_hours":
            continue
        try:
            priority = Priority(str(key))
        except ValueError:
            findings.error(sla.line_of(key), path, "expected a priority P1..P5 or business_hours")
            continue
        m = expect_mapping(findings, value, sla.line_of(key), path)
        if m is None:
            continue
        check_keys(findings, m, SLA_TARGET_KEYS, path)
        counted = m.get("business_hours", False)
        if not isinstance(counted, bool):
            findings.error(
                m.line_of("business_hours"),
                join(path, "business_hours"),
                f"expected true or false, got {describe(counted)}",
            )
        elif counted and "business_hours" not in sla:
            findings.error(
                m.line_of("business_hours"),
                join(path, "business_hours"),
                "needs sla.business_hours (timezone, days, hours)",
            )
        out[priority] = SlaTarget(
            respond=convert(findings, m, "respond", path, None, parse_duration),
            resolve=convert(findings, m, "resolve", path, None, parse_duration),
            hours=hours if counted is True else None,
        )
    return out


def _business_hours(findings: Findings, sla: LocDict) -> BusinessHours | None:
    path = "sla.business_hours"
    m = expect_mapping(findings, sla["business_hours"], sla.line_of("business_hours"), path)
    if m is None:
        return None
    check_keys(findings, m, BUSINESS_HOURS_KEYS, path)
    for required in ("timezone", "hours"):
        if required not in m:
            findings.error(m.line, path, f"missing {required!r}")
    zone = convert(findings, m, "timezone", path, None, parse_zone)
    span = convert(findings, m, "hours", path, None, parse_span)
    days = frozenset(range(5))  # Monday to Friday
    if "days" in m:
        names = get_str_list(findings, m, "days", path)
        try:
            days = parse_days(names)
        except ValueError as exc:
            findings.error(m.line_of("days"), join(path, "days"), str(exc))
    holidays: set[date] = set()
    listed = m.get("holidays", LocList())
    for item in expect_list(findings, listed, m.line_of("holidays"), join(path, "holidays")) or ():
        try:  # YAML reads an unquoted 2026-12-25 as a date already
            holidays.add(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            findings.error(
                m.line_of("holidays"),
                join(path, "holidays"),
                f"expected dates YYYY-MM-DD, got {item!r}",
            )
    if zone is None or span is None:
        return None
    return BusinessHours(zone, days, span[0], span[1], frozenset(holidays))
