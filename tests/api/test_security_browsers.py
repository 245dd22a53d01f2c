"""Requests from browsers (docs/configuration.md): a web page must not be able to change
anything, nor, without tokens, read anything, through a daemon on loopback.

Without tokens the `Host` must name this daemon (DNS rebinding); a request that
changes something through the API must carry JSON and, when it carries an `Origin`,
come from the daemon's own origin. Each refusal is a 4xx naming the reason, and
nothing of the request is done."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from itsmd.config import Role, Token
from tests.api.api_support import (
    FIXTURES,
    GENERIC,
    INCIDENTS,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    webhook_body,
)

MAINTENANCE = "/api/v1/maintenance"
REJECTED = "itsmd_alerts_rejected_total"
REFUSED = "itsmd_http_refused_total"
JSON = {"Content-Type": "application/json"}
WINDOW = {
    "name": "everything",
    "match": "{}",
    "start": "2026-11-28T00:00:00Z",
    "end": "2036-01-01T00:00:00Z",
}
ADMIN = Token("root", Role.ADMIN, "s3cret-admin-0123456789")
AS_ADMIN = {"Authorization": f"Bearer {ADMIN.secret}"}
ATTACKER = {"Origin": "http://attacker.example", "Host": "attacker.example"}


def _port(client: ApiClient) -> int:
    port = client.server.port
    assert port is not None
    return port


async def _error(resp: Any, status: int) -> str:
    text = await resp.text()
    assert resp.status == status, f"{resp.method} {resp.url.path} -> {resp.status}: {text}"
    body = json.loads(text)
    assert set(body) == {"error", "detail"}, body
    error: str = body["error"]
    return error


async def _windows(client: ApiClient) -> list[str]:
    resp = await client.get(MAINTENANCE, headers=AS_ADMIN)  # a token without tokens is ignored
    assert resp.status == 200, await resp.text()
    return [w["name"] for w in (await resp.json())["maintenance"]]


# ---- the attack of the report: a page creates a suppress-everything window


async def test_a_rebinding_page_gets_403_naming_the_host_and_creates_nothing(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    port = _port(client)
    before = await client.metric("itsmd_rules_last_reload_timestamp_seconds")
    client.clock.advance(timedelta(minutes=1))  # a reload would stamp this time

    attacks = [
        ("POST", MAINTENANCE, json.dumps(WINDOW).encode(), "text/plain"),
        ("POST", WEBHOOK, json.dumps(webhook_body(alert("Fake"))).encode(), "text/plain"),
        (
            "POST",
            GENERIC,
            json.dumps([{"labels": {"alertname": "Fake"}}]).encode(),
            JSON["Content-Type"],
        ),
        ("POST", "/-/reload", b"", "text/plain"),
        ("GET", INCIDENTS, b"", None),
    ]
    for method, path, body, content_type in attacks:
        headers = {**ATTACKER, **({"Content-Type": content_type} if content_type else {})}
        resp = await client.request(method, path, data=body, headers=headers)
        error = await _error(resp, 403)
        assert error == (
            f"Host 'attacker.example' is not this daemon's (expected 127.0.0.1:{port}, "
            f"localhost:{port}, [::1]:{port}, 127.0.0.1:9877, localhost:9877 or [::1]:9877)"
        ), (method, path)

    assert await _windows(client) == []
    assert await client.stored_alerts() == []
    assert await client.metric("itsmd_rules_last_reload_timestamp_seconds") == before
    assert await client.metric(REFUSED, reason="host") == len(attacks)
    assert await client.metric(REJECTED, reason="forbidden") == 2


HOSTS_OF_THE_DAEMON = [
    "127.0.0.1:{port}",
    "localhost:{port}",
    "LOCALHOST:{port}",
    "[::1]:{port}",
    "127.0.0.1",  # the listen address's bare host
    "127.0.0.1:9877",  # the configured listen address
    "itsmd.example.com",  # external_url's host
    "itsmd.example.com:8443",
]


@pytest.mark.parametrize("host", HOSTS_OF_THE_DAEMON)
async def test_without_tokens_the_daemons_own_names_are_served(
    make_client: MakeClient, host: str
) -> None:
    client = await make_client(external_url="https://itsmd.example.com:8443")
    headers = {"Host": host.format(port=_port(client)), **JSON}
    resp = await client.post(WEBHOOK, data=json.dumps(webhook_body(alert("Real"))), headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.get(INCIDENTS, headers=headers)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    "host",
    ["attacker.example:{port}", "localhost.attacker.example:{port}", "127.0.0.2:{port}", "itsmd"],
)
async def test_without_tokens_any_other_name_is_403(make_client: MakeClient, host: str) -> None:
    client = await make_client()
    named = host.format(port=_port(client))
    error = await _error(await client.get(INCIDENTS, headers={"Host": named}), 403)
    assert error.startswith(f"Host {named!r} is not this daemon's (expected "), error


async def test_operational_endpoints_answer_any_host(make_client: MakeClient) -> None:
    client = await make_client()
    for path in ("/metrics", "/-/healthy", "/-/ready"):
        resp = await client.get(path, headers={"Host": "attacker.example"})
        assert resp.status == 200, path


async def test_with_tokens_any_host_is_served(make_client: MakeClient) -> None:
    """Clients reach a daemon with tokens by many names; a page has no token."""
    client = await make_client(tokens=(ADMIN,))
    headers = {"Host": "itsmd.internal:9877", **AS_ADMIN, **JSON}
    resp = await client.post(WEBHOOK, data=json.dumps(webhook_body(alert("Real"))), headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.get(INCIDENTS, headers={"Host": "10.1.2.3:9877", **AS_ADMIN})
    assert resp.status == 200, await resp.text()


async def test_refused_hosts_are_logged_a_line_a_minute(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    for _ in range(5):
        assert (await client.get(INCIDENTS, headers={"Host": "attacker.example"})).status == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "itsmd.api.auth"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "refused GET /api/v1/incidents from 127.0.0.1: Host 'attacker.example' is not this daemon's"
    ), lines


# ---- Origin: another site's page


@pytest.mark.parametrize("tokens", [(), (ADMIN,)], ids=["no-tokens", "tokens"])
@pytest.mark.parametrize(
    "origin", ["http://attacker.example", "null", "http://127.0.0.1:1", "file://", "garbage"]
)
async def test_a_write_from_another_origin_is_403_naming_it(
    make_client: MakeClient, tokens: tuple[Token, ...], origin: str
) -> None:
    client = await make_client(tokens=tokens)
    await client.post(
        WEBHOOK,
        data=json.dumps(webhook_body(alert("Down", service="api"))),
        headers={**JSON, **AS_ADMIN},
    )
    headers = {"Origin": origin, **AS_ADMIN, **JSON}
    writes = [
        (MAINTENANCE, WINDOW),
        (f"{INCIDENTS}/INC-1/resolve", {}),
        (WEBHOOK, webhook_body(alert("Fake"))),
        ("/-/reload", {}),
    ]
    for path, body in writes:
        error = await _error(await client.post(path, json=body, headers=headers), 403)
        port = _port(client)
        assert error == (
            f"Origin {origin!r} is not this daemon's (expected http://127.0.0.1:{port})"
        ), path
    resp = await client.delete(f"{MAINTENANCE}/anything", headers=headers)
    assert (await _error(resp, 403)).startswith(f"Origin {origin!r}")

    assert await _windows(client) == []
    assert len(await client.stored_alerts()) == 1
    incident = await client.get(f"{INCIDENTS}/INC-1", headers=AS_ADMIN)
    assert (await incident.json())["status"] == "open"
    assert await client.metric(REFUSED, reason="origin") == len(writes) + 1


async def test_a_write_from_the_daemons_own_origin_is_served(make_client: MakeClient) -> None:
    client = await make_client(external_url="https://itsmd.example.com")
    port = _port(client)
    for origin in (
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
        f"https://127.0.0.1:{port}",
        "https://itsmd.example.com",
    ):
        body = webhook_body(alert("Down", origin=origin))
        resp = await client.post(WEBHOOK, json=body, headers={"Origin": origin})
        assert resp.status == 200, (origin, await resp.text())


async def test_reads_carry_any_origin(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.get(INCIDENTS, headers={"Origin": "http://attacker.example"})
    assert resp.status == 200, await resp.text()


# ---- JSON only


NOT_JSON = [
    ("text/plain", b'{"name": "x"}'),
    ("text/plain;charset=UTF-8", b"{}"),
    ("application/x-www-form-urlencoded", b"name=x"),
    ("multipart/form-data; boundary=x", b"--x--"),
    ("application/octet-stream", b"{}"),
    (None, b"{}"),
]


@pytest.mark.parametrize(("content_type", "body"), NOT_JSON)
async def test_a_write_that_is_not_json_is_415_naming_the_content_type(
    make_client: MakeClient, content_type: str | None, body: bytes
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    timeline = (await client.incident("INC-1"))["timeline"]
    headers = {"Content-Type": content_type} if content_type else {}
    skip = [] if content_type else ["Content-Type"]
    got = repr(content_type) if content_type else "none"
    for path in (MAINTENANCE, f"{INCIDENTS}/INC-1/comment", WEBHOOK, GENERIC, "/-/reload"):
        resp = await client.post(path, data=body, headers=headers, skip_auto_headers=skip)
        error = await _error(resp, 415)
        assert error == f"Content-Type: expected application/json, got {got}", path

    assert await _windows(client) == []
    assert len(await client.stored_alerts()) == 1
    assert (await client.incident("INC-1"))["timeline"] == timeline
    assert await client.metric(REJECTED, reason="unsupported_media_type") == 2
    assert await client.metric(REFUSED, reason="content_type") == 5


async def test_an_empty_form_is_refused_too(make_client: MakeClient) -> None:
    """A page's form with no fields sends no body, but says what it is."""
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        resp = await client.post(
            f"{INCIDENTS}/INC-1/resolve", data=b"", headers={"Content-Type": content_type}
        )
        await _error(resp, 415)
    assert (await client.incident("INC-1"))["status"] == "open"


