"""What the clients of outside HTTP APIs (Prometheus, Alertmanager) say of a failure."""

from __future__ import annotations

import aiohttp

_SNIPPET_CHARS = 200  # of a body that is not the JSON we expected


def unreachable(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return f"request failed: {exc or type(exc).__name__}"


def snippet(body: bytes) -> str:
    text = body[:_SNIPPET_CHARS].decode("utf-8", "replace").strip()
    return repr(text) + ("..." if len(body) > _SNIPPET_CHARS else "")
