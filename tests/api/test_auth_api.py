"""Auth (docs/configuration.md): Bearer and Basic tokens, roles, loopback only without tokens."""

from __future__ import annotations

import base64
import json

import pytest

from itsmd.config import Role, Token
from tests.api.api_support import (
    INCIDENTS,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    raw_body,
    webhook_body,
)

TOKENS = (  # secrets of 16 characters or more, as the config requires
    Token("alertmanager", Role.INGEST, "s3cret-ingest-0123456789"),
    Token("viewer", Role.READ, "s3cret-read-0123456789"),
    Token("oncall", Role.RESPOND, "s3cret-respond-0123456789"),
    Token("root", Role.ADMIN, "s3cret-admin-0123456789"),
)
SECRETS = {t.name: t.secret for t in TOKENS}
JSON = {"Content-Type": "application/json"}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}", **JSON}


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}", **JSON}


@pytest.fixture
async def client(make_client: MakeClient) -> ApiClient:
    """An app with tokens and one incident (INC-1) opened by the ingest token. Its tests
    send wrong tokens on purpose, many times: no throttle (tested on its own)."""
    api = await make_client(tokens=TOKENS, max_auth_failures=0)
    resp = await api.post(WEBHOOK, data=raw_body("firing-single.json"), headers=bearer("root"))
    assert resp.status == 200, await resp.text()
    return api


async def _stored(client: ApiClient) -> int:
    return len(await client.stored_alerts())


WRONG_CREDENTIALS = {
    "no header": {},
    "wrong bearer": {"Authorization": "Bearer wrong"},
    "empty bearer": {"Authorization": "Bearer"},
    "unknown scheme": {"Authorization": f"Token {SECRETS['root']}"},
    "basic, wrong password": basic("alertmanager", "wrong"),
    "basic, another token's name": basic("viewer", SECRETS["alertmanager"]),
    "basic, not base64": {"Authorization": "Basic !!!not-base64"},
}
PROTECTED = [
    ("POST", WEBHOOK),
    ("GET", INCIDENTS),
    ("POST", f"{INCIDENTS}/INC-1/ack"),
    ("POST", "/-/reload"),
]


async def test_missing_or_wrong_credentials_are_401(client: ApiClient) -> None:
    before = await _stored(client)
    for what, headers in WRONG_CREDENTIALS.items():
        for method, path in PROTECTED:
            resp = await client.request(
                method, path, data=raw_body("firing-grouped.json"), headers={**JSON, **headers}
            )
            assert resp.status == 401, (what, method, path)
            assert "Bearer" in resp.headers.get("WWW-Authenticate", "")
            assert (await resp.json())["error"]
    assert await _stored(client) == before
    detail = await client.get(f"{INCIDENTS}/INC-1", headers=bearer("viewer"))
    assert (await detail.json())["status"] == "open", "nothing was done"


async def test_a_refused_webhook_is_counted(client: ApiClient) -> None:
    await client.post(WEBHOOK, data=b"{}", headers=JSON)
    await client.post(WEBHOOK, data=b"{}", headers=bearer("viewer"))
    assert await client.metric("itsmd_alerts_rejected_total", reason="unauthorized") == 1
    assert await client.metric("itsmd_alerts_rejected_total", reason="forbidden") == 1


