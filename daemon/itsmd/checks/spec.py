"""Checks (`checks:` in rule files): what to probe, how often, and when it is bad.

Parsed like the other rule sections: every problem with file:line and key path,
unknown keys are errors, nothing silently defaults. Pure: the probes that do the
I/O (and judge what they see) are in `itsmd.checks.probes`; capacity judgements
(`Capacity.breach`) are here so they are tested as tables.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

import promql_parser

from itsmd.checks.forecast import Direction
from itsmd.correlation.matchers import (
    MatcherError,
    Regex,
    Selector,
    matches_any,
    parse_selectors,
)
from itsmd.durations import format_duration, parse_duration
from itsmd.yamlsource import (
    Findings,
    LocDict,
    LocList,
    check_keys,
    convert,
    describe,
    expect_mapping,
    get_str,
    get_str_list,
    join,
)


class CheckType(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    DNS = "dns"
    HEARTBEAT = "heartbeat"
    PROMETHEUS = "prometheus"
    DISK = "disk"


COMMON_KEYS = ("name", "type", "service", "interval", "severity", "labels")
PROBE_KEYS = (*COMMON_KEYS, "timeout", "failures_before_alert")
CAPACITY_KEYS = ("warn", "critical", "forecast")
TYPE_KEYS: dict[CheckType, tuple[str, ...]] = {
    CheckType.HTTP: (
        *PROBE_KEYS,
        "url",
        "method",
        "headers",
        "expect_status",
        "body_regex",
        "max_latency",
        "tls_expiry_warning",
    ),
    CheckType.TCP: (*PROBE_KEYS, "target"),
    CheckType.DNS: (*PROBE_KEYS, "host", "record", "expect"),
    CheckType.HEARTBEAT: (*COMMON_KEYS, "match"),
    CheckType.PROMETHEUS: (*PROBE_KEYS, "query", *CAPACITY_KEYS),
    CheckType.DISK: (*PROBE_KEYS, "path", *CAPACITY_KEYS),
}
CHECK_KEYS = tuple(dict.fromkeys(key for keys in TYPE_KEYS.values() for key in keys))
# Labels every check alert sets itself; `labels:` may not override them.
RESERVED_LABELS = ("alertname", "check", "service", "severity")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DNS_RECORDS = ("A", "AAAA")
DEFAULT_INTERVAL = timedelta(seconds=30)
DEFAULT_TIMEOUT = timedelta(seconds=10)
MAX_QUERY_CODE = 4000
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.DOTALL)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class Threshold:
    """`{below: 0.05}`: the value is bad when strictly below 0.05."""

    direction: Direction
    value: float

    def crossed(self, value: float) -> bool:
        return value > self.value if self.direction is Direction.ABOVE else value < self.value

    def __str__(self) -> str:
        return f"{self.direction} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Forecast:
    """Fit a trend over the last `over`; alert when it crosses within `horizon`."""

    over: timedelta
    horizon: timedelta


@dataclass(frozen=True, slots=True)
class Capacity:
    """Thresholds of a prometheus or disk check, and what its forecast aims at."""

    warn: Threshold | None = None
    critical: Threshold | None = None
    forecast: Forecast | None = None
    # The critical threshold, else warn; for a disk forecast without either, full (0).
    target: Threshold | None = None

    def breach(self, value: float) -> tuple[str, Threshold] | None:
        """The severity and threshold a value crosses, critical first."""
        if self.critical is not None and self.critical.crossed(value):
            return "critical", self.critical
        if self.warn is not None and self.warn.crossed(value):
            return "warning", self.warn
        return None


@dataclass(frozen=True, slots=True)
class HttpProbe:
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    expect_status: frozenset[int] | None = None  # None: any 2xx
    body_regex: Regex | None = None  # RE2: a body is the target's to choose
    max_latency: timedelta | None = None
    tls_expiry_warning: timedelta | None = None


@dataclass(frozen=True, slots=True)
class TcpProbe:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class DnsProbe:
    host: str
    record: Literal["A", "AAAA"] | None = None  # None: both
    expect: frozenset[str] = frozenset()  # normalised addresses


@dataclass(frozen=True, slots=True)
class HeartbeatProbe:
    match: tuple[Selector, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_any(self.match, labels)


@dataclass(frozen=True, slots=True)
class PrometheusProbe:
    query: str
    capacity: Capacity


@dataclass(frozen=True, slots=True)
class DiskProbe:
    path: str
    capacity: Capacity  # of the free ratio, 0..1


Probe = HttpProbe | TcpProbe | DnsProbe | HeartbeatProbe | PrometheusProbe | DiskProbe


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check. `interval` is the max silence for a heartbeat."""

    name: str
    type: CheckType
    probe: Probe
    service: str | None = None
    interval: timedelta = DEFAULT_INTERVAL
    timeout: timedelta = DEFAULT_TIMEOUT
    failures_before_alert: int = 1
    severity: str = "critical"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)  # hashable spec
    file: str = ""
    line: int = 0

    @property
    def capacity(self) -> Capacity | None:
        return self.probe.capacity if isinstance(self.probe, PrometheusProbe | DiskProbe) else None

    @property
    def offset_s(self) -> float:
        """A stable delay of the first run within one interval, from the name, so
        that checks loaded together do not all probe at once (same after restarts)."""
        digest = hashlib.blake2b(self.name.encode(), digest_size=8).digest()
        return int.from_bytes(digest) / 2**64 * self.interval.total_seconds()


