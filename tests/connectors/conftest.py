"""Fixtures of the sink tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from itsmd.notify.connector import SinkEnv
from tests.connectors.fakes_http import http_env


@pytest.fixture
async def env() -> AsyncIterator[SinkEnv]:
    """A SinkEnv over a real client session (5 s timeout), closed after the test."""
    async with http_env() as env:
        yield env
