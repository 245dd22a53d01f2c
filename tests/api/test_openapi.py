"""/api/v1/openapi.json (docs/api.md): valid OpenAPI 3.1, one entry per route of the app
and no more, each with the role the auth middleware really enforces, and schemas that
the real answers satisfy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from pytest_aiohttp import AiohttpClient

import itsmd
from itsmd.api import auth, openapi, operations, routes
from itsmd.config import Role, Settings, Token
from itsmd.server.app import SOURCES, build_app
from tests.api.api_support import (
    DEFAULT_RULES,
    INCIDENTS,
    FakeClock,
    MakeClient,
    alert,
    resolved,
)
from tests.api.conftest import rule_set

DOC = "/api/v1/openapi.json"
TOKENS = (
    Token("alertmanager", Role.INGEST, "s3cret-ingest-0123456789"),
    Token("viewer", Role.READ, "s3cret-read-0123456789"),
)
# The least role of a set the middleware allows (admin may do everything).
RANK = {Role.READ: 0, Role.RESPOND: 1, Role.INGEST: 2, Role.ADMIN: 3}
# A value for each kind of path parameter, to ask the middleware about a real path.
SAMPLE = {"id": "INC-1", "action": "ack", "name": "db-upgrade", "fingerprint": "0" * 16}


def _app(tmp_path: Path) -> web.Application:
    """The app as build_app makes it, not started: its routes and operations."""
    settings = Settings(database=f"sqlite:///{tmp_path}/routes.db")
    return build_app(settings, rules=rule_set(DEFAULT_RULES), run_checks=False)


def _concrete(path: str) -> str:
    return re.sub(r"\{([^}:]+)[^}]*\}", lambda m: SAMPLE.get(m[1], "x"), path)


def _least(roles: frozenset[Role] | None) -> str | None:
    return None if roles is None else min(roles, key=RANK.__getitem__).value


def _operations(doc: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
    }


async def test_the_served_document_is_valid_openapi_3_1(make_client: MakeClient) -> None:
    client = await make_client()
    doc = await client.get_json(DOC)
    OpenAPIV31SpecValidator(doc).validate()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == itsmd.__version__
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "basic", "session"}


def test_every_route_is_documented_and_every_operation_is_routed(tmp_path: Path) -> None:
    app = _app(tmp_path)
    routed = {
        (r.method, openapi.openapi_path(r.resource.canonical))
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = set(_operations(openapi.document(app[routes.OPERATIONS], "test")))
    assert routed == documented
    assert ("GET", "/api/v1/alerts") in routed
    assert ("GET", "/api/v1/alerts/{fingerprint}") in routed
    assert ("GET", DOC) in routed


def test_each_operation_states_the_role_auth_enforces(tmp_path: Path) -> None:
    app = _app(tmp_path)
    doc = openapi.document(app[routes.OPERATIONS], "test")
    for (method, path), op in _operations(doc).items():
        enforced = _least(auth.required_roles(method, _concrete(path)))
        assert op["x-itsmd-role"] == enforced, (method, path)
        if enforced is None:
            assert op["security"] == [], (method, path)
            assert "Needs no token." in op["description"]
        else:
            who = [{"session": []}] if auth.is_console(path) else [{"bearer": []}, {"basic": []}]
            assert op["security"] == who, (method, path)
            assert f"Role: `{enforced}`" in op["description"], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_every_source_is_an_ingest_operation() -> None:
    ingest = {op.path for op in operations.API if op.handler is operations.ingest}
    assert ingest == {route.path for route in SOURCES}
    for path in ingest:
        assert auth.required_roles("POST", path) == auth.INGESTERS


async def test_the_document_is_the_operations_the_app_serves(
    db_url: str, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    """Operations registered besides API (the console's pages) are documented too."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<p>hello</p>", content_type="text/html")

    app = build_app(
        Settings(database=db_url),
        clock=clock,
        rules=rule_set(DEFAULT_RULES),
        sweep_interval=timedelta(hours=1),
        run_checks=False,
    )
    extra = routes.Operation(
        "GET", "/api/v1/hello", page, "A page", Role.READ, "extra", content="text/html"
    )
    routes.register(app, [extra])
    client = await aiohttp_client(app)
    resp = await client.get(DOC)
    doc = await resp.json()
    assert resp.status == 200, doc
    OpenAPIV31SpecValidator(doc).validate()
    hello = doc["paths"]["/api/v1/hello"]["get"]
    assert hello["x-itsmd-role"] == "read"
    assert "text/html" in hello["responses"]["200"]["content"]
    assert (await client.get("/api/v1/hello")).status == 200


async def test_reading_the_document_needs_the_read_role(make_client: MakeClient) -> None:
    client = await make_client(tokens=TOKENS, max_auth_failures=0)
    assert (await client.get(DOC)).status == 401
    ingest = {"Authorization": f"Bearer {TOKENS[0].secret}"}
    assert (await client.get(DOC, headers=ingest)).status == 403
    read = {"Authorization": f"Bearer {TOKENS[1].secret}"}
    assert (await client.get(DOC, headers=read)).status == 200


def _validator(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator of `schema` whose `#/components/...` references resolve in `doc`."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def _answer_schema(doc: Mapping[str, Any], method: str, path: str, status: str) -> Any:
    response = doc["paths"][path][method]["responses"][status]
    return response["content"]["application/json"]["schema"]


SERVICES_ONLY = """\
incidents:
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
"""


async def test_real_answers_satisfy_their_schemas(make_client: MakeClient) -> None:
    client = await make_client(SERVICES_ONLY)
    firing = alert("Down", service="api", pod="api-1")
    await client.webhook(firing, alert("Lost", pod="x"))  # the second is unrouted
    await client.webhook(resolved(firing, client.clock.now))
    doc = await client.get_json(DOC)
    ref = (await client.get_json(INCIDENTS))["incidents"][0]["id"]
    fingerprint = (await client.get_json("/api/v1/alerts"))["alerts"][0]["fingerprint"]
    reads = {
        "/api/v1/incidents": INCIDENTS,
        "/api/v1/incidents/{id}": f"{INCIDENTS}/{ref}",
        "/api/v1/alerts": "/api/v1/alerts",
        "/api/v1/alerts/{fingerprint}": f"/api/v1/alerts/{fingerprint}",
        "/api/v1/problems": "/api/v1/problems",
        "/api/v1/maintenance": "/api/v1/maintenance",
        "/api/v1/notifications": "/api/v1/notifications",
        "/api/v1/checks": "/api/v1/checks",
        "/api/v1/availability": "/api/v1/availability",
        "/api/v1/capacity": "/api/v1/capacity",
        "/api/v1/sla": "/api/v1/sla",
    }
    for template, path in reads.items():
        answer = await client.get_json(path)
        schema = _answer_schema(doc, "get", template, "200")
        errors = list(_validator(doc, schema).iter_errors(answer))
        assert not errors, (path, [e.message for e in errors])
    resp = await client.post(f"{INCIDENTS}/{ref}/ack", json={"note": "mine"})
    assert resp.status == 200, await resp.text()
    schema = _answer_schema(doc, "post", "/api/v1/incidents/{id}/{action}", "200")
    _validator(doc, schema).validate(await resp.json())
    missing = await client.get(f"{INCIDENTS}/INC-99")
    error = _answer_schema(doc, "get", "/api/v1/incidents/{id}", "404")
    _validator(doc, error).validate(await missing.json())


def test_aiohttp_patterns_become_openapi_paths() -> None:
    assert openapi.openapi_path("/api/v1/incidents/{id:\\d+}") == "/api/v1/incidents/{id}"
    assert openapi.openapi_path("/a/{x}/b/{y}") == "/a/{x}/b/{y}"


def test_every_operation_is_in_the_api_docs() -> None:
    """docs/api.md names every path (each action of `{action}` on its own)."""
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    for op in operations.API:
        actions = next((p.schema.get("enum") for p in op.params if p.name == "action"), None)
        for action in actions or [None]:
            path = op.path.replace("{action}", action) if action else op.path
            assert re.search(rf"[` ]{re.escape(path)}[`?]", docs), f"{op.method} {path}"


def test_an_operation_declared_twice_is_refused(tmp_path: Path) -> None:
    app = _app(tmp_path)
    again = next(op for op in operations.API if op.path == "/api/v1/alerts" and op.method == "GET")
    with pytest.raises(ValueError, match="GET /api/v1/alerts is declared twice"):
        routes.register(app, [again])
    with pytest.raises(ValueError, match="declared twice"):
        openapi.document([again, again], "test")
