"""Tests for itsmd.config: the config file, environment and flags, with `file:line:` errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.config import (
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    TOP_KEYS,
    Overrides,
    Role,
    Settings,
    Token,
    load_config,
    load_settings,
    parse_config,
    split_listen,
)
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from itsmd.yamlsource import LoadError

F = "/etc/itsmd/itsmd.yml"
ALLOWED_TOP = ", ".join(TOP_KEYS)


def errors(text: str, env: dict[str, str] | None = None, filename: str = F) -> list[str]:
    with pytest.raises(LoadError) as info:
        parse_config(text, filename, env or {})
    return [str(p) for p in info.value.findings]


def parse(text: str, env: dict[str, str] | None = None, filename: str = F) -> Settings:
    return parse_config(text, filename, env or {})


# --- defaults and a full file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("listen", "127.0.0.1:9877"),
        ("database", "sqlite+aiosqlite:///itsmd.db"),
        ("rules", ()),  # no rules: every alert is stored unrouted
        ("tokens", ()),  # no tokens: loopback only
        ("max_body", 1024 * 1024),
        ("max_alerts", 1000),
        ("sla", {}),
        ("busy_timeout", timedelta(seconds=3)),
        ("sqlite_synchronous", "NORMAL"),
        ("ingest_process", True),
    ],
)
@pytest.mark.parametrize("text", ["", "# nothing\n", "{}\n"], ids=["empty", "comment", "empty-map"])
def test_defaults_listen_loopback_9877_sqlite_no_rules_no_tokens_1mib_1000_alerts_3s_normal(
    text: str, field: str, expected: Any
) -> None:
    settings = parse(text)
    assert getattr(settings, field) == expected
    assert getattr(Settings(), field) == expected
    assert settings.config_file == F


def test_full_config(tmp_path: Path) -> None:
    (tmp_path / "oncall.token").write_text("  s3cret-file-0123456789 \n", encoding="utf-8")
    text = """\
listen: 0.0.0.0:8080
database: postgresql+asyncpg://itsmd@db/itsmd
rules: [rules/, /abs/extra.yml]
auth:
  tokens:
    - {name: alertmanager, role: ingest, secret_env: ITSMD_AM_TOKEN}
    - name: oncall
      role: respond
      secret_file: oncall.token
limits:
  max_body: 512KiB
  max_alerts: 50
sla:
  P1: {respond: 15m, resolve: 4h}
  P3: {resolve: 3d}
storage:
  busy_timeout: 500ms
  sqlite_synchronous: full
  ingest_process: false
