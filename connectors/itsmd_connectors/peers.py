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

    async def _send(
        self, method: str, path: str, form: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The status and body of one request; a timeout or a network failure raises
        what `_error` makes of it."""
        try:
            async with self._session_factory().request(
                method,
                self._base + path,
                data=form,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                return response.status, await response.read()
        except TimeoutError:
            raise self._error(f"no answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise self._error(unreachable(exc)) from None

    def _error(self, detail: str) -> Exception:
        """The client's own exception, naming the peer (never its credentials)."""
        raise NotImplementedError


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
