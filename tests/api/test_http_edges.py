"""The edges of HTTP (docs/api.md): wrong methods, aiohttp's own errors, bodies that
cannot be read, clients that hang up, and query parameters no parser expected.
Whatever a client sends, the answer is JSON with a 4xx naming what is wrong, never
a 500, and the daemon's log holds no traceback for it."""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import inspect
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from itsmd.api.errors import errors_middleware
from itsmd.config import Role, Settings, Token
from itsmd.server.app import build_app
from tests.api.api_support import (
    DEFAULT_RULES,
    INCIDENTS,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    raw_body,
)
from tests.api.conftest import rule_set
from tests.conftest import async_wait_until, get_free_port

MAINTENANCE = "/api/v1/maintenance"
ADMIN = Token("root", Role.ADMIN, "s3cret-admin-0123456789")
JSON = {"Content-Type": "application/json"}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN.secret}"}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every ERROR logged (aiohttp's "Error handling request" and ours), with any
    traceback it carried."""
    return [
        f"{r.name}: {r.getMessage()}" + (" (with traceback)" if r.exc_info else "")
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]


async def _json_error(resp: Any, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, f"{resp.method} {resp.url.path} -> {resp.status}: {text}"
    assert resp.content_type == "application/json", text
    body: dict[str, Any] = json.loads(text)
    assert set(body) == {"error", "detail"}, body
    return body


# ---- wrong methods: 405 with Allow


WRONG_METHODS = [
    ("POST", "/metrics", ["GET", "HEAD"]),
    ("PUT", "/-/ready", ["GET", "HEAD"]),
    ("GET", "/-/reload", ["POST"]),
    ("PUT", "/api/v1/alerts", ["GET", "HEAD", "POST"]),
    ("GET", WEBHOOK, ["POST"]),
    ("DELETE", INCIDENTS, ["GET", "HEAD"]),
    ("OPTIONS", INCIDENTS, ["GET", "HEAD"]),
    ("OPTIONS", "/metrics", ["GET", "HEAD"]),
    ("PATCH", f"{MAINTENANCE}/db-upgrade", ["DELETE"]),
]


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
async def test_a_wrong_method_is_a_405_naming_the_allowed_ones(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    allowed: list[str],
) -> None:
    client = await make_client()

    resp = await client.request(method, path)

    body = await _json_error(resp, 405)
    assert resp.headers["Allow"] == ",".join(allowed)
    assert body["detail"] == {"allowed": allowed}
    assert method in body["error"]
    assert path in body["error"]
    assert _errors(caplog) == []


async def test_a_wrong_method_with_tokens_is_a_405_once_authenticated(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(tokens=(ADMIN,))

    public = await client.post("/metrics")  # needs no token
    assert (await _json_error(public, 405))["detail"] == {"allowed": ["GET", "HEAD"]}
    anonymous = await client.options(INCIDENTS)  # who asks is checked first
    await _json_error(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    admin = await client.options(INCIDENTS, headers=AS_ADMIN)
    await _json_error(admin, 405)
    assert admin.headers["Allow"] == "GET,HEAD"
    assert _errors(caplog) == []


async def test_an_unknown_path_is_a_json_404(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    for method in ("GET", "POST", "OPTIONS"):
        body = await _json_error(await client.request(method, "/api/v1/nothing"), 404)
        assert "/api/v1/nothing" in body["error"]
    assert _errors(caplog) == []


def _http_exceptions() -> list[type[web.HTTPException]]:
    """Every aiohttp HTTPException class that answers an error (4xx, 5xx)."""
    found = []
    for _, kind in inspect.getmembers(web, inspect.isclass):
        if issubclass(kind, web.HTTPException) and getattr(kind, "status_code", 0) >= 400:
            found.append(kind)
    assert len(found) > 30
    return found


def _raise(kind: type[web.HTTPException]) -> web.HTTPException:
    if kind is web.HTTPMethodNotAllowed:
        return kind("PUT", ["GET", "POST"])
    if kind is web.HTTPRequestEntityTooLarge:
        return kind(max_size=10, actual_size=20)
    if kind is web.HTTPUnavailableForLegalReasons:
        return kind(link="https://example.com/why")
    return kind(headers={"X-Kept": "yes"})


async def test_every_aiohttp_error_passes_the_middleware_as_json(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = {kind.__name__: kind for kind in _http_exceptions()}

    async def handler(request: web.Request) -> web.Response:
        raise _raise(kinds[request.match_info["name"]])

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_route("*", "/{name}", handler)
    client = await aiohttp_client(app)

    for name, kind in kinds.items():
        resp = await client.get(f"/{name}")
        body = await _json_error(resp, kind.status_code)
        assert body["error"], name
        if kind is web.HTTPMethodNotAllowed:
            assert resp.headers["Allow"] == "GET,POST"
            assert body["detail"] == {"allowed": ["GET", "POST"]}
        elif kind is web.HTTPRequestEntityTooLarge:
            assert "10" in body["error"]
        elif kind is not web.HTTPUnavailableForLegalReasons:
            assert resp.headers.get("X-Kept") == "yes", name
    assert _errors(caplog) == []


# ---- parameters and bodies that no parser expected: 400 naming them


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_PARAMETERS = [
    (INCIDENTS, "cursor", _cursor(f"id:{2**63}")),
    (INCIDENTS, "cursor", _cursor(f"id:{2**31}")),  # ids are 32-bit on PostgreSQL
    (INCIDENTS, "cursor", _cursor(f"id:{10**40}")),
    (INCIDENTS, "cursor", _cursor("id:\u0661\u0662")),  # Arabic-Indic digits
    (INCIDENTS, "cursor", "ünïcode"),
    ("/api/v1/problems", "cursor", _cursor(f"id:{2**63}")),
    ("/api/v1/notifications", "cursor", _cursor(f"id:{2**64}")),
    (INCIDENTS, "since", "100000y"),
    (INCIDENTS, "since", "99999999999999999999d"),
    (INCIDENTS, "limit", "\u0661\u0660"),
    (INCIDENTS, "q", "disk\x00"),
    (INCIDENTS, "service", "\x00"),
]


@pytest.mark.parametrize(("path", "name", "value"), BAD_PARAMETERS)
async def test_a_parameter_out_of_every_range_is_a_400_naming_it(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    path: str,
    name: str,
    value: str,
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))

    body = await _json_error(await client.get(path, params={name: value}), 400)

    assert body["error"].startswith(f"{name}:"), body
    assert _errors(caplog) == []


def _nested(depth: int) -> bytes:
    return ('{"name": "deep", "match": ' + "[" * depth + "]" * depth + "}").encode()


BAD_BODIES = [
    pytest.param(MAINTENANCE, _nested(1000), {}, 400, "body:", id="nested-1000"),
    pytest.param(MAINTENANCE, _nested(100), {}, 400, "body:", id="nested-100"),
    pytest.param(MAINTENANCE, b"\xff\xfe{}", {}, 400, "body: malformed JSON", id="not-utf8"),
    pytest.param(MAINTENANCE, b"", {}, 400, "body:", id="empty"),
    pytest.param(MAINTENANCE, b'{"name": "a\\u0000b"}', {}, 400, "body:", id="nul"),
    pytest.param(MAINTENANCE, b" " * 70_000, {}, 413, "body:", id="over-64KiB"),
    pytest.param(
        MAINTENANCE,
        b"not gzip at all",
        {"Content-Encoding": "gzip"},
        400,
        "body: cannot be read",
        id="corrupt-gzip",
    ),
    pytest.param(
        f"{INCIDENTS}/INC-1/comment",
        b"not gzip at all",
        {"Content-Encoding": "gzip"},
        400,
        "body: cannot be read",
        id="corrupt-gzip-action",
    ),
    pytest.param(
        f"{INCIDENTS}/INC-1/comment",
        b'{"text": "\\u0000"}',
        {},
        400,
        "body:",
        id="nul-action",
    ),
    pytest.param(f"{INCIDENTS}/INC-1/comment", _nested(2000), {}, 400, "body:", id="nested-action"),
    pytest.param(
        "/api/v1/problems/PRB-1/root_cause",
        b"not gzip at all",
        {"Content-Encoding": "gzip"},
        400,
        "body: cannot be read",
        id="corrupt-gzip-problem",
    ),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "error"), BAD_BODIES)
async def test_a_body_that_cannot_be_read_is_a_4xx_naming_the_body(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    status: int,
    error: str,
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))

    resp = await client.post(
        path, data=body, headers={"Content-Type": "application/json", **headers}
    )

    answer = await _json_error(resp, status)
    assert answer["error"].startswith(error), answer
    assert _errors(caplog) == []
    if path == MAINTENANCE:
        assert [w["name"] for w in (await client.get_json(MAINTENANCE))["maintenance"]] == []


async def test_a_gzip_body_that_decodes_is_read(make_client: MakeClient) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    resp = await client.post(
        f"{INCIDENTS}/INC-1/comment",
        data=gzip.compress(b'{"text": "looking"}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 200, await resp.text()


async def test_an_action_body_over_max_body_is_a_413(make_client: MakeClient) -> None:
    client = await make_client(max_body=1024)
    await client.webhook(alert("Down", service="api"))
    body = json.dumps({"text": "x" * 2000}).encode()
    resp = await client.post(f"{INCIDENTS}/INC-1/comment", data=body, headers=JSON)
    answer = await _json_error(resp, 413)
    assert answer["error"].startswith("body:")


async def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Served as `itsmd run` serves (aiohttp's runner does not cancel the handler of a
    request whose client went away), unlike the test client's server."""
    caplog.set_level(logging.DEBUG, logger="itsmd.api.errors")
    app = build_app(
        Settings(database=db_url),
        rules=rule_set(DEFAULT_RULES),
        sweep_interval=timedelta(hours=1),
        run_checks=False,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = get_free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()

    def answered(hangups: int) -> bool:
        return _went_away(caplog) >= hangups or bool(_errors(caplog))

    try:
        for hangups, path in enumerate((MAINTENANCE, f"{INCIDENTS}/INC-1/comment"), start=1):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'{"name": "half'
            )
            await writer.drain()
            await asyncio.sleep(0.05)  # the handler is reading the body
            writer.close()
            await writer.wait_closed()

            await async_wait_until(functools.partial(answered, hangups))
        assert _errors(caplog) == []
    finally:
        await runner.cleanup()