connectors: {}
routes: []
"""
    config = tmp_path / "itsmd.yml"
    settings = parse(text, {"ITSMD_AM_TOKEN": "s3cret-env-0123456789"}, str(config))
    assert settings == Settings(
        listen="0.0.0.0:8080",
        database="postgresql+asyncpg://itsmd@db/itsmd",
        rules=(str(tmp_path / "rules"), "/abs/extra.yml"),
        tokens=(
            Token("alertmanager", Role.INGEST, "s3cret-env-0123456789"),
            Token("oncall", Role.RESPOND, "s3cret-file-0123456789"),
        ),
        max_body=512 * 1024,
        max_alerts=50,
        sla={
            Priority.P1: SlaTarget(timedelta(minutes=15), timedelta(hours=4)),
            Priority.P3: SlaTarget(None, timedelta(days=3)),
        },
        busy_timeout=timedelta(milliseconds=500),
        sqlite_synchronous="FULL",
        ingest_process=False,
        config_file=str(config),
    )


def test_secrets_do_not_appear_in_repr() -> None:
    settings = parse(
        "auth:\n  tokens:\n    - {name: a, role: admin, secret_env: T}\n",
        {"T": "hunter2-hunter2-hunter2"},
    )
    assert "hunter2" not in repr(settings)
    assert settings.tokens[0].secret == "hunter2-hunter2-hunter2"


# --- rules paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("rules/", ("/etc/itsmd/rules",)),
        ("./rules", ("/etc/itsmd/rules",)),
        ("../shared/rules", ("/etc/itsmd/../shared/rules",)),
        ("/srv/rules", ("/srv/rules",)),
        ("[a.yml, /b.yml]", ("/etc/itsmd/a.yml", "/b.yml")),
        ("[]", ()),
    ],
)
def test_relative_rules_are_resolved_against_the_config_files_directory(
    value: str, expected: tuple[str, ...]
) -> None:
    assert parse(f"rules: {value}\n").rules == expected


def test_rules_relative_to_a_config_in_the_working_directory() -> None:
    assert parse("rules: rules/\n", filename="itsmd.yml").rules == ("rules",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: 5\n", ["1: rules: expected a path or a list of paths"]),
        ("rules: ''\n", ["1: rules: expected a path or a list of paths"]),
        ("rules: {a: b}\n", ["1: rules: expected a path or a list of paths"]),
        (
            "rules:\n  - ok/\n  - 3\n  - [x]\n",
            [
                "3: rules[1]: expected a path or a list of paths",
                "4: rules[2]: expected a path or a list of paths",
            ],
        ),
    ],
)
def test_bad_rules(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


# --- listen --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host_port", "loopback"),
    [
        ("127.0.0.1:9877", ("127.0.0.1", 9877), True),
        ("127.0.0.2:1", ("127.0.0.2", 1), True),
        ("localhost:80", ("localhost", 80), True),
        ("[::1]:9877", ("::1", 9877), True),
        ("0.0.0.0:65535", ("0.0.0.0", 65535), False),
        (":9877", ("0.0.0.0", 9877), False),  # an empty host means every address
        ("[::]:9877", ("::", 9877), False),
        ("10.1.2.3:9877", ("10.1.2.3", 9877), False),
        ("itsmd.example.com:443", ("itsmd.example.com", 443), False),
    ],
)
def test_listen(listen: str, host_port: tuple[str, int], loopback: bool) -> None:
    settings = parse(f"listen: '{listen}'\n")
    assert settings.listen == listen
    assert settings.host_port == host_port
    assert settings.loopback_only is loopback


@pytest.mark.parametrize(
    "listen",
    [
        "''",
        "'9877'",
        "9877",
        "'localhost'",
        "'host:0'",
        "'host:65536'",
        "'host:http'",
        "'host:-1'",
        "'host:'",
        "'127.0.0.1:98 77'",
    ],
)
def test_bad_listen(listen: str) -> None:
    value = str(listen).strip("'")
    assert errors(f"# config\nlisten: {listen}\n") == [
        f"{F}:2: listen: expected HOST:PORT, got {value!r}"
    ]


def test_listen_must_be_a_string() -> None:
    assert errors("listen: [a]\n") == [f"{F}:1: listen: expected a string, got a list"]


def test_split_listen() -> None:
    assert split_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match=r"^expected HOST:PORT, got 'x'$"):
        split_listen("x")


@pytest.mark.parametrize("listen", ["[::1:9877", "::1]:9877", "[]:9877", "[[::1]]:9877"])
def test_an_ipv6_host_needs_its_brackets_whole(listen: str) -> None:
    with pytest.raises(ValueError, match="IPv6 host"):
        split_listen(listen)


def test_an_ipv6_host_without_brackets_is_refused_with_the_way_to_write_it() -> None:
    with pytest.raises(ValueError, match=r"an IPv6 host goes in brackets: \[::1\]:9877"):
        split_listen("::1:9877")


# --- database ------------------------------------------------------------------------------------


ACCEPTED = (
    "expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB, got"
)
NO_FILE = (
    "expected a database file: sqlite+aiosqlite:///PATH (relative to the working directory; "
    "four slashes for an absolute path)"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("database: ''\n", [f"{F}:1: database: must not be empty"]),
        ("database: [a]\n", [f"{F}:1: database: expected a string, got a list"]),
        ("database: mysql://x\n", [f"{F}:1: database: {ACCEPTED} a mysql:// URL"]),
        (
            "database: 'postgresql://itsmd:hunter2@db/itsmd'\n",
            [f"{F}:1: database: {ACCEPTED} a postgresql:// URL (write postgresql+asyncpg://)"],
        ),
        (
            "database: sqlite:///itsmd.db\n",
            [f"{F}:1: database: {ACCEPTED} a sqlite:// URL (write sqlite+aiosqlite://)"],
        ),
        ("database: itsmd.db\n", [f"{F}:1: database: {ACCEPTED} no URL (no scheme://)"]),
        ("database: 'sqlite+aiosqlite://'\n", [f"{F}:1: database: {NO_FILE}"]),
        ("database: 'sqlite+aiosqlite:///:memory:'\n", [f"{F}:1: database: {NO_FILE}"]),
    ],
)
def test_bad_database(text: str, expected: list[str]) -> None:
    assert errors(text) == expected
    assert "hunter2" not in str(expected)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///itsmd.db",
        "sqlite+aiosqlite:////var/lib/itsmd/itsmd.db",
        "postgresql+asyncpg://itsmd:secret@db:5432/itsmd",
        "postgresql+asyncpg:///itsmd",
    ],
)
def test_databases_the_store_opens(url: str) -> None:
    assert parse(f"database: '{url}'\n").database == url


def test_a_database_from_flags_or_env_is_validated_with_the_file() -> None:
    with pytest.raises(LoadError) as info:
        load_settings(None, Overrides(database="mysql://x"), {"ITSMD_LISTEN": "nope"})
    assert [str(p) for p in info.value.findings] == [
        "command line or environment:0: listen: expected HOST:PORT, got 'nope'",
        f"command line or environment:0: database: {ACCEPTED} a mysql:// URL",
    ]


# --- tokens --------------------------------------------------------------------------------------


LONG_SECRET = "x" * 16  # the shortest secret a token may have


def tokens_text(*tokens: str) -> str:
    return "auth:\n  tokens:\n" + "".join(f"    - {t}\n" for t in tokens)


@pytest.mark.parametrize("role", list(Role))
def test_token_roles(role: Role) -> None:
    settings = parse(tokens_text(f"{{name: t, role: {role}, secret_env: T}}"), {"T": LONG_SECRET})
    assert settings.tokens == (Token("t", role, LONG_SECRET),)


def test_secret_file_is_read_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "am.token").write_text("abc-0123456789abcdef\n", encoding="utf-8")
    absolute = tmp_path / "abs.token"
    absolute.write_text("\tdef-0123456789abcdef", encoding="utf-8")
    text = tokens_text(
        "{name: a, role: ingest, secret_file: secrets/am.token}",
        f"{{name: b, role: read, secret_file: {absolute}}}",
    )
    settings = parse(text, filename=str(tmp_path / "itsmd.yml"))
    assert [t.secret for t in settings.tokens] == ["abc-0123456789abcdef", "def-0123456789abcdef"]


@pytest.mark.parametrize(
    ("token", "env", "expected"),
    [
        pytest.param(
            "{name: a, role: read, secret: hunter2}",
            {},
            ["3: auth.tokens[0].secret: secrets are never inline: use secret_env or secret_file"],
            id="inline-secret",
        ),
        pytest.param(
            "{name: a, role: read, secret_env: ITSMD_NOPE}",
            {},
            ["3: auth.tokens[0].secret_env: environment variable ITSMD_NOPE is not set or empty"],
            id="secret-env-unset",
        ),
        pytest.param(
            "{name: a, role: read, secret_env: ITSMD_EMPTY}",
            {"ITSMD_EMPTY": ""},
            ["3: auth.tokens[0].secret_env: environment variable ITSMD_EMPTY is not set or empty"],
            id="secret-env-empty",
        ),
        pytest.param(
            "{name: a, role: read, secret_file: missing.token}",
            {},
            ["3: auth.tokens[0].secret_file: cannot read missing.token: No such file or directory"],
            id="secret-file-missing",
        ),
        pytest.param(
            "{name: a, role: read}",
            {},
            ["3: auth.tokens[0]: give exactly one of secret_env and secret_file"],
            id="no-secret",
        ),
        pytest.param(
            "{name: a, role: read, secret_env: T, secret_file: t}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0]: give exactly one of secret_env and secret_file"],
            id="two-secrets",
        ),
        pytest.param(
            "{name: a, role: admn, secret_env: T}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0].role: expected one of read, respond, ingest, admin, got 'admn'"],
            id="bad-role",
        ),
        pytest.param(
            "{name: a, secret_env: T}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0]: missing 'role' (one of read, respond, ingest, admin)"],
            id="no-role",
        ),
        pytest.param(
            "{role: read, secret_env: T}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0]: missing 'name'"],
            id="no-name",
        ),
        pytest.param(
            "{name: '', role: read, secret_env: T}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0].name: must not be empty"],
            id="empty-name",
        ),
        pytest.param(
            "{name: [a], role: read, secret_env: T}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0].name: expected a string, got a list"],
            id="name-not-a-string",
        ),
        pytest.param(
            "{name: a, role: read, secret_env: T, scope: all}",
            {"T": LONG_SECRET},
            ["3: auth.tokens[0].scope: unknown key (allowed: name, role, secret_env, secret_file)"],
            id="unknown-key",
        ),
        pytest.param(
            "{name: a, role: read, secret_evn: T}",
            {"T": LONG_SECRET},
            [
                "3: auth.tokens[0].secret_evn: unknown key (did you mean 'secret_env'?)",
                "3: auth.tokens[0]: give exactly one of secret_env and secret_file",
            ],
            id="typo-hint",
        ),
        pytest.param(
            "just-a-name",
            {},
            ["3: auth.tokens[0]: expected a mapping, got str 'just-a-name'"],
            id="not-a-mapping",
        ),
    ],
)
def test_bad_token(token: str, env: dict[str, str], expected: list[str]) -> None:
    assert errors(tokens_text(token), env) == [f"{F}:{e}" for e in expected]


def test_empty_secret_file(tmp_path: Path) -> None:
    (tmp_path / "blank.token").write_text(" \n", encoding="utf-8")
    text = tokens_text("{name: a, role: read, secret_file: blank.token}")
    assert errors(text, filename=str(tmp_path / "c.yml")) == [
        f"{tmp_path / 'c.yml'}:3: auth.tokens[0].secret_file: blank.token is empty"
    ]


def test_token_names_are_unique() -> None:
    text = tokens_text(
        "{name: a, role: read, secret_env: T}", "{name: a, role: admin, secret_env: T}"
    )
    assert errors(text, {"T": LONG_SECRET}) == [
        f"{F}:4: auth.tokens[1]: token name 'a' is used twice"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth: []\n", ["1: auth: expected a mapping, got a list"]),
        ("auth:\n  tokens: {}\n", ["2: auth.tokens: expected a list, got a mapping"]),
        ("auth:\n  token: []\n", ["2: auth.token: unknown key (did you mean 'tokens'?)"]),
    ],
)
def test_bad_auth(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


# --- limits, sla, storage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "max_body", "max_alerts"),
    [
        ("limits: {max_body: 1MiB}\n", 1024**2, 1000),
        ("limits: {max_body: 10MB, max_alerts: 1}\n", 10_000_000, 1),
        ("limits: {max_body: 4096}\n", 4096, 1000),
        ("limits: {max_body: 2GiB, max_alerts: '20'}\n", 2 * 1024**3, 20),
        ("limits: {}\n", 1024**2, 1000),
    ],
)
def test_limits(text: str, max_body: int, max_alerts: int) -> None:
    settings = parse(text)
    assert (settings.max_body, settings.max_alerts) == (max_body, max_alerts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "limits:\n  max_body: 1.5MiB\n",
            ["2: limits.max_body: not a size: '1.5MiB' (expected e.g. 1MiB, 512KiB, 1048576)"],
        ),
        ("limits:\n  max_body: 0\n", ["2: limits.max_body: must be greater than zero"]),
        ("limits:\n  max_alerts: 0\n", ["2: limits.max_alerts: must be greater than zero"]),
        (
            "limits:\n  max_alerts: -5\n",
            ["2: limits.max_alerts: expected a whole number, got '-5'"],
        ),
        (
            "limits:\n  max_alerts: 1e3\n",
            ["2: limits.max_alerts: expected a whole number, got '1e3'"],
        ),
        (
            "limits:\n  max_alerts:\n",
            ["2: limits.max_alerts: expected a value, got nothing (null)"],
        ),
        (
            "limits:\n  max_bdy: 1MiB\n",
            ["2: limits.max_bdy: unknown key (did you mean 'max_body'?)"],
        ),
        ("limits: 1MiB\n", ["1: limits: expected a mapping, got str '1MiB'"]),
    ],
)
def test_bad_limits(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


def test_connection_limits_have_defaults() -> None:
    settings = parse("limits: {}\n")
    assert settings.read_timeout == timedelta(seconds=10)
    assert settings.max_connections_per_client == 64
    assert settings.max_auth_failures == 10


def test_connection_limits() -> None:
    settings = parse(
        "limits:\n  read_timeout: 2s\n  max_connections_per_client: 8\n  max_auth_failures: 0\n"
    )
    assert settings.read_timeout == timedelta(seconds=2)
    assert settings.max_connections_per_client == 8
    assert settings.max_auth_failures == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "limits:\n  read_timeout: 500ms\n",
            ["2: limits.read_timeout: at least 1s: ordinary clients take longer"],
        ),
        (
            "limits:\n  read_timeout: soon\n",
            ["2: limits.read_timeout: not a duration: 'soon' (expected e.g. 90s, 15m, 1h30m, 7d)"],
        ),
        (
            "limits:\n  max_connections_per_client: 0\n",
            ["2: limits.max_connections_per_client: must be greater than zero"],
        ),
        (
            "limits:\n  max_auth_failures: -1\n",
            ["2: limits.max_auth_failures: expected a whole number, got '-1'"],
        ),
        (
            "limits:\n  read_timout: 10s\n",
            ["2: limits.read_timout: unknown key (did you mean 'read_timeout'?)"],
        ),
    ],
)
def test_bad_connection_limits(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


def test_a_secret_shorter_than_16_characters_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "short.token").write_text("  hunter2  \n", encoding="utf-8")
    text = tokens_text(
        "{name: a, role: ingest, secret_env: ITSMD_X}",
        "{name: b, role: read, secret_file: short.token}",
        "{name: c, role: read, secret_env: ITSMD_OK}",
    )
    config = str(tmp_path / "itsmd.yml")
    env = {"ITSMD_X": "abcde", "ITSMD_OK": "y" * 16}
    found = errors(text, env, config)
    assert found == [
        f"{config}:3: auth.tokens[0]: secret from ITSMD_X is 5 characters; use 16 or more",
        f"{config}:4: auth.tokens[1]: secret from short.token is 7 characters; use 16 or more",
    ]
    assert not any("abcde" in f or "hunter2" in f for f in found)


def test_a_short_secret_stops_a_start(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(tokens_text("{name: am, role: ingest, secret_env: AM}"), encoding="utf-8")
    with pytest.raises(LoadError) as raised:
        load_settings(path, Overrides(), {"AM": "x" * 15})
    assert [str(f) for f in raised.value.findings] == [
        f"{path}:3: auth.tokens[0]: secret from AM is 15 characters; use 16 or more"
    ]
    assert load_settings(path, Overrides(), {"AM": "x" * 16}).tokens[0].secret == "x" * 16


NOT_PRIORITY = "expected a priority P1..P5 or business_hours"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sla:\n  P6: {respond: 1m}\n", [f"2: sla.P6: {NOT_PRIORITY}"]),
        ("sla:\n  p1: {respond: 1m}\n", [f"2: sla.p1: {NOT_PRIORITY}"]),
        (
            "sla:\n  P3: {respond: 4h, business_hours: true}\n",
            ["2: sla.P3.business_hours: needs sla.business_hours (timezone, days, hours)"],
        ),
        (
            "sla:\n  business_hours: {timezone: Mars/Olympus, hours: '17:00-09:00',"
            " days: [sun-sat], holidays: [christmas]}\n",
            [
                "2: sla.business_hours.timezone: unknown time zone 'Mars/Olympus' "
                "(an IANA name such as Europe/Berlin)",
                "2: sla.business_hours.hours: closes before it opens: '17:00-09:00'",
                "2: sla.business_hours.days: day range 'sun-sat' runs backwards",
                "2: sla.business_hours.holidays: expected dates YYYY-MM-DD, got 'christmas'",
            ],
        ),
        (
            "sla:\n  business_hours: {days: [mon-fri]}\n",
            ["2: sla.business_hours: missing 'timezone'", "2: sla.business_hours: missing 'hours'"],
        ),
        ("sla:\n  P1: 15m\n", ["2: sla.P1: expected a mapping, got str '15m'"]),
        (
            "sla:\n  P1:\n    respond: soon\n",
            ["3: sla.P1.respond: not a duration: 'soon' (expected e.g. 90s, 15m, 1h30m, 7d)"],
        ),
        (
            "sla:\n  P1: {respond: 15m, resolv: 4h}\n",
            ["2: sla.P1.resolv: unknown key (did you mean 'resolve'?)"],
        ),
        ("sla: [P1]\n", ["1: sla: expected a mapping, got a list"]),
    ],
)
def test_bad_sla(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


@pytest.mark.parametrize(
    ("text", "busy_timeout", "synchronous"),
    [
        ("storage: {busy_timeout: 10s}\n", timedelta(seconds=10), "NORMAL"),
        ("storage: {sqlite_synchronous: FULL}\n", timedelta(seconds=3), "FULL"),
        ("storage: {sqlite_synchronous: Normal, busy_timeout: 0s}\n", timedelta(0), "NORMAL"),
    ],
)
def test_storage(text: str, busy_timeout: timedelta, synchronous: str) -> None:
    settings = parse(text)
    assert (settings.busy_timeout, settings.sqlite_synchronous) == (busy_timeout, synchronous)
    assert settings.ingest_process


def test_the_ingest_process_can_be_turned_off() -> None:
    assert not parse("storage: {ingest_process: false}\n").ingest_process


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "storage:\n  sqlite_synchronous: off\n",
            ["2: storage.sqlite_synchronous: expected normal or full, got 'False'"],
        ),
        (
            "storage:\n  sqlite_synchronous: extra\n",
            ["2: storage.sqlite_synchronous: expected normal or full, got 'extra'"],
        ),
        (
            "storage:\n  busy_timeout: 3\n",
            ["2: storage.busy_timeout: not a duration: '3' (expected e.g. 90s, 15m, 1h30m, 7d)"],
        ),
        (
            "storage:\n  ingest_process: no-thanks\n",
            ["2: storage.ingest_process: expected true or false, got str 'no-thanks'"],
        ),
        (
            "storage:\n  busy_timout: 3s\n",
            ["2: storage.busy_timout: unknown key (did you mean 'busy_timeout'?)"],
        ),
    ],
)
def test_bad_storage(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


@pytest.mark.parametrize(
    ("text", "incidents", "notifications"),
    [
        ("", timedelta(days=400), timedelta(days=30)),
        ("retention: {}\n", timedelta(days=400), timedelta(days=30)),
        ("retention: {incidents: 2y}\n", timedelta(days=730), timedelta(days=30)),
        ("retention: {incidents: 90d, notifications: 1w}\n", timedelta(days=90), timedelta(days=7)),
        ("retention: {notifications: 24h}\n", timedelta(days=400), timedelta(days=1)),
    ],
)
def test_retention(text: str, incidents: timedelta, notifications: timedelta) -> None:
    kept = parse(text).retention
    assert (kept.incidents, kept.notifications) == (incidents, notifications)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "retention:\n  incidents: 400\n",
            ["2: retention.incidents: not a duration: '400' (expected e.g. 90s, 15m, 1h30m, 7d)"],
        ),
        (
            "retention:\n  incidents: 400d\n  notifications: 12h\n",
            ["3: retention.notifications: at least 1d, got 12h"],
        ),
        (
            "retention:\n  incidents: 0\n",
            ["2: retention.incidents: at least 1d, got 0s"],
        ),
        (
            "retention:\n  alerts: 30d\n",
            ["2: retention.alerts: unknown key (allowed: incidents, notifications)"],
        ),
        ("retention: 400d\n", ["1: retention: expected a mapping, got str '400d'"]),
    ],
)
def test_bad_retention(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


# --- top level -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "lisen: 127.0.0.1:1\n",
            ["1: lisen: unknown key (did you mean 'listen'?)"],
            id="unknown-key-hint",
        ),
        pytest.param(
            "\nincidents: []\n",
            [f"2: incidents: unknown key (allowed: {ALLOWED_TOP})"],
            id="rules-section-in-the-config",
        ),
        pytest.param(
            "connectors:\n  prometheus: {url: x}\n",
            ["2: connectors.prometheus.url: expected an http:// or https:// URL"],
            id="connectors",
        ),
        pytest.param(
            "routes:\n  - name: page\n",
            ["2: routes[0].to: name at least one sink"],
            id="routes",
        ),
        pytest.param("# config\n- listen: x\n", ["2: expected a mapping, got a list"], id="list"),
        pytest.param("[]\n", ["1: expected a mapping, got a list"], id="empty-list"),
        pytest.param("false\n", ["1: expected a mapping, got bool False"], id="false"),
        pytest.param("listen\n", ["1: expected a mapping, got str 'listen'"], id="text"),
        pytest.param(
            "listen: a:1\nlisten: b:2\n",
            ["2: invalid YAML: duplicate key 'listen' (first on line 1)"],
            id="duplicate-key",
        ),
        pytest.param(
            "listen: 127.0.0.1:9877\nlimits: {max_body: 1MiB\n",
            [
                "3: invalid YAML: while parsing a flow mapping expected ',' or '}', "
                "but got '<stream end>'"
            ],
            id="yaml-syntax",
        ),
    ],
)
def test_bad_file(text: str, expected: list[str]) -> None:
    assert errors(text) == [f"{F}:{e}" for e in expected]


@pytest.mark.parametrize("text", ["connectors: {}\nroutes: []\n", "connectors:\nroutes:\n"])
def test_empty_connectors_and_routes_are_accepted(text: str) -> None:
    parse(text)


def test_all_problems_of_a_file_are_reported_together() -> None:
    text = """\
