"""The OpenAPI 3.1 document of the operations an app serves (`GET /api/v1/openapi.json`).

Written from the same `Operation`s the routes are registered from, so the two
cannot drift; the role each operation needs is stated in its description and in
`x-itsmd-role` (null: no token), and public operations carry `security: []`. The
JSON API takes a Bearer or Basic token, the console's pages their session cookie.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from itsmd import __version__
from itsmd.api import auth
from itsmd.api.routes import JSON, OPERATIONS, Operation, Param
from itsmd.api.schemas import SCHEMAS, ref
from itsmd.config import Role

OPENAPI = "3.1.0"
# What every operation that needs a token may also answer: no or a wrong token, a
# role that may not, an address refused for guessing, a store that cannot serve.
PROTECTED_ERRORS = (401, 403, 429, 503)
_PATTERN = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")  # aiohttp's {name} and {name:regex}
_WHO = {
    Role.READ: "Role: `read` (`respond` and `admin` may call it too).",
    Role.RESPOND: "Role: `respond` (`admin` may call it too).",
    Role.INGEST: "Role: `ingest` (`admin` may call it too).",
    Role.ADMIN: "Role: `admin`.",
}
_PUBLIC = "Needs no token."
_TOKEN: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
# The console's pages take the session cookie of a sign-in, never a header.
_SESSION: list[dict[str, list[str]]] = [{"session": []}]


async def serve(request: web.Request) -> web.Response:
    served: tuple[Operation, ...] = request.app[OPERATIONS]
    return web.json_response(document(served, __version__))


def document(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = openapi_path(op.path)
        method = op.method.lower()
        if method in paths.get(path, {}):
            raise ValueError(f"{op.method} {op.path} is declared twice")
        paths.setdefault(path, {})[method] = _operation(op)
    return {
        "openapi": OPENAPI,
        "info": {
            "title": "itsmd",
            "version": version,
            "description": "Turns Alertmanager webhooks into ITSM incidents. Errors are "
            '`{"error", "detail"}`; lists are `{"<things>": [...], "next": <cursor or '
            "null>}`, and `cursor=<next>` asks for the following page.",
        },
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in operations)],
        "security": _TOKEN,
        "paths": paths,
        "components": {
            "schemas": dict(SCHEMAS),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": auth.SESSION_COOKIE,
                    "description": "The web console's session, set by signing in at /login.",
                },
            },
        },
    }


def openapi_path(path: str) -> str:
    """aiohttp's pattern as an OpenAPI path: `{id:\\d+}` becomes `{id}`."""
    return _PATTERN.sub(r"{\1}", path)


def _operation(op: Operation) -> dict[str, Any]:
    who = _PUBLIC if op.role is None else _WHO[op.role]
    body: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "description": f"{op.description}\n\n{who}" if op.description else who,
        "tags": [op.tag],
        "x-itsmd-role": None if op.role is None else op.role.value,
        "security": security(op),
    }
    params = [_param(p) for p in _with_path_params(op)]
    if params:
        body["parameters"] = params
    if op.body is not None:
        body["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_type: {"schema": dict(op.body)}},
        }
    body["responses"] = _responses(op)
    return body


def security(op: Operation) -> list[dict[str, list[str]]]:
    """How a caller of `op` proves who it is: nothing for a public operation, the
    session cookie for a console page, a Bearer or Basic token for the rest."""
    if op.role is None:
        return []
    return _SESSION if auth.is_console(op.path) else _TOKEN


def _operation_id(op: Operation) -> str:
    words = re.findall(r"[A-Za-z0-9]+", openapi_path(op.path))
    return "_".join([op.method.lower(), *words])


def _with_path_params(op: Operation) -> list[Param]:
    """The operation's parameters, with each `{name}` of its path that it does not
    declare as a string (OpenAPI wants every one declared)."""
    declared = {p.name for p in op.params if p.where == "path"}
    implied = [
        Param(name, f"the `{name}` part of the path", where="path", required=True)
        for name in _PATTERN.findall(op.path)
        if name not in declared
    ]
    return [*op.params, *implied]


def _param(p: Param) -> dict[str, Any]:
    schema = dict(p.schema)
    out: dict[str, Any] = {
        "name": p.name,
        "in": p.where,
        "description": p.description,
        "required": p.required or p.where == "path",
    }
    if p.repeated:
        out["schema"] = {"type": "array", "items": schema}
        out["style"], out["explode"] = "form", True
    else:
        out["schema"] = schema
    return out


def _responses(op: Operation) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.status != 204:
        schema = dict(op.response) if op.response is not None else {"type": "string"}
        ok["content"] = {op.content: {"schema": schema}}
    answers[str(op.status)] = ok
    codes = set(op.errors) | (set(PROTECTED_ERRORS) if op.role is not None else set())
    for code in sorted(codes):
        answers[str(code)] = _error(op, code)
    return answers


def _error(op: Operation, code: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": HTTPStatus(code).phrase}
    if op.content == JSON:
        answer["content"] = {JSON: {"schema": ref("Error")}}
    else:  # a page or text answers its errors as itself (`/-/ready`'s 503)
        answer["content"] = {op.content: {"schema": {"type": "string"}}}
    return answer