def _went_away(caplog: pytest.LogCaptureFixture) -> int:
    return sum("went away" in r.getMessage() for r in caplog.records)


# ---- any text in any query parameter: never a 500


# The query parameters each list endpoint reads (docs/api.md).
LIST_PARAMETERS: dict[str, tuple[str, ...]] = {
    INCIDENTS: ("status", "priority", "service", "q", "since", "limit", "cursor"),
    "/api/v1/problems": ("limit", "cursor"),
    "/api/v1/notifications": ("state", "limit", "cursor"),
    "/api/v1/availability": ("window",),
    "/api/v1/sla": ("window",),
}
# Texts near the edges of the parsers: huge numbers, units, times, cursors, digits
# that are not ASCII.
EDGES = [
    "",
    "0",
    "-1",
    "1",
    "500",
    "501",
    str(2**31),
    str(2**63),
    str(2**64),
    "9" * 40,
    "100000y",
    "99999999999999999999y",
    "1y1w1d1h1m1s1ms",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999999Z",
    "2026-02-30T00:00:00Z",
    "\u0661\u0662",
    "\uff11",
    "open,,resolved",
    ",",
    "P1,P9",
    "dead",
    "\x00",
    "%",
    "_",
    "\\",
    "'; DROP TABLE incidents; --",
    _cursor("id:0"),
    _cursor("id:-1"),
    _cursor(f"id:{2**31 - 1}"),
    _cursor(f"id:{2**31}"),
    _cursor(f"id:{2**63 - 1}"),
    _cursor(f"id:{2**63}"),
    _cursor("id:\u0661"),
    _cursor("id: 1"),
    "====",
    "a===",
]