listen: 127.0.0.1:99999
limits:
  max_body: lots
sla:
  P1: {respond: 15m}
  P9: {respond: 1h}
"""
    assert errors(text) == [
        f"{F}:1: listen: expected HOST:PORT, got '127.0.0.1:99999'",
        f"{F}:3: limits.max_body: not a size: 'lots' (expected e.g. 1MiB, 512KiB, 1048576)",
        f"{F}:6: sla.P9: expected a priority P1..P5 or business_hours",
    ]


def test_problems_across_sections_are_reported_together() -> None:
    text = """\
databse: x
auth:
  tokens:
    - {name: a, role: read, secret: inline}
    - {name: b, role: read, secret_env: UNSET}
storage: {sqlite_synchronous: fast}
routes: [x]
"""
    assert errors(text) == [
        f"{F}:1: databse: unknown key (did you mean 'database'?)",
        f"{F}:4: auth.tokens[0].secret: secrets are never inline: use secret_env or secret_file",
        f"{F}:5: auth.tokens[1].secret_env: environment variable UNSET is not set or empty",
        f"{F}:6: storage.sqlite_synchronous: expected normal or full, got 'fast'",
        f"{F}:7: routes[0]: expected a mapping, got str 'x'",
    ]


# --- load_settings: precedence flags > environment > file > defaults -----------------------------


FILE = "listen: 127.0.0.1:1111\ndatabase: sqlite+aiosqlite:///file.db\nrules: file-rules/\n"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "itsmd.yml"
    path.write_text(FILE, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("use_file", "env", "flags", "expected"),
    [
        pytest.param(False, {}, Overrides(), (DEFAULT_LISTEN, DEFAULT_DATABASE, ()), id="defaults"),
        pytest.param(
            True,
            {},
            Overrides(),
            ("127.0.0.1:1111", "sqlite+aiosqlite:///file.db", ("{dir}/file-rules",)),
            id="file-beats-defaults",
        ),
        pytest.param(
            True,
            {
                "ITSMD_LISTEN": "127.0.0.1:2222",
                "ITSMD_DB": "sqlite+aiosqlite:///env.db",
                "ITSMD_RULES": "env-rules",
            },
            Overrides(),
            ("127.0.0.1:2222", "sqlite+aiosqlite:///env.db", ("env-rules",)),
            id="env-beats-file",
        ),
        pytest.param(
            False,
            {
                "ITSMD_LISTEN": "127.0.0.1:2222",
                "ITSMD_DB": "sqlite+aiosqlite:///env.db",
                "ITSMD_RULES": "env-rules",
            },
            Overrides(),
            ("127.0.0.1:2222", "sqlite+aiosqlite:///env.db", ("env-rules",)),
            id="env-beats-defaults",
        ),
        pytest.param(
            True,
            {
                "ITSMD_LISTEN": "127.0.0.1:2222",
                "ITSMD_DB": "sqlite+aiosqlite:///env.db",
                "ITSMD_RULES": "env-rules",
            },
            Overrides("127.0.0.1:3333", "sqlite+aiosqlite:///flag.db", "flag-rules"),
            ("127.0.0.1:3333", "sqlite+aiosqlite:///flag.db", ("flag-rules",)),
            id="flags-beat-env",
        ),
        pytest.param(
            True,
            {},
            Overrides(listen="127.0.0.1:3333"),
            ("127.0.0.1:3333", "sqlite+aiosqlite:///file.db", ("{dir}/file-rules",)),
            id="one-flag-the-rest-from-the-file",
        ),
        pytest.param(
            True,
            {"ITSMD_DB": "sqlite+aiosqlite:///env.db"},
            Overrides(rules="flag-rules"),
            ("127.0.0.1:1111", "sqlite+aiosqlite:///env.db", ("flag-rules",)),
            id="mixed",
        ),
        pytest.param(
            True,
            {"ITSMD_LISTEN": "", "ITSMD_DB": "", "ITSMD_RULES": ""},
            Overrides(),
            ("127.0.0.1:1111", "sqlite+aiosqlite:///file.db", ("{dir}/file-rules",)),
            id="empty-env-is-unset",
        ),
    ],
)
def test_precedence(
    config_file: Path,
    use_file: bool,
    env: dict[str, str],
    flags: Overrides,
    expected: tuple[str, str, tuple[str, ...]],
) -> None:
    settings = load_settings(config_file if use_file else None, flags, env)
    listen, database, rules = expected
    rules = tuple(r.format(dir=config_file.parent) for r in rules)
    assert (settings.listen, settings.database, settings.rules) == (listen, database, rules)
    assert settings.config_file == (str(config_file) if use_file else None)


def test_flag_and_env_rules_are_not_resolved_against_the_config_file(config_file: Path) -> None:
    settings = load_settings(config_file, Overrides(rules="./mine"), {})
    assert settings.rules == ("./mine",)


def test_the_environment_defaults_to_os_environ(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSMD_LISTEN", "127.0.0.1:4444")
    assert load_settings(config_file).listen == "127.0.0.1:4444"


@pytest.mark.parametrize(
    ("env", "flags", "value"),
    [
        ({"ITSMD_LISTEN": "nope"}, Overrides(), "nope"),
        ({}, Overrides(listen="1.2.3.4"), "1.2.3.4"),
        ({"ITSMD_LISTEN": "127.0.0.1:1"}, Overrides(listen="x:99999"), "x:99999"),
    ],
)
def test_listen_from_flags_or_env_is_validated(
    env: dict[str, str], flags: Overrides, value: str
) -> None:
    with pytest.raises(LoadError) as info:
        load_settings(None, flags, env)
    assert [str(p) for p in info.value.findings] == [
        f"command line or environment:0: listen: expected HOST:PORT, got {value!r}"
    ]


def test_errors_of_the_file_and_of_flags_or_env_come_together(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("listen: bad\nlimits: {max_alerts: 0}\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_settings(path, Overrides(database="sqlite:///x.db"), {})
    assert [str(p) for p in info.value.findings] == [
        f"{path}:1: listen: expected HOST:PORT, got 'bad'",
        f"{path}:2: limits.max_alerts: must be greater than zero",
        f"command line or environment:0: database: {ACCEPTED} a sqlite:// URL "
        "(write sqlite+aiosqlite://)",
    ]


def test_a_valid_flag_does_not_hide_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("listen: bad\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_settings(path, Overrides(listen="127.0.0.1:1"), {})
    assert [str(p) for p in info.value.findings] == [
        f"{path}:1: listen: expected HOST:PORT, got 'bad'"
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(LoadError) as info:
        load_settings(path, Overrides(), {})
    assert [str(p) for p in info.value.findings] == [
        f"{path}:0: cannot read config: No such file or directory"
    ]


def test_secret_env_is_read_from_the_given_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(tokens_text("{name: am, role: ingest, secret_env: AM}"), encoding="utf-8")
    settings = load_settings(path, Overrides(), {"AM": "tok-0123456789abcdef"})
    assert settings.tokens == (Token("am", Role.INGEST, "tok-0123456789abcdef"),)


# --- the config with the rules it names: `itsmd config check`, `itsmd run` -----------------------


PROMETHEUS_CHECK = """\
checks:
  - name: disk
    type: disk
    path: /
    critical: {below: 0.05}
  - name: queue
    type: prometheus
    query: sum(queue_depth)
    warn: {above: 100}
