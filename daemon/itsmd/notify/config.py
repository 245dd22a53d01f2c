"""The `connectors:` and `routes:` sections of the config file (docs/connectors.md).

Each sink instance's own options are checked by its kind (found through the
`itsmd.sinks` entry points) when the config loads, so `itsmd config check`
catches a misspelt option or a missing secret before the daemon starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from itsmd.correlation.matchers import MatcherError, Selector, parse_selectors
from itsmd.durations import format_duration, parse_duration
from itsmd.notify.connector import (
    EVENTS,
    Sink,
    SinkConfigError,
    SinkEnv,
    SinkKind,
    SinkOptions,
    basic_auth,
)
from itsmd.notify.routes import UNLESS, Route
from itsmd.yamlsource import (
    Findings,
    LocDict,
    LocList,
    check_keys,
    convert,
    expect_list,
    expect_mapping,
    get_str,
    get_str_list,
    join,
)

# Options every sink instance takes; the rest belong to its kind.
COMMON_SINK_KEYS = ("type", "timeout", "max_attempts", "concurrency", "backoff", "max_backoff")
ROUTE_KEYS = ("name", "match", "events", "to", "continue", "after", "unless")
CONNECTOR_KEYS = ("prometheus", "alertmanager", "sinks")
AUTH_KEYS = ("bearer_token_env", "bearer_token_file", "basic_auth")
BASIC_AUTH_KEYS = ("username", "password_env", "password_file")
PROMETHEUS_KEYS = ("url", "timeout", *AUTH_KEYS)
ALERTMANAGER_KEYS = ("urls", "reconcile_every", "grace", "timeout", "receiver", *AUTH_KEYS)


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A named sink instance: its kind, its own options and the delivery policy."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(repr=False)  # validated, secrets unresolved
    base: Path = Path()
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for the secrets
    timeout_s: float = 10.0
    max_attempts: int = 12
    concurrency: int = 4
    backoff_s: float = 2.0  # first retry delay; doubles up to max_backoff_s
    max_backoff_s: float = 600.0


@dataclass(frozen=True, slots=True)
class PrometheusSource:
    url: str
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class AlertmanagerPeers:
    """The Alertmanagers that send to itsmd, asked for what they hold (reconciliation)."""

    urls: tuple[str, ...]
    reconcile_every: timedelta = timedelta(minutes=1)
    grace: timedelta = timedelta(minutes=5)
    timeout_s: float = 10.0
    receiver: str | None = None  # only alerts routed to this receiver are ingested
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Connectors:
    prometheus: PrometheusSource | None = None
    alertmanager: AlertmanagerPeers | None = None
    sinks: Mapping[str, SinkSpec] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()


def _no_session() -> aiohttp.ClientSession:
    raise RuntimeError("a sink built for validation cannot send")


def parse_connectors(
    findings: Findings,
    top: LocDict,
    env: Mapping[str, str],
    base: Path,
    kinds: Mapping[str, SinkKind] | Callable[[], Mapping[str, SinkKind]],
) -> Connectors:
    section = top.get("connectors")
    prometheus, alertmanager, sinks, m = None, None, {}, None
    if section is not None:
        m = expect_mapping(findings, section, top.line_of("connectors"), "connectors")
        if m is not None:
            check_keys(findings, m, CONNECTOR_KEYS, "connectors")
            prometheus = _prometheus(findings, m, env, base)
            alertmanager = _alertmanager(findings, m, env, base)
            if m.get("sinks") and callable(kinds):
                kinds = kinds()  # import the sink modules only when sinks are configured
            sinks = _sinks(findings, m, env, base, kinds if isinstance(kinds, Mapping) else {})
    declared = set(m["sinks"]) if m is not None and isinstance(m.get("sinks"), LocDict) else set()
    return Connectors(prometheus, alertmanager, sinks, _routes(findings, top, declared))


def _prometheus(
    findings: Findings, m: LocDict, env: Mapping[str, str], base: Path
) -> PrometheusSource | None:
    if m.get("prometheus") is None:
        return None
    path = "connectors.prometheus"
    p = expect_mapping(findings, m["prometheus"], m.line_of("prometheus"), path)
    if p is None:
        return None
    check_keys(findings, p, PROMETHEUS_KEYS, path)
    url = get_str(findings, p, "url", path) or ""
    if not url.startswith(("http://", "https://")):
        findings.error(p.line_of("url"), join(path, "url"), "expected an http:// or https:// URL")
    timeout = convert(findings, p, "timeout", path, timedelta(seconds=10), parse_duration)
    headers = _auth_headers(findings, p, path, env, base)
    return PrometheusSource(url.rstrip("/"), timeout.total_seconds(), headers)


def _alertmanager(
    findings: Findings, m: LocDict, env: Mapping[str, str], base: Path
) -> AlertmanagerPeers | None:
    if m.get("alertmanager") is None:
        return None
    path = "connectors.alertmanager"
    a = expect_mapping(findings, m["alertmanager"], m.line_of("alertmanager"), path)
    if a is None:
        return None
    check_keys(findings, a, ALERTMANAGER_KEYS, path)
    urls = get_str_list(findings, a, "urls", path) or []
    if not urls:
        findings.error(
            a.line_of("urls"), join(path, "urls"), "expected the URL of every Alertmanager"
        )
    for index, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            findings.error(
                a.line_of("urls"), join(path, f"urls[{index}]"), "expected an http(s):// URL"
            )
    if len(set(urls)) != len(urls):
        findings.error(a.line_of("urls"), join(path, "urls"), "lists an Alertmanager twice")
    every = convert(findings, a, "reconcile_every", path, timedelta(minutes=1), parse_duration)
    grace = convert(findings, a, "grace", path, timedelta(minutes=5), parse_duration)
    # As Prometheus' scrape_timeout: 10s by default, but never longer than the interval.
    default_timeout = min(timedelta(seconds=10), every) if every > timedelta(0) else every
    timeout = convert(findings, a, "timeout", path, default_timeout, parse_duration)
    for key, value in (("reconcile_every", every), ("grace", grace), ("timeout", timeout)):
        if value <= timedelta(0):
            findings.error(a.line_of(key), join(path, key), "expected a positive duration")
    if timeout > every > timedelta(0):
        findings.error(
            a.line_of("timeout"),
            join(path, "timeout"),
            f"expected at most reconcile_every ({format_duration(every)}): "
            "a round must end before the next one starts",
        )
    receiver = get_str(findings, a, "receiver", path) if "receiver" in a else None
    return AlertmanagerPeers(
        tuple(u.rstrip("/") for u in urls),
        every,
        grace,
        timeout.total_seconds(),
        receiver,
        _auth_headers(findings, a, path, env, base),
    )


def _auth_headers(
    findings: Findings, m: LocDict, path: str, env: Mapping[str, str], base: Path
) -> dict[str, str]:
    """`bearer_token_env`/`_file` or `basic_auth: {username, password_env|_file}`, as
    Prometheus' own `http_config` takes them; secrets never inline."""
    options = SinkOptions({k: v for k, v in m.items() if k.startswith("bearer_token")}, env, base)
    token = options.secret("bearer_token", required=False)
    for key, message in options.problems:
        findings.error(m.line_of(key), join(path, key), message)
    basic = None
    if m.get("basic_auth") is not None:
        where = join(path, "basic_auth")
        b = expect_mapping(findings, m["basic_auth"], m.line_of("basic_auth"), where)
        if b is not None:
            check_keys(findings, b, BASIC_AUTH_KEYS, where)
            user = get_str(findings, b, "username", where) or ""
            secret = SinkOptions(dict(b), env, base)
            password = secret.secret("password")
            for key, message in secret.problems:
                findings.error(b.line_of(key), join(where, key), message)
            if user and password:
                basic = basic_auth(user, password)
    if token and basic:
        findings.error(
            m.line_of("basic_auth"), join(path, "basic_auth"), "give a bearer token or basic_auth"
        )
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {"Authorization": basic} if basic else {}


