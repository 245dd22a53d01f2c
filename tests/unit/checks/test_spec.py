"""Checks in rule files: parsed and validated with `file:line: key path: message`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from itsmd.checks.forecast import Direction
from itsmd.checks.spec import (
    CHECK_KEYS,
    TYPE_KEYS,
    Capacity,
    CheckSpec,
    CheckType,
    DiskProbe,
    DnsProbe,
    Forecast,
    HeartbeatProbe,
    HttpProbe,
    PrometheusProbe,
    TcpProbe,
    Threshold,
)
from itsmd.checks.state import ALERT_NAMES
from itsmd.correlation.matchers import Regex, parse_selectors
from itsmd.correlation.rules import load_rules, parse_rule_sections
from itsmd.yamlsource import LoadError

F = "rules/c.yml"
ROOT = Path(__file__).resolve().parents[3]
BELOW, ABOVE = Direction.BELOW, Direction.ABOVE


def checks(body: str) -> tuple[CheckSpec, ...]:
    return parse_rule_sections(f"checks:\n{body}", F).checks


def one(fields: str) -> CheckSpec:
    """One check named c; `fields` one per line, unindented (line 3 onwards)."""
    indented = "".join(f"    {line}\n" for line in fields.strip().splitlines())
    (check,) = checks(f"  - name: c\n{indented}")
    return check


def errors(fields: str) -> list[str]:
    indented = "".join(f"    {line}\n" for line in fields.strip().splitlines())
    with pytest.raises(LoadError) as info:
        checks(f"  - name: c\n{indented}")
    return [str(p) for p in info.value.findings]


def test_the_design_example_loads() -> None:
    text = (ROOT / "docs/rules.md").read_text(encoding="utf-8")
    example = text.split("## `checks`", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = parse_rule_sections(example, F).checks
    assert [c.type for c in loaded] == list(CheckType)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            "type: http\nurl: https://api.example.com/healthz",
            CheckSpec(
                "c", CheckType.HTTP, HttpProbe("https://api.example.com/healthz"), file=F, line=2
            ),
            id="http-defaults",
        ),
        pytest.param(
            "type: http\nurl: http://a:8080/x\nmethod: head\nheaders: {X-Token: abc, N: 1}\n"
            "expect_status: [200, 204]\nbody_regex: ok\nmax_latency: 1s\ninterval: 1m\n"
            "timeout: 5s\nfailures_before_alert: 3\nseverity: warning\nservice: api\n"
            "labels: {team: web, tier: 1}",
            CheckSpec(
                "c",
                CheckType.HTTP,
                HttpProbe(
                    "http://a:8080/x",
                    "HEAD",
                    {"X-Token": "abc", "N": "1"},
                    frozenset({200, 204}),
                    Regex("ok"),
                    timedelta(seconds=1),
                ),
                service="api",
                interval=timedelta(minutes=1),
                timeout=timedelta(seconds=5),
                failures_before_alert=3,
                severity="warning",
                labels={"team": "web", "tier": "1"},
                file=F,
                line=2,
            ),
            id="http-everything",
        ),
        pytest.param(
            "type: http\nurl: https://a/\ntls_expiry_warning: 14d\nexpect_status: 503",
            CheckSpec(
                "c",
                CheckType.HTTP,
                HttpProbe(
                    "https://a/",
                    expect_status=frozenset({503}),
                    tls_expiry_warning=timedelta(days=14),
                ),
                file=F,
                line=2,
            ),
            id="http-tls-and-one-status",
        ),
        pytest.param(
            "type: tcp\ntarget: db.internal:5432",
            CheckSpec("c", CheckType.TCP, TcpProbe("db.internal", 5432), file=F, line=2),
            id="tcp",
        ),
        pytest.param(
            "type: tcp\ntarget: '[::1]:22'",
            CheckSpec("c", CheckType.TCP, TcpProbe("::1", 22), file=F, line=2),
            id="tcp-ipv6",
        ),
        pytest.param(
            "type: dns\nhost: api.example.com.\nrecord: AAAA\nexpect: ['2001:DB8::1']",
            CheckSpec(
                "c",
                CheckType.DNS,
                DnsProbe("api.example.com.", "AAAA", frozenset({"2001:db8::1"})),
                file=F,
                line=2,
            ),
            id="dns",
        ),
        pytest.param(
            "type: heartbeat\nmatch: '{alertname=\"Watchdog\"}'\ninterval: 5m",
            CheckSpec(
                "c",
                CheckType.HEARTBEAT,
                HeartbeatProbe(parse_selectors('{alertname="Watchdog"}')),
                interval=timedelta(minutes=5),
                file=F,
                line=2,
            ),
            id="heartbeat",
        ),
        pytest.param(
            "type: prometheus\nquery: up\nwarn: {above: 0.8}\ncritical: {above: 1}\n"
            "forecast: {over: 6h, horizon: 1d}",
            CheckSpec(
                "c",
                CheckType.PROMETHEUS,
                PrometheusProbe(
                    "up",
                    Capacity(
                        Threshold(ABOVE, 0.8),
                        Threshold(ABOVE, 1.0),
                        Forecast(timedelta(hours=6), timedelta(days=1)),
                        Threshold(ABOVE, 1.0),
                    ),
                ),
                severity="warning",
                file=F,
                line=2,
            ),
            id="prometheus",
        ),
        pytest.param(
            "type: disk\npath: /var/lib/itsmd\nwarn: {below: 0.1}",
            CheckSpec(
                "c",
                CheckType.DISK,
                DiskProbe(
                    "/var/lib/itsmd",
                    Capacity(warn=Threshold(BELOW, 0.1), target=Threshold(BELOW, 0.1)),
                ),
                severity="warning",
                file=F,
                line=2,
            ),
            id="disk-warn-only",
        ),
        pytest.param(
            "type: disk\npath: /\nforecast: {over: 1h, horizon: 1d}",
            CheckSpec(
                "c",
                CheckType.DISK,
                DiskProbe(
                    "/",
                    Capacity(
                        forecast=Forecast(timedelta(hours=1), timedelta(days=1)),
                        target=Threshold(BELOW, 0.0),
                    ),
                ),
                severity="warning",
                file=F,
                line=2,
            ),
            id="disk-forecast-of-full",
        ),
    ],
)
def test_valid_check(fields: str, expected: CheckSpec) -> None:
    assert one(fields) == expected


P = f"{F}:4: checks[0] (c)"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "url: http://a",
            [
                f"{F}:2: checks[0] (c): missing 'type' (one of http, tcp, dns, "
                "heartbeat, prometheus, disk)"
            ],
        ),
        (
            "type: ping",
            [
                f"{F}:3: checks[0] (c).type: expected one of http, tcp, dns, "
                "heartbeat, prometheus, disk, got str 'ping'"
            ],
        ),
        (
            "type: tcp\ntarget: a:1\nurl: x",
            [
                f"{F}:5: checks[0] (c).url: unknown key (allowed: "
                f"{', '.join(TYPE_KEYS[CheckType.TCP])})"
            ],
        ),
        (
            "type: tcp\ntarget: a:1\ntimout: 1s",
            [f"{F}:5: checks[0] (c).timout: unknown key (did you mean 'timeout'?)"],
        ),
        (
            "type: tcp\ntarget: a:1\ninterval: 5s",
            [
                f"{F}:5: checks[0] (c).interval: must be longer than the default timeout "
                "(10s >= 5s); set timeout"
            ],
        ),
        (
            "type: tcp\ntarget: a:1\ninterval: 0s",
            [f"{F}:5: checks[0] (c).interval: must be a positive duration, e.g. 30s"],
        ),
        (
            "type: tcp\ntarget: a:1\ninterval: soon",
            [
                f"{F}:5: checks[0] (c).interval: not a duration: 'soon' (expected e.g. 90s, 15m, "
                "1h30m, 7d)"
            ],
        ),
        (
            "type: tcp\ntarget: a:1\nfailures_before_alert: 0",
            [f"{F}:5: checks[0] (c).failures_before_alert: expected 1 or more, got int 0"],
        ),
        (
            "type: tcp\ntarget: a:1\nfailures_before_alert: true",
            [f"{F}:5: checks[0] (c).failures_before_alert: expected 1 or more, got bool True"],
        ),
        ("type: tcp\ntarget: a:1\nservice:", [f"{F}:5: checks[0] (c).service: must not be empty"]),
        (
            "type: tcp\ntarget: a:1\nseverity: ''",
            [f"{F}:5: checks[0] (c).severity: must not be empty"],
        ),
        (
            "type: tcp\ntarget: a:1\nlabels: {alertname: x, severity: y, ok-no: z, n: [1]}",
            [
                f"{F}:5: checks[0] (c).labels.n: expected a string, got a list",
                f"{F}:5: checks[0] (c).labels.alertname: set by the check itself",
                f"{F}:5: checks[0] (c).labels.severity: set by the check itself (use the field of "
                "that name)",
                f"{F}:5: checks[0] (c).labels.ok-no: invalid label name (letters, digits and _)",
            ],
        ),
        (
            "type: tcp\ntarget: a:1\nlabels: [a]",
            [f"{F}:5: checks[0] (c).labels: expected a mapping, got a list"],
        ),
        ("type: tcp", [f"{F}:2: checks[0] (c): missing 'target'"]),
        (
            "type: tcp\ntarget: db",
            [f"{P}.target: expected host:port (e.g. db.internal:5432), got 'db'"],
        ),
        (
            "type: tcp\ntarget: db:99999",
            [f"{P}.target: expected host:port (e.g. db.internal:5432), got 'db:99999'"],
        ),
        ("type: http", [f"{F}:2: checks[0] (c): missing 'url'"]),
        (
            "type: http\nurl: ftp://a",
            [f"{P}.url: expected an http:// or https:// URL with a host, got 'ftp://a'"],
        ),
        (
            "type: http\nurl: http://a\nmethod: FETCH",
            [
                f"{F}:5: checks[0] (c).method: expected one of GET, HEAD, POST, PUT, PATCH, "
                "DELETE, OPTIONS, got 'FETCH'"
            ],
        ),
        (
            "type: http\nurl: http://a\nexpect_status: [200, 700]",
            [
                f"{F}:5: checks[0] (c).expect_status: expected status codes like [200, 204], "
                "got int 700"
            ],
        ),
        (
            "type: http\nurl: http://a\nexpect_status: []",
            [
                f"{F}:5: checks[0] (c).expect_status: expected status codes like [200, 204], "
                "got a list"
            ],
        ),
        (
            "type: http\nurl: http://a\nbody_regex: '('",
            [
                f"{F}:5: checks[0] (c).body_regex: invalid regular expression: missing ): ( "
                "(RE2 syntax)"
            ],
        ),
        (
            "type: http\nurl: http://a\nmax_latency: 10s",
            [f"{F}:5: checks[0] (c).max_latency: must be shorter than timeout (10s)"],
        ),
        (
            "type: http\nurl: http://a\ntls_expiry_warning: 14d",
            [f"{F}:5: checks[0] (c).tls_expiry_warning: needs an https:// URL"],
        ),
        (
            "type: http\nurl: http://a\nheaders: {X: null}",
            [f"{F}:5: checks[0] (c).headers.X: expected a string, got nothing (null)"],
        ),
        ("type: dns", [f"{F}:2: checks[0] (c): missing 'host'"]),
        (
            "type: dns\nhost: 'a b'",
            [f"{P}.host: expected a host name like api.example.com, got 'a b'"],
        ),
        (
            "type: dns\nhost: a\nrecord: MX",
            [f"{F}:5: checks[0] (c).record: expected A or AAAA, got 'MX'"],
        ),
        (
            "type: dns\nhost: a\nexpect: [nope]",
            [f"{F}:5: checks[0] (c).expect: expected IP addresses, got 'nope'"],
        ),
        (
            "type: dns\nhost: a\nrecord: A\nexpect: ['::1']",
            [f"{F}:6: checks[0] (c).expect: ::1 is not an A record address"],
        ),
        (
            "type: heartbeat\nmatch: '{}'",
            [f"{F}:2: checks[0] (c): missing 'interval' (the longest silence allowed, e.g. 5m)"],
        ),
        (
            "type: heartbeat\ninterval: 5m",
            [
                f"{F}:2: checks[0] (c): missing 'match' (the alert "
                "that must keep arriving, e.g. Watchdog)"
            ],
        ),
        (
            "type: heartbeat\ninterval: 5m\nmatch: '{a=}'",
            [
                f"{F}:5: checks[0] (c).match: invalid matcher: position 3: expected a quoted value "
                "after 'a=', got '}'"
            ],
        ),
        (
            "type: heartbeat\ninterval: 5m\nmatch: '{}'\ntimeout: 1s",
            [
                f"{F}:6: checks[0] (c).timeout: unknown key (allowed: name, type, service, "
                "interval, severity, labels, match)"
            ],
        ),
        ("type: prometheus\nwarn: {above: 1}", [f"{F}:2: checks[0] (c): missing 'query'"]),
        (
            "type: prometheus\nquery: up",
            [f"{F}:2: checks[0] (c): needs warn or critical (e.g. critical: {{above: 0.9}})"],
        ),
        (
            "type: prometheus\nquery: up\nforecast: {over: 1h, horizon: 1d}",
            [f"{F}:2: checks[0] (c): needs warn or critical (e.g. critical: {{above: 0.9}})"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: 3",
            [f"{F}:5: checks[0] (c).warn: expected {{below: X}} or {{above: X}}, got int 3"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {over: 3}",
            [f"{F}:5: checks[0] (c).warn: expected {{below: X}} or {{above: X}}, got a mapping"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {above: x}",
            [f"{F}:5: checks[0] (c).warn.above: expected a number, got str 'x'"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {above: 1}\ncritical: {below: 0}",
            [f"{F}:6: checks[0] (c).critical: must use the direction of warn (above)"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {above: 2}\ncritical: {above: 1}",
            [f"{F}:6: checks[0] (c).critical: above 1 must lie beyond warn (above 2)"],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {above: 2}\nforecast: {over: 0s}",
            [
                f"{F}:6: checks[0] (c).forecast.over: must be a positive duration, e.g. 30s",
                f"{F}:6: checks[0] (c).forecast: needs over and horizon (e.g. {{over: 6h, "
                "horizon: 24h})",
            ],
        ),
        (
            "type: prometheus\nquery: up\nwarn: {above: 2}\nforecast: {over: 1h, horizon: 1d, "
            "step: 1m}",
            [f"{F}:6: checks[0] (c).forecast.step: unknown key (allowed: over, horizon)"],
        ),
        (
            "type: disk",
            [
                f"{F}:2: checks[0] (c): missing 'path'",
                f"{F}:2: checks[0] (c): needs warn or critical (e.g. critical: "
                "{below: 0.05}, or a forecast)",
            ],
        ),
        (
            "type: disk\npath: /\ncritical: {below: 5}",
            [f"{F}:5: checks[0] (c).critical.below: expected a free ratio, 0..1, got int 5"],
        ),
        (
            "type: disk\npath: /\nwarn: {below: 0.05}\ncritical: {below: 0.1}",
            [f"{F}:6: checks[0] (c).critical: below 0.1 must lie beyond warn (below 0.05)"],
        ),
    ],
)
def test_invalid_check(fields: str, expected: list[str]) -> None:
    assert errors(fields) == expected


def test_a_check_needs_a_name() -> None:
    with pytest.raises(LoadError) as info:
        checks("  - type: tcp\n    target: a:1\n")
    assert [str(p) for p in info.value.findings] == [f"{F}:2: checks[0]: every check needs a name"]


def test_check_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("checks:\n  - {name: x, type: tcp, target: 'a:1'}\n")
    (tmp_path / "b.yml").write_text("\nchecks:\n  - {name: x, type: tcp, target: 'b:1'}\n")
    with pytest.raises(LoadError) as info:
        load_rules([tmp_path / "a.yml", tmp_path / "b.yml"])
    assert [str(p) for p in info.value.findings] == [
        f"{tmp_path}/b.yml:3: checks: name 'x' already used at {tmp_path}/a.yml:2"
    ]


def test_checks_of_several_files_are_merged_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("checks:\n  - {name: x, type: tcp, target: 'a:1'}\n")
    (tmp_path / "b.yml").write_text(
        "checks:\n  - {name: y, type: disk, path: /, critical: {below: 0.1}}\n"
    )
    rules = load_rules([tmp_path / "a.yml", tmp_path / "b.yml"])
    assert [c.name for c in rules.checks] == ["x", "y"]


def test_first_runs_spread_over_one_interval() -> None:
    names = [f"check-{i}" for i in range(50)]
    offsets = [CheckSpec(n, CheckType.TCP, TcpProbe("a", 1)).offset_s for n in names]
    assert all(0 <= o < 30 for o in offsets)
    assert len({round(o) for o in offsets}) > 10
    assert (
        CheckSpec("a", CheckType.TCP, TcpProbe("a", 1)).offset_s
        == CheckSpec("a", CheckType.TCP, TcpProbe("b", 2)).offset_s
    )


@pytest.mark.parametrize(
    ("capacity", "value", "expected"),
    [
        (Capacity(Threshold(BELOW, 0.1), Threshold(BELOW, 0.05)), 0.2, None),
        (Capacity(Threshold(BELOW, 0.1), Threshold(BELOW, 0.05)), 0.1, None),  # strictly
        (Capacity(Threshold(BELOW, 0.1), Threshold(BELOW, 0.05)), 0.07, "warning"),
        (Capacity(Threshold(BELOW, 0.1), Threshold(BELOW, 0.05)), 0.01, "critical"),
        (Capacity(critical=Threshold(ABOVE, 90)), 95, "critical"),
        (Capacity(warn=Threshold(ABOVE, 90)), 95, "warning"),
    ],
)
def test_capacity_breach(capacity: Capacity, value: float, expected: str | None) -> None:
    breach = capacity.breach(value)
    assert (breach[0] if breach else None) == expected


def test_every_check_field_and_alert_is_documented() -> None:
    docs = (ROOT / "docs/rules.md").read_text(encoding="utf-8").split("## `checks`", 1)[1]
    missing = [k for k in CHECK_KEYS if f"| `{k}` |" not in docs]
    missing += [name for name in ALERT_NAMES if f"`{name}`" not in docs]
    assert missing == []


# --- PromQL of prometheus checks: parsed when the rules load --------------------------------------


def _query(query: str) -> str:
    return f"type: prometheus\nquery: {json.dumps(query)}\nwarn: {{above: 1}}"


@pytest.mark.parametrize(
    "query",
    [
        "up",
        'node_filesystem_avail_bytes{mountpoint="/data"} / '
        'node_filesystem_size_bytes{mountpoint="/data"}',
        "sum by (queue) (rate(jobs_total[5m])) > 0",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "avg_over_time(up[1h:5m])",
        "max_over_time(deriv(x[10m])[1h:] @ end())",
        "holt_winters(x[1h], 0.5, 0.5)",  # Prometheus 2
        "double_exponential_smoothing(x[1h], 0.5, 0.5)",  # Prometheus 3
        "scalar(sum(up))",
        "1",
        '{__name__=~"node_.+", job="node"}',
        "x" + "+x" * 1999,  # 3,999 characters
    ],
)
def test_a_valid_query_loads(query: str) -> None:
    probe = one(_query(query)).probe
    assert isinstance(probe, PrometheusProbe)
    assert probe.query == query


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(rate(jobs_total[5m])) by (queue", "unclosed left parenthesis"),
        ('up{job="node"', "unexpected end of input inside braces"),
        ('up{job="node}', 'unterminated quoted string "'),
        ("rate(jobs_total)", "expected type matrix in call to function 'rate', got vector"),
        ("rat(jobs_total[5m])", "unknown function with name 'rat'"),
        ("sum(x) by", "invalid promql query"),
        (
            "sum(x) @ end()",
            "@ modifier must be preceded by an vector selector or matrix selector or a subquery",
        ),
        ("{}", "vector selector must contain at least one non-empty matcher"),
        ('"a string"', "the query returns a string: expected an instant vector or a scalar"),
        (
            "jobs_total[5m]",
            "the query returns a range vector: expected an instant vector or a scalar "
            "(e.g. wrap it in avg_over_time)",
        ),
        (
            "(x[1h:1m])",
            "the query returns a range vector: expected an instant vector or a scalar "
            "(e.g. wrap it in avg_over_time)",
        ),
        (
            "x" + "+x" * 2100,
            "too long: 4201 characters outside quoted strings, at most 4000 (move parts of it "
            "into Prometheus recording rules)",
        ),
    ],
)
def test_a_query_that_prometheus_would_refuse_is_an_error_at_load(query: str, message: str) -> None:
    assert errors(_query(query)) == [f"{F}:4: checks[0] (c).query: {message}"]


def test_deep_nesting_is_refused_before_the_parser_sees_it() -> None:
    """The parser recurses on the native stack: 5,000 operators in a row crash the
    process instead of raising."""
    assert errors(_query("x" + "+x" * 5000))[0].startswith(
        f"{F}:4: checks[0] (c).query: too long: 10001 characters outside quoted strings"
    )
    long_regex = 'up{instance=~"' + "|".join(f"host-{i}" for i in range(2000)) + '"}'
    probe = one(_query(long_regex)).probe  # the length inside strings does not count
    assert isinstance(probe, PrometheusProbe)
    assert probe.query == long_regex


def test_rules_check_reports_a_bad_query_with_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from itsmd.cli.main import main

    path = tmp_path / "checks.yml"
    path.write_text(
        "checks:\n"
        "  - name: queue\n    type: prometheus\n    query: 'sum(queue_depth'\n"
        "    warn: {above: 100}\n"
        "  - name: web\n    type: http\n    url: ftp://x\n"
    )

    assert main(["rules", "check", str(path)]) == 1

    assert capsys.readouterr().err.splitlines() == [
        f"{path}:4: checks[0] (queue).query: unclosed left parenthesis",
        f"{path}:8: checks[1] (web).url: expected an http:// or https:// URL with a host, "
        "got 'ftp://x'",
    ]
