"""What the clients of outside HTTP APIs (Prometheus, Alertmanager) share: where the
peer is, how it is shown, and what they say of a failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp
from yarl import URL

_SNIPPET_CHARS = 200  # of a body that is not the JSON we expected


class Peer:
    """One outside HTTP API; `headers` carry auth (Bearer/Basic) prepared by the caller.

    `session_factory` is called per request, so the client can be built before the
    application's HTTP session exists and never owns (or closes) it.
    """

    def __init__(
        self,
        session_factory: Callable[[], aiohttp.ClientSession],
        url: str,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._base = url.rstrip("/")
        self.url = str(URL(self._base).with_user(None))  # shown: never the credentials
        self.timeout_s = timeout_s
        self._headers = dict(headers or {})


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