def _value() -> st.SearchStrategy[bytes]:
    """What a client may put after `name=`: edges, any text, integers, cursors of any
    number, Prometheus durations, and bytes that are no UTF-8 at all."""
    return st.one_of(
        st.sampled_from(EDGES).map(str.encode),
        st.text(st.characters(exclude_categories=["Cs"])).map(str.encode),
        st.integers(-(2**80), 2**80).map(lambda n: str(n).encode()),
        st.integers(-(2**80), 2**80).map(lambda n: _cursor(f"id:{n}").encode()),
        st.from_regex(r"\A[0-9]{1,25}(y|w|d|h|m|s|ms)\Z").map(str.encode),
        st.binary(max_size=40),
    )


@st.composite
def _query(draw: st.DrawFn) -> tuple[str, list[tuple[str, bytes]]]:
    path = draw(st.sampled_from(sorted(LIST_PARAMETERS)))
    names = LIST_PARAMETERS[path]
    pairs = draw(st.lists(st.tuples(st.sampled_from(names), _value()), min_size=1, max_size=3))
    return path, pairs


async def test_no_text_in_any_query_parameter_is_a_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"), alert("Slow", service="db"))
    assert (await client.act("INC-1", "resolve")).status == 200
    client.clock.advance(timedelta(hours=1))
    loop = asyncio.get_running_loop()

    async def get(url: str) -> tuple[int, str]:
        resp = await client.get(url)
        return resp.status, await resp.text()

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(_query())
    def answers_2xx_or_4xx_naming_a_parameter(
        query: tuple[str, list[tuple[str, bytes]]],
    ) -> None:
        path, pairs = query
        raw = "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in pairs)
        status, text = asyncio.run_coroutine_threadsafe(get(f"{path}?{raw}"), loop).result(30)
        assert status < 500, (path, pairs, status, text)
        body = json.loads(text)
        if status >= 400:
            assert status == 400, (path, pairs, status, text)
            named = {f"{name}:" for name, _ in pairs}
            assert any(body["error"].startswith(n) for n in named), (path, pairs, text)

    await asyncio.to_thread(answers_2xx_or_4xx_naming_a_parameter)
    assert _errors(caplog) == []