def parse_check(findings: Findings, m: LocDict, path: str, filename: str) -> CheckSpec | None:
    """One item of `checks:`; None (with its findings reported) when it is invalid."""
    before = len(findings.errors)
    name = get_str(findings, m, "name", path)
    if not name:
        findings.error(m.line, path, "every check needs a name")
    item = _Item(findings, m, f"{path} ({name})" if name else path)
    kind = item.check_type()
    check_keys(findings, m, TYPE_KEYS[kind] if kind else CHECK_KEYS, item.path)
    if kind is None:
        return None
    if kind is CheckType.HEARTBEAT and "interval" not in m:
        # The silence allowed depends on how often the sender repeats: no default is safe.
        item.error("missing 'interval' (the longest silence allowed, e.g. 5m)")
    interval = item.positive("interval") or DEFAULT_INTERVAL
    timeout = item.positive("timeout") or DEFAULT_TIMEOUT
    if kind is not CheckType.HEARTBEAT and timeout >= interval:
        spans = f"{format_duration(timeout)} >= {format_duration(interval)}"
        if "timeout" in m:
            item.bad("timeout", f"must be shorter than interval ({spans})")
        else:
            item.bad("interval", f"must be longer than the default timeout ({spans}); set timeout")
    failures = m.get("failures_before_alert", 1)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        item.bad("failures_before_alert", f"expected 1 or more, got {describe(failures)}")
    capacity = kind in (CheckType.PROMETHEUS, CheckType.DISK)
    severity = item.text("severity", "warning" if capacity else "critical")
    labels = item.labels()
    probe = _PARSERS[kind](item, timeout)
    if probe is None or len(findings.errors) != before:
        return None
    return CheckSpec(
        name=name or "",
        type=kind,
        probe=probe,
        service=item.text("service", "") or None,
        interval=interval,
        timeout=timeout,
        failures_before_alert=failures,
        severity=severity,
        labels=labels,
        file=filename,
        line=m.line,
    )


