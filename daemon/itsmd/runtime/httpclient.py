"""The daemon's outgoing HTTP session (sinks, probes, Prometheus)."""

from __future__ import annotations

import aiohttp

from itsmd import __version__


class HttpClient:
    """One outgoing HTTP session for sinks, probes and Prometheus, made on first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": f"itsmd/{__version__}"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