"""


def _config_dir(tmp_path: Path, config: str, rules: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "checks.yml").write_text(rules, encoding="utf-8")
    path = tmp_path / "itsmd.yml"
    path.write_text("rules: rules/\n" + config, encoding="utf-8")
    return path


def _load_errors(path: Path | None, overrides: Overrides | None = None) -> list[str]:
    with pytest.raises(LoadError) as info:
        load_config(path, overrides or Overrides(), {})
    return [str(p) for p in info.value.findings]


def test_every_error_of_the_config_and_its_rules_comes_at_once(tmp_path: Path) -> None:
    config = """\
database: mysql://x
auth:
  tokens:
    - {name: am, role: admn, secret_env: AM}
"""
    rules = """\
incidents:
  - name: broken
    match: '{a="b"'
checks:
  - name: queue
    type: prometheus
    query: sum(rate(jobs_total[5m])) by (queue
    warn: {above: 1}
"""
    path = _config_dir(tmp_path, config, rules)
    rules_file = tmp_path / "rules" / "checks.yml"

    assert _load_errors(path, Overrides(listen="nope")) == [
        f"{path}:2: database: {ACCEPTED} a mysql:// URL",
        f"{path}:5: auth.tokens[0].role: expected one of read, respond, ingest, admin, got 'admn'",
        f"{path}:5: auth.tokens[0].secret_env: environment variable AM is not set or empty",
        "command line or environment:0: listen: expected HOST:PORT, got 'nope'",
        f"{rules_file}:3: incidents[0] (broken).match: invalid matcher: position 6: expected "
        "',' or '}' after matcher 'a=\"b\"', got end of input",
        f"{rules_file}:7: checks[0] (queue).query: unclosed left parenthesis",
    ]


def test_a_prometheus_check_needs_connectors_prometheus(tmp_path: Path) -> None:
    path = _config_dir(tmp_path, "", PROMETHEUS_CHECK)

    assert _load_errors(path) == [
        f"{tmp_path / 'rules' / 'checks.yml'}:6: checks[1] (queue): a prometheus check needs "
        f"connectors.prometheus (the Prometheus to query) in {path}, which has none"
    ]


def test_without_a_config_file_the_rules_of_the_flags_are_checked_the_same(
    tmp_path: Path,
) -> None:
    (tmp_path / "checks.yml").write_text(PROMETHEUS_CHECK, encoding="utf-8")

    assert _load_errors(None, Overrides(rules=str(tmp_path / "checks.yml"))) == [
        f"{tmp_path / 'checks.yml'}:6: checks[1] (queue): a prometheus check needs "
        "connectors.prometheus (the Prometheus to query) in the config (no config file "
        "given), which has none"
    ]


def test_a_prometheus_check_with_connectors_prometheus_loads(tmp_path: Path) -> None:
    config = "connectors:\n  prometheus: {url: 'http://127.0.0.1:9090'}\n"
    path = _config_dir(tmp_path, config, PROMETHEUS_CHECK)

    settings, rules = load_config(path, Overrides(), {})

    assert settings.connectors.prometheus is not None
    assert [c.name for c in rules.checks] == ["disk", "queue"]


def test_an_invalid_connectors_prometheus_is_reported_once(tmp_path: Path) -> None:
    path = _config_dir(tmp_path, "connectors:\n  prometheus: {timeout: 5s}\n", PROMETHEUS_CHECK)

    assert _load_errors(path) == [
        f"{path}:3: connectors.prometheus.url: expected an http:// or https:// URL"
    ]


def test_config_check_prints_every_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from itsmd.cli.main import main

    path = _config_dir(tmp_path, "database: mysql://x\n", PROMETHEUS_CHECK)

    assert main(["config", "check", str(path)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:2: database: {ACCEPTED} a mysql:// URL",
        f"{tmp_path / 'rules' / 'checks.yml'}:6: checks[1] (queue): a prometheus check needs "
        f"connectors.prometheus (the Prometheus to query) in {path}, which has none",
    ]


def test_run_refuses_what_config_check_refuses_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from itsmd.cli.main import main

    path = _config_dir(tmp_path, "", "checks: []\n")

    assert main(["run", "--config", str(path), "--db", "mysql://x"]) == 1

    assert capsys.readouterr().err == (
        f"command line or environment:0: database: {ACCEPTED} a mysql:// URL\n"
    )


# --- connectors.alertmanager (reconciliation) ----------------------------------------------------


def test_alertmanager_reconciliation_settings() -> None:
    text = """\
connectors:
  alertmanager:
    urls: [http://am-1:9093/, https://am-2:9093]
    reconcile_every: 30s
    grace: 2m
    timeout: 5s
    receiver: itsmd
    basic_auth: {username: itsmd, password_env: AM_PASSWORD}
"""
    peers = parse(text, {"AM_PASSWORD": "s3cret"}).connectors.alertmanager
    assert peers is not None
    assert peers.urls == ("http://am-1:9093", "https://am-2:9093")
    assert (peers.reconcile_every, peers.grace, peers.timeout_s) == (
        timedelta(seconds=30),
        timedelta(minutes=2),
        5.0,
    )
    assert peers.receiver == "itsmd"
    assert peers.headers == {"Authorization": "Basic aXRzbWQ6czNjcmV0"}


def test_alertmanager_defaults_and_a_bearer_token() -> None:
    text = "connectors:\n  alertmanager: {urls: [http://am:9093], bearer_token_env: T}\n"
    peers = parse(text, {"T": "abc"}).connectors.alertmanager
    assert peers is not None
    assert (peers.reconcile_every, peers.grace, peers.timeout_s, peers.receiver) == (
        timedelta(minutes=1),
        timedelta(minutes=5),
        10.0,
        None,
    )
    assert peers.headers == {"Authorization": "Bearer abc"}
    assert parse("connectors: {}\n").connectors.alertmanager is None
    # As Prometheus' scrape_timeout: never longer than the interval unless asked.
    short = parse("connectors:\n  alertmanager: {urls: [http://a], reconcile_every: 4s}\n")
    assert short.connectors.alertmanager is not None
    assert short.connectors.alertmanager.timeout_s == 4.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "{}",
            ["3: connectors.alertmanager.urls: expected the URL of every Alertmanager"],
            id="no-urls",
        ),
        pytest.param(
            "{urls: [am:9093]}",
            ["3: connectors.alertmanager.urls[0]: expected an http(s):// URL"],
            id="not-a-url",
        ),
        pytest.param(
            "{urls: [http://a, http://a]}",
            ["3: connectors.alertmanager.urls: lists an Alertmanager twice"],
            id="twice",
        ),
        pytest.param(
            "{urls: [http://a], grace: 0s}",
            ["3: connectors.alertmanager.grace: expected a positive duration"],
            id="zero-grace",
        ),
        pytest.param(
            "{urls: [http://a], reconcile_every: 10s, timeout: 11s}",
            [
                "3: connectors.alertmanager.timeout: expected at most reconcile_every "
                "(10s): a round must end before the next one starts"
            ],
            id="timeout-too-long",
        ),
        pytest.param(
            "{urls: [http://a], bearer_token: x}",
            [
                "3: connectors.alertmanager.bearer_token: unknown key (did you mean "
                "'bearer_token_env'?)",
                "3: connectors.alertmanager.bearer_token: secrets are never inline: "
                "use bearer_token_env or bearer_token_file",
            ],
            id="inline-token",
        ),
        pytest.param(
            "{urls: [http://a], basic_auth: {username: u, password: p}}",
            [
                "3: connectors.alertmanager.basic_auth.password: unknown key (did you mean "
                "'password_env'?)",
                "3: connectors.alertmanager.basic_auth.password: secrets are never inline: "
                "use password_env or password_file",
            ],
            id="inline-password",
        ),
        pytest.param(
            "{urls: [http://a], bearer_token_env: T, basic_auth: {username: u, password_env: T}}",
            ["3: connectors.alertmanager.basic_auth: give a bearer token or basic_auth"],
            id="two-auths",
        ),
        pytest.param(
            "{urls: [http://a], reconcile: 1m}",
            ["3: connectors.alertmanager.reconcile: unknown key (did you mean 'reconcile_every'?)"],
            id="unknown-key",
        ),
    ],
)
def test_bad_alertmanager_section(body: str, expected: list[str]) -> None:
    text = f"connectors:\n  # reconciliation\n  alertmanager: {body}\n"
    assert errors(text, {"T": "tok"}) == [f"{F}:{e}" for e in expected]
