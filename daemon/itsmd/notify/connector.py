"""The interface a notification sink implements (docs/connectors.md, "Writing a sink").

A sink kind is one module in `itsmd_connectors.sinks` (or any other package)
that exposes a `SinkKind` under the entry point group `itsmd.sinks`; the core
finds kinds only through that group, so a new sink touches no core module.

A kind turns its config options into a `Sink` (checking them all at load, with
an error per key) and the sink turns one `Notification` into one `Delivery`:
`Delivered` (the peer took it: never sent again), `Retry` (worth trying again
later) or `Failed` (permanent: straight to the dead letters). The outbox does
retries, backoff, ordering, timeouts and bookkeeping; a sink sends once. The
helpers from `http_delivery` on are for sink authors: requests, answers, times, URLs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from itsmd.durations import format_time, parse_duration

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "itsmd.sinks"
EVENTS = (
    "opened",
    "acknowledged",
    "resolved",
    "reopened",
    "assigned",
    "commented",
    "sla_breached",
    "problem_opened",
    "problem_resolved",
)
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True)
class Notification:
    """One event for one sink, as stored in the outbox.

    `incident` is the Incident JSON of the API at the moment of the event (None
    for problem events); `problem` is the Problem JSON for problem events.
    `ref` is what this sink returned for an earlier event of the same incident
    (a ServiceNow sys_id, a Jira issue key), None before the first delivery.
    """

    event_id: str  # idempotency key: the same on every retry
    event: str  # one of EVENTS
    at: datetime
    incident: Mapping[str, Any] | None
    problem: Mapping[str, Any] | None = None
    link: str = ""  # where a human reads the incident or problem
    ref: str | None = None
    attempt: int = 1

    @property
    def subject_id(self) -> str:
        """ "INC-42" or "PRB-7": what the event is about."""
        doc = self.incident if self.incident is not None else self.problem
        return str(doc["id"]) if doc is not None else ""


@dataclass(frozen=True, slots=True)
class Delivered:
    ref: str | None = None  # remember for later events of the same incident
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    after_s: float | None = None  # the peer asked for a delay (Retry-After)


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Delivery = Delivered | Retry | Failed


class Sink(Protocol):
    async def send(self, notification: Notification) -> Delivery: ...


@dataclass(frozen=True, slots=True)
class SinkEnv:
    """What a sink may use at run time; built by the composition root."""

    http: Callable[[], aiohttp.ClientSession]  # a shared session, created lazily
    timeout_s: float = 10.0


class SinkFactory(Protocol):
    def __call__(self, options: SinkOptions, env: SinkEnv) -> Sink: ...


@dataclass(frozen=True, slots=True)
class SinkKind:
    kind: str  # the `type:` of a sink instance in the config
    build: SinkFactory
    doc: str = ""  # one line for `docs/connectors.md` and `config check`


class SinkConfigError(ValueError):
    """Options of one sink instance are invalid; `problems` are (key, message) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems))