def _sinks(
    findings: Findings,
    m: LocDict,
    env: Mapping[str, str],
    base: Path,
    kinds: Mapping[str, SinkKind],
) -> dict[str, SinkSpec]:
    if m.get("sinks") is None:
        return {}
    section = expect_mapping(findings, m["sinks"], m.line_of("sinks"), "connectors.sinks")
    sinks: dict[str, SinkSpec] = {}
    for name, value in (section or {}).items():
        path = join("connectors.sinks", name)
        s = expect_mapping(findings, value, section.line_of(name) if section else 0, path)
        if s is None:
            continue
        spec = _sink(findings, str(name), s, path, env, base, kinds)
        if spec is not None:
            sinks[spec.name] = spec
    return sinks


def _sink(
    findings: Findings,
    name: str,
    s: LocDict,
    path: str,
    env: Mapping[str, str],
    base: Path,
    kinds: Mapping[str, SinkKind],
) -> SinkSpec | None:
    kind_name = get_str(findings, s, "type", path)
    kind = kinds.get(kind_name or "")
    if kind is None:
        known = ", ".join(sorted(kinds)) or "none installed"
        findings.error(s.line_of("type"), join(path, "type"), f"expected a sink type ({known})")
        return None
    options = {k: v for k, v in s.items() if k not in COMMON_SINK_KEYS}
    timeout = convert(findings, s, "timeout", path, timedelta(seconds=10), parse_duration)
    backoff = convert(findings, s, "backoff", path, timedelta(seconds=2), parse_duration)
    ceiling = convert(findings, s, "max_backoff", path, timedelta(minutes=10), parse_duration)
    max_attempts = _count(findings, s, "max_attempts", path, 12)
    concurrency = _count(findings, s, "concurrency", path, 4)
    try:
        kind.build(SinkOptions(options, env, base), SinkEnv(_no_session, timeout.total_seconds()))
    except SinkConfigError as exc:
        for key, message in exc.problems:
            findings.error(s.line_of(key), join(path, key), message)
        return None
    return SinkSpec(
        name=name,
        kind=kind.kind,
        options=options,
        base=base,
        environ=env,
        timeout_s=timeout.total_seconds(),
        max_attempts=max_attempts,
        concurrency=concurrency,
        backoff_s=backoff.total_seconds(),
        max_backoff_s=max(ceiling, backoff).total_seconds(),
    )


