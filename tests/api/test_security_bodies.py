"""Body limits on every endpoint that reads a body (docs/configuration.md, limits): at
most the limit is read, however the body is sent (Content-Length, chunked, gzip: the
decoded size counts), the answer is 413, and nothing of the request is stored."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.api_support import (
    GENERIC,
    INCIDENTS,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    webhook_body,
)

MAINTENANCE = "/api/v1/maintenance"
JSON = {"Content-Type": "application/json"}
LIMIT = 64 * 1024  # limits.max_body of these tests; a maintenance window's is 64 KiB too


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _gzip_bomb(decoded: int) -> bytes:
    """A gzip body of a few KiB that decodes to `decoded` bytes (a JSON string of
    spaces)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = b" " * (1024 * 1024)
    parts = [compressor.compress(b'{"text": "')]
    for _ in range(decoded // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b'"}'))
    parts.append(compressor.flush())
    return b"".join(parts)


async def _state(client: ApiClient) -> dict[str, Any]:
    """Everything a refused request could have changed."""
    windows = (await client.get_json(MAINTENANCE))["maintenance"]
    return {
        "alerts": len(await client.stored_alerts()),
        "timeline": (await client.incident("INC-1"))["timeline"],
        "windows": [w["name"] for w in windows],
    }


def _over(limit: int) -> dict[str, bytes]:
    """A body over `limit` for each kind of endpoint, valid but for its size."""
    big = "x" * (limit + 1)
    return {
        WEBHOOK: json.dumps(webhook_body(alert("Big", annotations={"summary": big}))).encode(),
        GENERIC: json.dumps([{"labels": {"alertname": "Big"}, "annotations": {"s": big}}]).encode(),
        f"{INCIDENTS}/INC-1/comment": json.dumps({"text": big}).encode(),
        MAINTENANCE: json.dumps({"name": "big", "match": "{}", "change": big}).encode(),
    }


@pytest.mark.parametrize("sent", ["content-length", "chunked", "gzip", "gzip-chunked"])
async def test_a_body_over_its_limit_is_413_on_every_kind_of_endpoint(
    make_client: MakeClient, sent: str
) -> None:
    client = await make_client(max_body=LIMIT)
    await client.webhook(alert("Down", service="api"))
    before = await _state(client)

    for path, body in _over(LIMIT).items():
        data: Any = gzip.compress(body) if sent.startswith("gzip") else body
        if sent.endswith("chunked"):
            data = _chunks(data)
        headers = {**JSON, "Content-Encoding": "gzip"} if sent.startswith("gzip") else JSON
        resp = await client.post(path, data=data, headers=headers)
        answer = await resp.json()
        assert resp.status == 413, (path, answer)
        assert answer["error"].startswith("body:"), answer
        limit = "limits.max_body" if path != MAINTENANCE else "the limit"
        assert f"{limit} ({LIMIT} bytes)" in answer["error"], answer

    assert await _state(client) == before


@pytest.mark.parametrize("path", [WEBHOOK, f"{INCIDENTS}/INC-1/comment", MAINTENANCE])
async def test_a_gzip_bomb_stops_at_the_limit(make_client: MakeClient, path: str) -> None:
    """64 MiB of spaces in 64 KiB of gzip: 413 once the decoded size passes the limit."""
    client = await make_client(max_body=LIMIT)
    await client.webhook(alert("Down", service="api"))
    before = await _state(client)
    bomb = _gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < LIMIT

    resp = await client.post(path, data=bomb, headers={**JSON, "Content-Encoding": "gzip"})

    answer = await resp.json()
    assert resp.status == 413, answer
    assert answer["error"].startswith("body: over "), answer
    assert await _state(client) == before


async def test_ingest_names_limits_max_body_and_counts_too_large(make_client: MakeClient) -> None:
    client = await make_client(max_body=LIMIT)
    body = _over(LIMIT)[WEBHOOK]
    resp = await client.post(WEBHOOK, data=body, headers=JSON)
    assert (await resp.json())["error"] == (
        f"body: {len(body)} bytes is over limits.max_body ({LIMIT} bytes)"
    )
    resp = await client.post(WEBHOOK, data=_chunks(body), headers=JSON)
    assert (await resp.json())["error"] == f"body: over limits.max_body ({LIMIT} bytes)"
    assert await client.metric("itsmd_alerts_rejected_total", reason="too_large") == 2


async def test_a_body_within_its_limit_is_read_however_it_is_sent(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_body=LIMIT)
    body = json.dumps(
        webhook_body(alert("Fits", annotations={"summary": "y" * (LIMIT // 2)}))
    ).encode()
    for data, headers in [
        (_chunks(body), JSON),
        (gzip.compress(body), {**JSON, "Content-Encoding": "gzip"}),
        (_chunks(gzip.compress(body), 100), {**JSON, "Content-Encoding": "gzip"}),
    ]:
        resp = await client.post(WEBHOOK, data=data, headers=headers)
        assert resp.status == 200, await resp.text()