# Path segments: any text in an id or name is a 404, never a 500.
ID_PATHS = [
    ("GET", INCIDENTS + "/{}"),
    ("POST", INCIDENTS + "/{}/ack"),
    ("GET", "/api/v1/problems/{}"),
    ("POST", "/api/v1/problems/{}/resolve"),
    ("POST", "/api/v1/notifications/{}/retry"),
    ("DELETE", MAINTENANCE + "/{}"),
]


async def test_no_text_in_an_id_is_a_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    loop = asyncio.get_running_loop()

    async def call(method: str, url: str) -> tuple[int, str]:
        resp = await client.request(method, url, json={})
        return resp.status, await resp.text()

    segment = st.one_of(
        st.sampled_from(
            ["INC-1", "PRB-1", "1", "INC-" + "9" * 30, "\x00", "\u0661", "%00", "."]
            + [f"{prefix}{n}" for prefix in ("INC-", "PRB-", "") for n in (2**31, 2**63)]
        ),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1),
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(ID_PATHS), segment)
    def answers_without_a_500(route: tuple[str, str], text: str) -> None:
        method, template = route
        url = template.format(quote(text, safe=""))
        status, body = asyncio.run_coroutine_threadsafe(call(method, url), loop).result(30)
        assert status < 500, (method, url, status, body)
        json.loads(body)

    await asyncio.to_thread(answers_without_a_500)
    assert _errors(caplog) == []


async def test_an_unreadable_body_closes_the_connection_and_says_so(
    make_client: MakeClient,
) -> None:
    """aiohttp cannot read on after a body it could not decode: the answer says
    `Connection: close`, so the client's next request takes a new connection."""
    client: ApiClient = await make_client()
    await client.webhook(alert("Down", service="api"))
    bad = await client.post(
        f"{INCIDENTS}/INC-1/comment",
        data=b"garbage",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert bad.status == 400
    assert bad.headers.get("Connection", "").lower() == "close"
    assert (await client.ingest(WEBHOOK, raw_body("firing-single.json")))["received"] == 1
