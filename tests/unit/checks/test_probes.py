"""Probes against real targets on loopback: aiohttp (plain and TLS), sockets, the resolver, disks.

The HTTPS targets use certificates from a trustme CA, so expiry and verification are
the real thing. A hanging handler waits for an event set at teardown: timeouts are
met without sleeping; only the slow-answer case sleeps (a tenth of a second).
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from itsmd.checks.probes import DnsFamily, Probe, probe_disk, probe_dns, probe_http, probe_tcp

SLOW_ANSWER_S = 0.1
RELEASE = web.AppKey("release", asyncio.Event)

StartHttps = Callable[..., Awaitable[str]]


# --- targets ------------------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _degraded(request: web.Request) -> web.Response:
    return web.json_response({"status": "degraded"})


async def _unavailable(request: web.Request) -> web.Response:
    return web.Response(status=503, text="maintenance")


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_ANSWER_S)
    return web.Response(text="late")


async def _hang(request: web.Request) -> web.Response:
    await request.app[RELEASE].wait()
    return web.Response(text="too late")


async def _token(request: web.Request) -> web.Response:
    return web.Response(status=200 if request.headers.get("X-Token") == "t0k" else 401)


def target_app() -> web.Application:
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/degraded", _degraded)
    app.router.add_get("/unavailable", _unavailable)
    app.router.add_get("/empty", _empty)
    app.router.add_get("/moved", _moved)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/hang", _hang)
    app.router.add_get("/token", _token)
    app.router.add_post("/submit", _ok)
    return app


class Sites:
    """Started servers, stopped at teardown (hanging handlers released first)."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []

    async def start(self, scheme: str = "http", context: ssl.SSLContext | None = None) -> str:
        app = target_app()
        runner = web.AppRunner(app)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        return f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"

    async def close(self) -> None:
        for runner in self._runners:
            runner.app[RELEASE].set()
            await runner.cleanup()


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    sites = Sites()
    try:
        yield sites
    finally:
        await sites.close()


