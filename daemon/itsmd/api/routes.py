"""Every HTTP operation the daemon serves, declared once.

The application registers its routes from these declarations and the OpenAPI
document (`/api/v1/openapi.json`) is written from the same ones, so the two cannot
drift. The web console declares its pages with the same `Operation`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from itsmd.config import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
HTML = "text/html"


@dataclass(frozen=True, slots=True)
class Param:
    """A query or path parameter."""

    name: str
    description: str
    where: str = "query"  # "query" | "path"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    repeated: bool = False  # may be given several times (`status=open&status=acknowledged`)


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: who may call it, what it takes and what it answers.

    `role` is the least role that may call it (`admin` may call everything); None
    when it needs no token. `body` and `response` are JSON Schemas (2020-12)."""

    method: str
    path: str  # aiohttp's pattern: /api/v1/incidents/{id}
    handler: Handler
    summary: str
    role: Role | None
    tag: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    body_type: str = JSON
    body_required: bool = True  # False: it may be left out (an action without a note)
    response: Mapping[str, Any] | None = None
    status: int = 200
    content: str = JSON  # the media type of the 2xx answer
    errors: tuple[int, ...] = ()  # statuses besides 401/403/429/503 that it answers


# The operations an application serves, as `register` added them: the OpenAPI
# document is written from these, so it describes the app it is served by.
OPERATIONS: web.AppKey[tuple[Operation, ...]] = web.AppKey("operations")


def register(app: web.Application, operations: Iterable[Operation]) -> None:
    """Route each operation (a GET answers HEAD too, as aiohttp's `add_get` does) and
    add it to `app[OPERATIONS]`; may be called again with more. ValueError for a
    method and path declared twice (aiohttp would route the first only)."""
    added = tuple(operations)
    seen = {(op.method, op.path) for op in app.get(OPERATIONS, ())}
    for op in added:
        if (op.method, op.path) in seen:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        seen.add((op.method, op.path))
    for op in added:
        if op.method == "GET":
            app.router.add_get(op.path, op.handler)
        else:
            app.router.add_route(op.method, op.path, op.handler)
    app[OPERATIONS] = (*app.get(OPERATIONS, ()), *added)
