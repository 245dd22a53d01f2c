"""Typed application keys."""

from __future__ import annotations

from aiohttp import web

from itsmd.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
ACTOR = web.RequestKey("actor", str)  # who makes the request: token name or "anonymous"