async def test_json_with_parameters_and_bodyless_writes_are_served(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    await client.webhook(alert("Down", service="api"))
    resp = await client.post(
        f"{INCIDENTS}/INC-1/comment",
        data=b'{"text": "on it"}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert resp.status == 200, await resp.text()
    # curl -X POST .../-/reload: no body, no Content-Type.
    resp = await client.post("/-/reload", skip_auto_headers=["Content-Type"])
    assert resp.status not in (403, 415), await resp.text()
    resp = await client.post(f"{INCIDENTS}/INC-1/ack", skip_auto_headers=["Content-Type"])
    assert resp.status == 200, await resp.text()
    resp = await client.delete(f"{MAINTENANCE}/none", skip_auto_headers=["Content-Type"])
    assert resp.status == 404, await resp.text()


async def test_paths_outside_the_api_are_not_held_to_the_json_rule(
    make_client: MakeClient,
) -> None:
    """The console's forms (outside /api/) carry CSRF tokens instead."""
    client = await make_client()
    resp = await client.post(
        "/incidents/INC-1/nothing",
        data=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 404, await resp.text()


def test_alertmanager_sends_json() -> None:
    """What every captured Alertmanager delivery said it was (the README of the
    captures): the JSON rule refuses no Alertmanager."""
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert "`Content-Type: application/json`" in readme