@dataclass(frozen=True, slots=True)
class _Item:
    """Readers for the fields of one check, each reporting at the field's line."""

    findings: Findings
    m: LocDict
    path: str

    def error(self, message: str) -> None:
        self.findings.error(self.m.line, self.path, message)

    def bad(self, key: str, message: str) -> None:
        self.findings.error(self.m.line_of(key), join(self.path, key), message)

    def check_type(self) -> CheckType | None:
        types = ", ".join(CheckType)
        if "type" not in self.m:
            self.error(f"missing 'type' (one of {types})")
            return None
        try:
            return CheckType(self.m["type"])
        except ValueError:
            self.bad("type", f"expected one of {types}, got {describe(self.m['type'])}")
            return None

    def text(self, key: str, default: str | None = None) -> str:
        """A non-empty string; `default` when the key is absent (None: required)."""
        if key not in self.m:
            if default is None:
                self.error(f"missing {key!r}")
            return default or ""
        value = get_str(self.findings, self.m, key, self.path)
        if self.m[key] is None or value == "":
            self.bad(key, "must not be empty")
        return value or ""

    def positive(self, key: str) -> timedelta | None:
        """An optional duration, more than zero when given."""
        value = convert(self.findings, self.m, key, self.path, None, parse_duration)
        if value is not None and value <= timedelta(0):
            self.bad(key, "must be a positive duration, e.g. 30s")
            return None
        return value

    def mapping(self, key: str) -> dict[str, str]:
        """A mapping of strings (numbers read as strings, as labels are)."""
        where = join(self.path, key)
        raw = self.m.get(key, LocDict())
        mapping = expect_mapping(self.findings, raw, self.m.line_of(key), where)
        out = {}
        for name, value in (mapping or {}).items():
            if (
                isinstance(name, str)
                and isinstance(value, str | int | float)
                and not isinstance(value, bool)
            ):
                out[name] = str(value)
            else:
                self.findings.error(
                    raw.line_of(name),
                    join(where, name),
                    f"expected a string, got {describe(value)}",
                )
        return out

    def labels(self) -> dict[str, str]:
        labels = self.mapping("labels")
        for name in labels:
            line, where = self.m["labels"].line_of(name), join(join(self.path, "labels"), name)
            if name in RESERVED_LABELS:
                hint = " (use the field of that name)" if name in ("service", "severity") else ""
                self.findings.error(line, where, f"set by the check itself{hint}")
            elif not _LABEL_NAME.fullmatch(name):
                self.findings.error(line, where, "invalid label name (letters, digits and _)")
        return labels

    def capacity(self, *, ratio: bool) -> Capacity | None:
        warn = self.threshold("warn", ratio=ratio)
        critical = self.threshold("critical", ratio=ratio)
        if not {"warn", "critical", *(["forecast"] if ratio else [])} & self.m.keys():
            hint = "{below: 0.05}, or a forecast" if ratio else "{above: 0.9}"
            self.error(f"needs warn or critical (e.g. critical: {hint})")
            return None
        if warn is not None and critical is not None:
            if warn.direction is not critical.direction:
                self.bad("critical", f"must use the direction of warn ({warn.direction})")
            elif not warn.crossed(critical.value):
                self.bad("critical", f"{critical} must lie beyond warn ({warn})")
        # The forecast aims at the critical threshold, else warn; a disk's else at full.
        target = critical or warn or Threshold(Direction.BELOW, 0.0)
        return Capacity(warn, critical, self.forecast(), target)

    def threshold(self, key: str, *, ratio: bool) -> Threshold | None:
        value = self.m.get(key)
        if key not in self.m:
            return None
        if not isinstance(value, LocDict) or len(value) != 1 or not value.keys() <= set(Direction):
            self.bad(key, f"expected {{below: X}} or {{above: X}}, got {describe(value)}")
            return None
        direction = Direction(next(iter(value)))
        number = value[direction.value]
        if type(number) not in (int, float) or (ratio and not 0 <= number <= 1):
            kind = "a free ratio, 0..1" if ratio else "a number"
            inner = _Item(self.findings, value, join(self.path, key))
            inner.bad(direction.value, f"expected {kind}, got {describe(number)}")
            return None
        return Threshold(direction, float(number))

    def forecast(self) -> Forecast | None:
        if "forecast" not in self.m:
            return None
        where = join(self.path, "forecast")
        raw = expect_mapping(self.findings, self.m["forecast"], self.m.line_of("forecast"), where)
        if raw is None:
            return None
        check_keys(self.findings, raw, ("over", "horizon"), where)
        inner = _Item(self.findings, raw, where)
        over, horizon = inner.positive("over"), inner.positive("horizon")
        if "over" not in raw or "horizon" not in raw:
            inner.error("needs over and horizon (e.g. {over: 6h, horizon: 24h})")
        return Forecast(over, horizon) if over and horizon else None


def _parse_http(item: _Item, timeout: timedelta) -> HttpProbe | None:
    url = item.text("url")
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        item.bad("url", f"expected an http:// or https:// URL with a host, got {url!r}")
    method = item.text("method", "GET").upper()
    if method and method not in HTTP_METHODS:
        item.bad("method", f"expected one of {', '.join(HTTP_METHODS)}, got {method!r}")
    body_regex = None
    if "body_regex" in item.m:
        try:
            body_regex = Regex(item.text("body_regex"))
        except ValueError as exc:
            item.bad("body_regex", f"invalid regular expression: {exc} (RE2 syntax)")
    max_latency = item.positive("max_latency")
    if max_latency is not None and max_latency >= timeout:
        item.bad("max_latency", f"must be shorter than timeout ({format_duration(timeout)})")
    tls_warning = item.positive("tls_expiry_warning")
    if tls_warning is not None and parts.scheme != "https":
        item.bad("tls_expiry_warning", "needs an https:// URL")
    return HttpProbe(
        url, method, item.mapping("headers"), _statuses(item), body_regex, max_latency, tls_warning
    )


def _statuses(item: _Item) -> frozenset[int] | None:
    if "expect_status" not in item.m:
        return None
    value = item.m["expect_status"]
    codes = value if isinstance(value, LocList) else [value]
    bad = [c for c in codes if type(c) is not int or not 100 <= c <= 599]
    if not codes or bad:
        got = describe(bad[0] if bad else value)
        item.bad("expect_status", f"expected status codes like [200, 204], got {got}")
        return None
    return frozenset(codes)