def _count(findings: Findings, m: LocDict, key: str, path: str, default: int) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        findings.error(
            m.line_of(key), join(path, key), f"expected a positive integer, got {value!r}"
        )
        return default
    return value


def _routes(findings: Findings, top: LocDict, sinks: set[str]) -> tuple[Route, ...]:
    if top.get("routes") is None:
        return ()
    items = expect_list(findings, top["routes"], top.line_of("routes"), "routes")
    routes: list[Route] = []
    for index, item in enumerate(items or LocList()):
        path = join("routes", index)
        m = expect_mapping(findings, item, items.line_of(index) if items else 0, path)
        if m is None:
            continue
        route = _route(findings, m, path, sinks)
        if route is None:
            continue
        if any(r.name == route.name for r in routes):
            findings.error(m.line_of("name"), join(path, "name"), f"route {route.name!r} twice")
        routes.append(route)
    return tuple(routes)


def _route(findings: Findings, m: LocDict, path: str, sinks: set[str]) -> Route | None:
    check_keys(findings, m, ROUTE_KEYS, path)
    name = get_str(findings, m, "name", path)
    if not name:
        findings.error(m.line, join(path, "name"), "every route needs a name")
        return None
    to = get_str_list(findings, m, "to", path) if isinstance(m.get("to"), LocList) else []
    if isinstance(m.get("to"), str):
        to = [m["to"]]
    if not to:
        findings.error(m.line_of("to"), join(path, "to"), "name at least one sink")
    for sink in to:
        if sink not in sinks:
            known = ", ".join(sorted(sinks)) or "none configured"
            findings.error(m.line_of("to"), join(path, "to"), f"no sink {sink!r} ({known})")
    events = get_str_list(findings, m, "events", path) if "events" in m else list(EVENTS)
    for event in events:
        if event not in EVENTS:
            findings.error(
                m.line_of("events"),
                join(path, "events"),
                f"unknown event {event!r} (expected {', '.join(EVENTS)})",
            )
    after = convert(findings, m, "after", path, None, parse_duration)
    unless = get_str(findings, m, "unless", path)
    if unless is not None and unless not in UNLESS:
        findings.error(m.line_of("unless"), join(path, "unless"), f"expected {' or '.join(UNLESS)}")
    if unless is not None and after is None:
        findings.error(m.line_of("unless"), join(path, "unless"), "needs `after`")
    cont = m.get("continue", False)
    if not isinstance(cont, bool):
        findings.error(m.line_of("continue"), join(path, "continue"), "expected true or false")
    return Route(
        name=name,
        match=_selectors(findings, m, path),
        events=frozenset(events),
        to=tuple(to),
        continue_=cont is True,
        after=after,
        unless=unless,
    )


def _selectors(findings: Findings, m: LocDict, path: str) -> tuple[Selector, ...]:
    value = m.get("match", "{}")
    if not isinstance(value, str | LocList) or not all(isinstance(v, str) for v in value or []):
        findings.error(m.line_of("match"), join(path, "match"), "expected a selector or a list")
        return ()
    try:
        return parse_selectors(list(value) if isinstance(value, LocList) else value)
    except MatcherError as exc:
        findings.error(m.line_of("match"), join(path, "match"), f"invalid matcher: {exc}")
        return ()


def build_sink(spec: SinkSpec, kinds: Mapping[str, SinkKind], env: SinkEnv) -> Sink:
    """The configured sink for run time, from the environment the config was read with
    (loading the config built it once already, so this does not fail)."""
    return kinds[spec.kind].build(SinkOptions(spec.options, spec.environ, spec.base), env)