@pytest.fixture
async def base_url(sites: Sites) -> str:
    return await sites.start()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that verifies as usual but trusts the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def start_https(sites: Sites, ca: trustme.CA) -> StartHttps:
    """Factory: `await start_https(*identities, not_before=..., not_after=...)` -> base URL."""

    async def start(
        *identities: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> str:
        cert = ca.issue_cert(
            *(identities or ("127.0.0.1",)), not_before=not_before, not_after=not_after
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return await sites.start("https", context)

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: a connection is refused for sure."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def in_seconds(moment: datetime) -> datetime:
    """What a certificate can hold: whole seconds, UTC."""
    return moment.astimezone(UTC).replace(microsecond=0)


# --- HTTP -----------------------------------------------------------------------------------


async def test_a_2xx_answer_is_ok_and_timed(session: aiohttp.ClientSession, base_url: str) -> None:
    probe = await probe_http(session, f"{base_url}/ok", timeout_s=2)
    assert probe == Probe(ok=True, duration_s=probe.duration_s)
    assert 0 < probe.duration_s < 2


@pytest.mark.parametrize(
    ("path", "expect_status", "error"),
    [
        ("/unavailable", None, "HTTP 503, expected 2xx"),
        ("/unavailable", {200}, "HTTP 503, expected 200"),
        ("/unavailable", {204, 200}, "HTTP 503, expected 200 or 204"),
        ("/ok", {301, 204, 302}, "HTTP 200, expected 204, 301 or 302"),
        ("/unavailable", {503}, ""),  # a maintenance page that must be up
        ("/empty", None, ""),
        ("/moved", {200}, ""),  # redirects are followed
    ],
)
async def test_the_status_must_be_expected(
    session: aiohttp.ClientSession,
    base_url: str,
    path: str,
    expect_status: set[int] | None,
    error: str,
) -> None:
    probe = await probe_http(session, base_url + path, expect_status=expect_status, timeout_s=2)
    assert (probe.ok, probe.error) == (not error, error)


async def test_the_body_must_match(session: aiohttp.ClientSession, base_url: str) -> None:
    pattern = re.compile(r'"status":\s*"ok"')
    ok = await probe_http(session, f"{base_url}/ok", body_regex=pattern, timeout_s=2)
    bad = await probe_http(session, f"{base_url}/degraded", body_regex=pattern, timeout_s=2)
    assert ok.ok
    assert (bad.ok, bad.error) == (False, """body does not match '"status":\\s*"ok"'""")


async def test_method_and_headers_are_sent(session: aiohttp.ClientSession, base_url: str) -> None:
    posted = await probe_http(session, f"{base_url}/submit", method="POST", timeout_s=2)
    with_token = await probe_http(
        session, f"{base_url}/token", headers={"X-Token": "t0k"}, timeout_s=2
    )
    without = await probe_http(session, f"{base_url}/token", timeout_s=2)
    assert (posted.ok, with_token.ok) == (True, True)
    assert without.error == "HTTP 401, expected 2xx"


async def test_a_slow_answer_fails_max_latency(
    session: aiohttp.ClientSession, base_url: str
) -> None:
    probe = await probe_http(session, f"{base_url}/slow", max_latency_s=0.05, timeout_s=2)
    assert not probe.ok
    assert probe.duration_s >= SLOW_ANSWER_S
    assert probe.error == f"took {probe.duration_s:.2f}s, more than 0.05s"


async def test_no_answer_times_out(session: aiohttp.ClientSession, base_url: str) -> None:
    probe = await probe_http(session, f"{base_url}/hang", timeout_s=0.2)
    assert (probe.ok, probe.error) == (False, "timed out after 0.2s")
    assert 0.2 <= probe.duration_s < 1


async def test_a_closed_port_is_refused(session: aiohttp.ClientSession, refused_port: int) -> None:
    probe = await probe_http(session, f"http://127.0.0.1:{refused_port}/", timeout_s=2)
    assert (probe.ok, probe.error) == (False, "connection refused")


# --- TLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ok", "/empty", "/unavailable"])
async def test_want_cert_reads_not_after(
    session: aiohttp.ClientSession,
    start_https: StartHttps,
    trusting: ssl.SSLContext,
    path: str,
) -> None:
    """Whatever the answer (an empty body, an error status), the certificate is read."""
    not_after = in_seconds(datetime.now(UTC) + timedelta(days=3))
    url = await start_https(not_after=not_after)
    probe = await probe_http(session, url + path, timeout_s=2, want_cert=True, ssl=trusting)
    assert probe.cert_not_after == not_after
    assert probe.ok == (path != "/unavailable")


async def test_no_cert_unless_wanted_or_https(
    session: aiohttp.ClientSession, start_https: StartHttps, trusting: ssl.SSLContext, base_url: str
) -> None:
    url = await start_https()
    unwanted = await probe_http(session, f"{url}/ok", timeout_s=2, ssl=trusting)
    plain = await probe_http(session, f"{base_url}/ok", timeout_s=2, want_cert=True)
    assert (unwanted.ok, unwanted.cert_not_after) == (True, None)
    assert (plain.ok, plain.cert_not_after) == (True, None)


async def test_an_untrusted_cert_fails_verification(
    session: aiohttp.ClientSession, start_https: StartHttps
) -> None:
    url = await start_https()
    probe = await probe_http(session, f"{url}/ok", timeout_s=2, want_cert=True)
    assert not probe.ok
    assert probe.error == "TLS: certificate verify failed: unable to get local issuer certificate"
    assert probe.cert_not_after is None


async def test_an_expired_cert_fails_verification(
    session: aiohttp.ClientSession, start_https: StartHttps, trusting: ssl.SSLContext
) -> None:
    now = datetime.now(UTC)
    url = await start_https(not_before=now - timedelta(days=2), not_after=now - timedelta(days=1))
    probe = await probe_http(session, f"{url}/ok", timeout_s=2, ssl=trusting)
    assert (probe.ok, probe.error) == (
        False,
        "TLS: certificate verify failed: certificate has expired",
    )


async def test_a_cert_for_another_name_fails_verification(
    session: aiohttp.ClientSession, start_https: StartHttps, trusting: ssl.SSLContext
) -> None:
    url = await start_https("api.example.test")
    probe = await probe_http(session, f"{url}/ok", timeout_s=2, ssl=trusting)
    assert not probe.ok
    assert probe.error.startswith("TLS: certificate verify failed: IP address mismatch")


# --- TCP, DNS, disk ------------------------------------------------------------------------------


async def test_tcp_open_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        probe = await probe_tcp("127.0.0.1", listener.getsockname()[1], timeout_s=2)
    assert probe == Probe(ok=True, duration_s=probe.duration_s)


async def test_tcp_closed_port(refused_port: int) -> None:
    probe = await probe_tcp("127.0.0.1", refused_port, timeout_s=2)
    assert (probe.ok, probe.error) == (False, "connection refused")


@pytest.mark.parametrize(
    ("name", "family", "expect", "error"),
    [
        ("localhost", None, ["127.0.0.1"], ""),
        ("localhost", "A", ["127.0.0.1"], ""),
        (
            "localhost",
            "A",
            ["127.0.0.1", "10.9.9.9"],
            "localhost resolves to 127.0.0.1, missing 10.9.9.9",
        ),
        ("::1", "AAAA", ["0:0::1"], ""),  # compared as addresses, not strings
    ],
)
async def test_dns_expected_addresses(
    name: str, family: DnsFamily | None, expect: list[str], error: str
) -> None:
    probe = await probe_dns(name, 2, expect=expect, family=family)
    assert (probe.ok, probe.error) == (not error, error)


async def test_dns_unknown_name() -> None:
    probe = await probe_dns("nonexistent.invalid", 2)
    assert not probe.ok
    # NXDOMAIN's wording depends on the libc ("Name or service not known", "No address
    # associated with hostname"); a machine without any DNS server may time out instead.
    assert probe.error.startswith("cannot resolve nonexistent.invalid: ") or probe.error == (
        "timed out after 2s"
    )


async def test_dns_expectation_must_be_an_address() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        await probe_dns("localhost", 2, expect=["db.internal"])


def test_disk_free_ratio(tmp_path: Path) -> None:
    probe, ratio = probe_disk(tmp_path)
    usage = shutil.disk_usage(tmp_path)
    assert probe.ok
    assert 0 < ratio <= 1
    assert ratio == pytest.approx(usage.free / usage.total, abs=0.01)


def test_disk_missing_path(tmp_path: Path) -> None:
    probe, ratio = probe_disk(tmp_path / "gone")
    assert (probe.ok, probe.error) == (False, f"{tmp_path / 'gone'}: No such file or directory")
    assert math.isnan(ratio)