def _parse_tcp(item: _Item, _timeout: timedelta) -> TcpProbe | None:
    target = item.text("target")
    host, _, port = target.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:5432
    if target and (not host or not port.isdecimal() or not 1 <= int(port) <= 65535):
        item.bad("target", f"expected host:port (e.g. db.internal:5432), got {target!r}")
        return None
    return TcpProbe(host, int(port)) if target else None


def _parse_dns(item: _Item, _timeout: timedelta) -> DnsProbe | None:
    host = item.text("host")
    if host and not all(_HOST_LABEL.fullmatch(p) for p in host.removesuffix(".").split(".")):
        item.bad("host", f"expected a host name like api.example.com, got {host!r}")
    record = get_str(item.findings, item.m, "record", item.path)
    if record is not None and record not in DNS_RECORDS:
        item.bad("record", f"expected A or AAAA, got {record!r}")
        record = None
    expect: set[str] = set()
    for text in get_str_list(item.findings, item.m, "expect", item.path):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            item.bad("expect", f"expected IP addresses, got {text!r}")
            continue
        if record is not None and record != ("A" if address.version == 4 else "AAAA"):
            item.bad("expect", f"{text} is not an {record} record address")
        expect.add(str(address))
    family: Literal["A", "AAAA"] | None = "A" if record == "A" else "AAAA" if record else None
    return DnsProbe(host, family, frozenset(expect))


def _parse_heartbeat(item: _Item, _timeout: timedelta) -> HeartbeatProbe | None:
    value = item.m.get("match")
    if value is None:
        item.error("missing 'match' (the alert that must keep arriving, e.g. Watchdog)")
        return None
    selectors = value if isinstance(value, LocList) else [value]
    if not selectors or not all(isinstance(s, str) for s in selectors):
        item.bad("match", "expected a selector like '{alertname=\"Watchdog\"}' or a list")
        return None
    try:
        return HeartbeatProbe(parse_selectors(value if isinstance(value, str) else selectors))
    except MatcherError as exc:
        item.bad("match", f"invalid matcher: {exc}")
        return None


def _parse_prometheus(item: _Item, _timeout: timedelta) -> PrometheusProbe | None:
    query = item.text("query")
    if query.strip():
        problem = promql_problem(query)
        if problem is not None:
            item.bad("query", problem)
    capacity = item.capacity(ratio=False)
    return PrometheusProbe(query, capacity) if capacity is not None else None


def promql_problem(query: str) -> str | None:
    """What is wrong with a check's PromQL, or None: a syntax error as the parser (a port
    of Prometheus' own) words it, or a result that is not a number a threshold can judge."""
    code = len(_STRINGS.sub("", query))
    if code > MAX_QUERY_CODE:
        # The parser recurses on the native stack: a deep enough query would crash the
        # process instead of raising. No real check query comes near this.
        return (
            f"too long: {code} characters outside quoted strings, at most {MAX_QUERY_CODE} "
            "(move parts of it into Prometheus recording rules)"
        )
    _register_prometheus_2_functions()
    try:
        expr = promql_parser.parse(query)
    except ValueError as exc:
        return str(exc)
    while isinstance(expr, promql_parser.ParenExpr):
        expr = expr.expr
    if isinstance(expr, promql_parser.StringLiteral):
        return "the query returns a string: expected an instant vector or a scalar"
    if isinstance(expr, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return (
            "the query returns a range vector: expected an instant vector or a scalar "
            "(e.g. wrap it in avg_over_time)"
        )
    return None


@functools.cache
def _register_prometheus_2_functions() -> None:
    """The parser follows Prometheus 3, which renamed holt_winters; Prometheus 2 servers
    still answer it, so a query written for one is not an error."""
    matrix, scalar = promql_parser.ValueType.Matrix, promql_parser.ValueType.Scalar
    holt_winters = promql_parser.Function(
        "holt_winters", [matrix, scalar, scalar], promql_parser.ValueType.Vector
    )
    with contextlib.suppress(ValueError):  # a later parser version knows it already
        promql_parser.register_extra_functions([holt_winters])


def _parse_disk(item: _Item, _timeout: timedelta) -> DiskProbe | None:
    path = item.text("path")
    capacity = item.capacity(ratio=True)
    return DiskProbe(path, capacity) if capacity is not None else None


_PARSERS: dict[CheckType, Callable[[_Item, timedelta], Probe | None]] = {
    CheckType.HTTP: _parse_http,
    CheckType.TCP: _parse_tcp,
    CheckType.DNS: _parse_dns,
    CheckType.HEARTBEAT: _parse_heartbeat,
    CheckType.PROMETHEUS: _parse_prometheus,
    CheckType.DISK: _parse_disk,
}