async def test_bearer_and_basic_auth_both_ingest(client: ApiClient) -> None:
    resp = await client.post(
        WEBHOOK, data=raw_body("firing-grouped.json"), headers=bearer("alertmanager")
    )
    assert resp.status == 200, await resp.text()
    # What Alertmanager's http_config.basic_auth sends: user = token name.
    resp = await client.post(
        WEBHOOK,
        data=raw_body("truncated-basic-auth.json"),
        headers=basic("alertmanager", SECRETS["alertmanager"]),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["new"] == 2
    assert await _stored(client) == 1 + 3 + 2


async def test_actor_is_the_token_name(client: ApiClient) -> None:
    resp = await client.post(f"{INCIDENTS}/INC-1/ack", json={}, headers=bearer("oncall"))
    assert resp.status == 200
    body = {"text": "on it", "actor": "alice"}
    resp = await client.post(f"{INCIDENTS}/INC-1/comment", json=body, headers=bearer("oncall"))
    assert resp.status == 200
    detail = await (await client.get(f"{INCIDENTS}/INC-1", headers=bearer("viewer"))).json()
    ack, comment = detail["timeline"][-2:]
    assert ack["actor"] == "oncall"
    assert comment["actor"] == "alice (token oncall)"


WRONG_ROLE = [
    ("alertmanager", "GET", INCIDENTS),
    ("alertmanager", "GET", f"{INCIDENTS}/INC-1"),
    ("viewer", "POST", WEBHOOK),
    ("viewer", "POST", "/api/v1/alerts"),
    ("viewer", "POST", f"{INCIDENTS}/INC-1/ack"),
    ("viewer", "POST", f"{INCIDENTS}/INC-1/comment"),
    ("alertmanager", "POST", f"{INCIDENTS}/INC-1/resolve"),
    ("oncall", "POST", "/-/reload"),
    ("viewer", "POST", "/-/reload"),
    ("alertmanager", "POST", "/-/reload"),
]


async def test_wrong_role_is_403(client: ApiClient) -> None:
    before = await _stored(client)
    for token, method, path in WRONG_ROLE:
        body = {"text": "x"} if "incidents" in path else None
        data = None if body else raw_body("firing-grouped.json")
        resp = await client.request(method, path, json=body, data=data, headers=bearer(token))
        answer = await resp.json()
        assert resp.status == 403, (token, method, path, answer)
        assert token in answer["error"]
    assert await _stored(client) == before
    detail = await client.get(f"{INCIDENTS}/INC-1", headers=bearer("viewer"))
    detail_json = await detail.json()
    assert detail_json["status"] == "open"
    assert [e["kind"] for e in detail_json["timeline"]] == ["opened", "alert_joined"]


async def test_allowed_roles(client: ApiClient) -> None:
    for token, method, path, body in [
        ("viewer", "GET", INCIDENTS, None),
        ("oncall", "GET", f"{INCIDENTS}/INC-1", None),
        ("oncall", "POST", f"{INCIDENTS}/INC-1/comment", {"text": "hi"}),
        ("root", "POST", f"{INCIDENTS}/INC-1/comment", {"text": "hi"}),
        ("root", "GET", INCIDENTS, None),
    ]:
        resp = await client.request(method, path, json=body, headers=bearer(token))
        assert resp.status == 200, (token, method, path, await resp.text())


async def test_admin_may_reload(make_client: MakeClient) -> None:
    # Reload re-reads settings.config_file: without one there is nothing to re-read, so
    # the answer may be an error, but never an auth refusal.
    api = await make_client(tokens=TOKENS)
    resp = await api.post("/-/reload", headers=bearer("root"))
    assert resp.status not in (401, 403), await resp.text()


async def test_operational_endpoints_need_no_token(client: ApiClient) -> None:
    for path in ("/metrics", "/-/healthy", "/-/ready"):
        assert (await client.get(path)).status == 200, path


# ---- no tokens: loopback only


REMOTES = [
    ("203.0.113.7", False),
    ("10.1.2.3", False),
    ("2001:db8::1", False),
    ("127.0.0.1", True),
    ("127.8.9.10", True),
    ("::1", True),
]


async def test_without_tokens_only_loopback_clients_are_served(make_client: MakeClient) -> None:
    for remote, allowed in REMOTES:
        client = await make_client(remote=remote)  # each an app on the same database
        before = len(await client.stored_alerts())
        body = json.dumps(webhook_body(alert("Probe", remote=remote))).encode()
        for method, path in [("GET", INCIDENTS), ("POST", WEBHOOK), ("POST", "/-/reload")]:
            resp = await client.request(method, path, data=body, headers=JSON)
            if allowed:
                assert resp.status not in (401, 403), (remote, path, await resp.text())
            else:
                assert resp.status == 403, (remote, path)
                assert "loopback" in (await resp.json())["error"]
        for path in ("/metrics", "/-/healthy", "/-/ready"):
            assert (await client.get(path)).status == 200, (remote, path)
        stored = len(await client.stored_alerts()) - before
        assert stored == (1 if allowed else 0), remote
