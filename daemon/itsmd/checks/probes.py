"""Availability probes: one HTTP, TCP, DNS or disk measurement, as a plain `Probe`.

The I/O edge of checks (docs/rules.md, checks): each probe takes plain parameters and
returns what it saw; the pure check logic (thresholds, consecutive failures,
certificate expiry warnings) decides what that means. A failing target is a result,
never an exception: a probe raises only for a programming error (a bad argument).
Errors read the way an SRE would say them ("HTTP 503, expected 200", "connection
refused", "timed out after 5s") because they end up verbatim in alerts. Network
probes are bounded by `timeout_s`; durations come from the monotonic
`time.perf_counter`, so a clock step never makes a probe look slow.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import math
import os
import shutil
import socket
import ssl as ssl_module  # `ssl` is a parameter name below, as in aiohttp
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

import aiohttp
from yarl import URL

MAX_BODY_BYTES = 1 << 20  # a health page is small; `body_regex` sees at most this much
DnsFamily = Literal["A", "AAAA"]
_FAMILIES: dict[DnsFamily | None, int] = {
    None: socket.AF_UNSPEC,
    "A": socket.AF_INET,
    "AAAA": socket.AF_INET6,
}


class BodyPattern(Protocol):
    """A regex that `body_regex` searches for (`itsmd.correlation.matchers.Regex`: RE2,
    linear in the body's length whatever the pattern)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    duration_s: float
    error: str = ""  # why not ok, one line
    cert_not_after: datetime | None = None  # UTC; https probes with want_cert only


# --- HTTP ------------------------------------------------------------------------------


async def probe_http(
    session: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    expect_status: Collection[int] | None = None,
    body_regex: BodyPattern | None = None,
    max_latency_s: float | None = None,
    timeout_s: float,
    want_cert: bool = False,
    ssl: ssl_module.SSLContext | None = None,
) -> Probe:
    """One request; ok when the status, body and latency are as expected.

    `expect_status=None` accepts any 2xx; redirects are followed. The duration covers
    the whole answer (body included), so `max_latency_s` is what a user waits.
    Certificates are always verified (`ssl` replaces the default trust, e.g. a private
    CA). With `want_cert`, an https probe that got an answer also reports the
    certificate's `notAfter` of the server that gave it.
    """
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            status, body, final_url = await _fetch(session, url, method, headers, ssl)
    except TimeoutError:
        return Probe(False, time.perf_counter() - started, f"timed out after {timeout_s:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return Probe(False, time.perf_counter() - started, _http_failure(exc))
    duration_s = time.perf_counter() - started
    error = _verdict(status, body, duration_s, expect_status, body_regex, max_latency_s)
    cert = None
    if want_cert and final_url.scheme == "https":
        cert = await _handshake_cert(final_url, ssl, deadline)
    return Probe(not error, duration_s, error, cert)


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    headers: Mapping[str, str] | None,
    ssl: ssl_module.SSLContext | None,
) -> tuple[int, str, URL]:
    """Status, (capped) body text and final URL (after redirects) of one answer."""
    async with session.request(
        method, url, headers=headers, ssl=ssl if ssl is not None else True
    ) as response:
        return response.status, await _read_text(response), response.url


async def _handshake_cert(
    url: URL, ssl: ssl_module.SSLContext | None, deadline: float
) -> datetime | None:
    """`notAfter` from a TLS handshake of our own; None when that fails.

    aiohttp releases the connection as soon as a (small) body is in, so the
    response cannot be asked; one more handshake per probe interval is cheap.
    The HTTP answer decides whether the probe is ok, so a failure here is not one.
    """
    host = url.raw_host or ""
    context = ssl if ssl is not None else _system_trust()
    try:
        async with asyncio.timeout_at(deadline):
            _, writer = await asyncio.open_connection(
                host, url.port or 443, ssl=context, server_hostname=host
            )
    except (OSError, TimeoutError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return _not_after(ssl_object.getpeercert() if ssl_object is not None else None)
    finally:
        await _close(writer, deadline)


@functools.cache
def _system_trust() -> ssl_module.SSLContext:
    """The system's verifying context, built once on first use (loading takes ~20 ms)."""
    return ssl_module.create_default_context()


async def _close(writer: asyncio.StreamWriter, deadline: float) -> None:
    """Close politely (TLS close_notify) until the deadline, then abort."""
    writer.close()
    try:
        async with asyncio.timeout_at(deadline):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:  # the peer dropped the connection first: closed all the same
        pass


def _not_after(peer_cert: object) -> datetime | None:
    """`notAfter` of `SSLObject.getpeercert()` (empty unless the cert was verified)."""
    value = peer_cert.get("notAfter") if isinstance(peer_cert, dict) else None
    if not isinstance(value, str):
        return None
    return datetime.fromtimestamp(ssl_module.cert_time_to_seconds(value), UTC)


async def _read_text(response: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES and (chunk := await response.content.readany()):
        chunks.append(chunk)
        size += len(chunk)
    charset = response.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:  # a made-up charset in Content-Type: match what we can
        charset = "utf-8"
    return b"".join(chunks)[:MAX_BODY_BYTES].decode(charset, "replace")


def _verdict(
    status: int,
    body: str,
    duration_s: float,
    expect_status: Collection[int] | None,
    body_regex: BodyPattern | None,
    max_latency_s: float | None,
) -> str:
    """The first expectation the answer misses, or "" when it meets them all."""
    if expect_status is None:
        if not 200 <= status < 300:
            return f"HTTP {status}, expected 2xx"
    elif status not in expect_status:
        return f"HTTP {status}, expected {_one_of(sorted(expect_status))}"
    if body_regex is not None and not body_regex.search(body):
        return f"body does not match '{body_regex.pattern}'"
    if max_latency_s is not None and duration_s > max_latency_s:
        return f"took {duration_s:.2f}s, more than {max_latency_s:g}s"
    return ""


def _one_of(codes: list[int]) -> str:
    if len(codes) == 1:
        return str(codes[0])
    return ", ".join(map(str, codes[:-1])) + f" or {codes[-1]}"


def _http_failure(exc: aiohttp.ClientError | OSError) -> str:
    """Why no answer came, without the URL (the check names its target already)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", "") or str(cert_error)
        return f"TLS: certificate verify failed: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"TLS: {getattr(exc.os_error, 'reason', None) or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_failure(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientResponseError):  # too many redirects, bad headers
        return f"bad HTTP answer: {exc.message}"
    if isinstance(exc, OSError):
        return _os_failure(exc)
    return str(exc) or type(exc).__name__


def _os_failure(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve: {exc.strerror}"
    return exc.strerror or str(exc) or type(exc).__name__


# --- TCP, DNS, disk ------------------------------------------------------------------------


async def probe_tcp(host: str, port: int, timeout_s: float) -> Probe:
    """Connect, then close at once: ok when something accepts on host:port."""
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Probe(False, time.perf_counter() - started, f"timed out after {timeout_s:g}s")
    except OSError as exc:
        return Probe(False, time.perf_counter() - started, _os_failure(exc))
    duration_s = time.perf_counter() - started
    await _close(writer, deadline)
    return Probe(True, duration_s)


async def probe_dns(
    name: str,
    timeout_s: float,
    *,
    expect: Collection[str] = (),
    family: DnsFamily | None = None,
) -> Probe:
    """Resolve `name` as the host does (getaddrinfo: /etc/hosts, then DNS).

    Ok when it resolves and every address in `expect` is among the answers (extra
    answers are fine). Addresses compare as IPs, so "::1" equals "0::1". An `expect`
    entry that is not an IP address is a programming error (ValueError).
    """
    wanted = [ipaddress.ip_address(address) for address in expect]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(
                name, None, family=_FAMILIES[family], type=socket.SOCK_STREAM
            )
    except TimeoutError:
        return Probe(False, time.perf_counter() - started, f"timed out after {timeout_s:g}s")
    except OSError as exc:
        return Probe(False, time.perf_counter() - started, f"cannot resolve {name}: {exc.strerror}")
    duration_s = time.perf_counter() - started
    found = {ipaddress.ip_address(str(info[4][0])) for info in infos}
    missing = [str(address) for address in wanted if address not in found]
    if not found:
        return Probe(False, duration_s, f"{name} has no {family or 'address'} records")
    if missing:
        got = ", ".join(sorted(map(str, found)))
        return Probe(False, duration_s, f"{name} resolves to {got}, missing {', '.join(missing)}")
    return Probe(True, duration_s)


def probe_disk(path: str | os.PathLike[str]) -> tuple[Probe, float]:
    """The probe and the free ratio (0..1) of the filesystem holding `path`.

    "Free" is what an unprivileged process may still use (statvfs f_bavail), the
    same as node_exporter's `node_filesystem_avail_bytes / node_filesystem_size_bytes`.
    The ratio is NaN when the probe fails, so no threshold compares true on it.
    Synchronous (one statvfs): a hung network mount blocks the caller's thread.
    """
    started = time.perf_counter()
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        error = f"{os.fspath(path)}: {exc.strerror or exc}"
        return Probe(False, time.perf_counter() - started, error), math.nan
    duration_s = time.perf_counter() - started
    if usage.total <= 0:
        return Probe(False, duration_s, f"{os.fspath(path)}: filesystem size is 0"), math.nan
    return Probe(True, duration_s), usage.free / usage.total