@dataclass
class SinkOptions:
    """The options of one sink instance, read by typed getters that collect problems.

    A secret option `x` is given as `x_env` (an environment variable) or `x_file`
    (a file, relative to the config file); never inline. Call `done()` last: it
    reports unknown keys and raises `SinkConfigError` when anything was wrong.
    """

    values: Mapping[str, Any]
    environ: Mapping[str, str] = field(default_factory=dict)
    base: Path = Path()
    problems: list[tuple[str, str]] = field(default_factory=list)
    _read: set[str] = field(default_factory=set)

    def text(self, key: str, default: str | None = None) -> str:
        self._read.add(key)
        value = self.values.get(key, default)
        if value is None:
            self.problems.append((key, "required"))
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problems.append((key, f"expected a non-empty string, got {value!r}"))
            return ""
        return value

    def optional_text(self, key: str) -> str | None:
        if key in self.values:
            return self.text(key)
        self._read.add(key)
        return None

    def integer(self, key: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
        self._read.add(key)
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.problems.append((key, f"expected an integer from {lo} to {hi}, got {value!r}"))
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        self._read.add(key)
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            self.problems.append((key, f"expected true or false, got {value!r}"))
            return default
        return value

    def seconds(self, key: str, default: str) -> float:
        self._read.add(key)
        value = self.values.get(key, default)
        try:
            return parse_duration(str(value)).total_seconds()
        except ValueError as exc:
            self.problems.append((key, str(exc)))
            return parse_duration(default).total_seconds()

    def texts(self, key: str, default: list[str] | None = None) -> list[str]:
        self._read.add(key)
        value = self.values.get(key, default)
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            self.problems.append((key, f"expected a non-empty list of strings, got {value!r}"))
            return []
        return list(value)

    def mapping(self, key: str) -> dict[str, str]:
        self._read.add(key)
        value = self.values.get(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.problems.append((key, "expected a mapping of strings to strings"))
            return {}
        return dict(value)

    def secret(self, key: str, required: bool = True) -> str | None:
        """`key_env` or `key_file`; the inline `key` is refused."""
        env_key, file_key = f"{key}_env", f"{key}_file"
        self._read.update((key, env_key, file_key))
        if key in self.values:
            self.problems.append((key, f"secrets are never inline: use {env_key} or {file_key}"))
            return None
        var, file = self.values.get(env_key), self.values.get(file_key)
        if var is None and file is None:
            if required:
                self.problems.append((key, f"give {env_key} or {file_key}"))
            return None
        if var is not None and file is not None:
            self.problems.append((key, f"give only one of {env_key} and {file_key}"))
            return None
        if var is not None:
            value = self.environ.get(str(var), "")
            if not value:
                self.problems.append((env_key, f"environment variable {var} is not set or empty"))
            return value or None
        try:
            value = (self.base / str(file)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.problems.append((file_key, f"cannot read {file}: {exc.strerror}"))
            return None
        if not value:
            self.problems.append((file_key, f"{file} is empty"))
        return value or None

    def api_url(self, key: str) -> str:
        """The root URL of an API the sink sends credentials to, without a trailing
        slash: https (plain http only to loopback, for tests), no query or fragment."""
        url = self.text(key)
        parts = urlsplit(url) if is_http_url(url, loopback_http_only=True) else None
        if url and (parts is None or parts.query or parts.fragment):
            self.fail(key, f"expected an https:// URL (http:// only to loopback), got {url!r}")
        return url.rstrip("/")

    def basic_auth(self, user_key: str, secret_key: str) -> str:
        """The `Authorization` value for the user `user_key` and the secret `secret_key`."""
        user = self.text(user_key)
        if ":" in user:
            self.fail(user_key, "a Basic auth user name has no ':'")
        secret = self.secret(secret_key) or ""
        return "" if ":" in user else basic_auth(user, secret)

    def bearer_auth(self, key: str) -> str | None:
        """The `Authorization` value `Bearer <token>` for the secret option `key`
        (`key_env` / `key_file`), None when neither is given. A token with a space or
        a control character is refused here: it would break the header at send time."""
        token = self.secret(key, required=False)
        if token is None:
            return None
        if not token.isprintable() or any(c.isspace() for c in token):
            self.fail(key, "a bearer token has no spaces or control characters (not shown)")
            return None
        return f"Bearer {token}"

    def fail(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def done(self) -> None:
        for key in sorted(set(self.values) - self._read):
            self.problems.append((key, "unknown option"))
        if self.problems:
            raise SinkConfigError(self.problems)


def http_delivery(status: int, body: str, retry_after: str | None = None) -> Delivery:
    """The usual reading of an HTTP answer: 2xx delivered; 408, 429 and 5xx worth a
    retry (honouring Retry-After in seconds); any other status is permanent."""
    if 200 <= status < 300:
        return Delivered()
    reason = f"HTTP {status}: {body[:200].strip()}"
    if status in (408, 429) or status >= 500:
        after = float(retry_after) if retry_after and retry_after.isdigit() else None
        return Retry(reason, after)
    return Failed(reason)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer as a sink reads it; `text` is the body, bad bytes replaced."""

    status: int
    text: str
    retry_after: str | None = None  # the Retry-After header

    def delivery(self) -> Delivery:
        """The answer read by `http_delivery`."""
        return http_delivery(self.status, self.text, self.retry_after)

    def json(self) -> Any:
        """The decoded body, None when it is not JSON."""
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError:
            return None


async def http_request(
    env: SinkEnv,
    method: str,
    url: str,
    body: object = None,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """One request through `env.http()`, bounded by `env.timeout_s`: `body` is sent as
    given when bytes, else (when not None) as JSON with its Content-Type. Redirects
    are not followed: a 3xx means a wrong URL, and is reported as such. Raises
    `TimeoutError` or `aiohttp.ClientError`: see `guard_transport`."""
    if body is not None and not isinstance(body, bytes):
        body, headers = orjson.dumps(body), {**(headers or {}), "Content-Type": "application/json"}
    async with env.http().request(
        method,
        url,
        params=params,
        data=body,
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=env.timeout_s),
    ) as response:
        text = await response.text(errors="replace")
        return HttpAnswer(response.status, text, response.headers.get("Retry-After"))


async def guard_transport(env: SinkEnv, work: Awaitable[Delivery], peer: str = "") -> Delivery:
    """What `work` (a sink's requests) delivers, or a `Retry` when a request timed out
    or failed in transport; `peer` (e.g. "Slack") names the other side."""
    try:
        return await work
    except TimeoutError:
        return Retry(f"no answer{f' from {peer}' if peer else ''} within {env.timeout_s:g}s")
    except aiohttp.ClientError as exc:
        return Retry(describe_transport_error(exc, peer))


async def http_post(
    env: SinkEnv, url: str, body: object, headers: Mapping[str, str] | None = None, peer: str = ""
) -> Delivery:
    """One POST (see `http_request`) read by `http_delivery`, under `guard_transport`."""

    async def post() -> Delivery:
        return (await http_request(env, "POST", url, body, headers=headers)).delivery()

    return await guard_transport(env, post(), peer)


def describe_transport_error(exc: aiohttp.ClientError, peer: str = "") -> str:
    """Why a request failed, never showing the URL: its path or query may hold a token."""
    if isinstance(exc, aiohttp.ClientConnectionError) and str(exc):
        return str(exc)  # "Cannot connect to host h:443 ...": host and port only
    return f"request{f' to {peer}' if peer else ''} failed: {type(exc).__name__}"


def rfc3339(moment: datetime, *, fraction: bool = True) -> str:
    """`moment` as the API writes times (UTC with a `Z`, microseconds only when
    present: `format_time`); `fraction=False` cuts it to whole seconds."""
    return format_time(moment if fraction else moment.astimezone(UTC).replace(microsecond=0))


def is_http_url(url: str, *, loopback_http_only: bool = False) -> bool:
    """An absolute http:// or https:// URL with a host; with `loopback_http_only`
    (a peer that gets credentials), plain http:// only to 127.0.0.1, ::1 or localhost."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed port or IPv6 host
        return False
    if parts.scheme == "http" and loopback_http_only:
        return host in LOOPBACK
    return parts.scheme in ("http", "https") and bool(host)


def basic_auth(user: str, secret: str) -> str:
    """The `Authorization` header value for HTTP Basic auth (RFC 7617); `user` has no ':'."""
    return aiohttp.encode_basic_auth(user, secret)


def installed_kinds() -> dict[str, SinkKind]:
    """Every sink kind registered under the `itsmd.sinks` entry point group."""
    kinds: dict[str, SinkKind] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            kind = ep.load()
        except Exception:
            log.exception("cannot load sink kind %r from %s", ep.name, ep.value)
            continue
        if isinstance(kind, SinkKind) and kind.kind == ep.name:
            kinds[kind.kind] = kind
        else:
            log.error("entry point %r (%s) is not a SinkKind named %r", ep.name, ep.value, ep.name)
    return kinds
