"""A corpus of hostile payloads against both ingest endpoints: each is answered with a
clear 4xx naming what is wrong, nothing is stored, and nothing is logged as an error
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.api_support import GENERIC, WEBHOOK, ApiClient, MakeClient, webhook_body

RULES = "incidents:\n  - name: all\n    match: '{}'\n    group_by: [alertname]\n"


def one(**alert: Any) -> dict[str, Any]:
    base = {"status": "firing", "labels": {"alertname": "X"}, "annotations": {}}
    return {**base, **alert}


# name -> (body bytes for an endpoint shape, what the error must mention)
Body = Callable[[Callable[[list[Any]], Any]], bytes]
CORPUS: dict[str, tuple[Body, str]] = {
    "not json": (lambda wrap: b"{'alerts': [", "JSON"),
    "invalid utf-8": (lambda wrap: b'{"alerts": ["\xff\xfe"]}', ""),
    "deep nesting": (
        lambda wrap: (
            json.dumps(wrap(["@"])).encode().replace(b'"@"', b'{"a":' * 5000 + b'"x"' + b"}" * 5000)
        ),
        "",
    ),
    "nul in a label": (
        lambda wrap: json.dumps(wrap([one(labels={"alertname": "a\u0000b"})])).encode(),
        "NUL",
    ),
    "nul in an annotation": (
        lambda wrap: json.dumps(wrap([one(annotations={"summary": "x\u0000"})])).encode(),
        "NUL",
    ),
    "huge number as a time": (
        lambda wrap: json.dumps(wrap([one(startsAt=10**400)])).encode(),
        "JSON",
    ),
    "out of range time": (
        lambda wrap: json.dumps(wrap([one(startsAt="99999-01-01T00:00:00Z")])).encode(),
        "startsAt",
    ),
    "ten thousand labels": (
        lambda wrap: json.dumps(
            wrap([one(labels={f"l{i}": "v" for i in range(10_000)} | {"alertname": "X"})])
        ).encode(),
        "at most 128 entries",
    ),
    "label name not a name": (
        lambda wrap: json.dumps(wrap([one(labels={"alertname": "X", "a-b": "v"})])).encode(),
        "a-b",
    ),
    "labels not an object": (lambda wrap: json.dumps(wrap([one(labels=["x"])])).encode(), "labels"),
    "status unknown": (lambda wrap: json.dumps(wrap([one(status="burning")])).encode(), "status"),
}


def webhook_wrap(alerts: list[Any]) -> Any:
    return webhook_body() | {"alerts": alerts}


def generic_wrap(alerts: list[Any]) -> Any:
    return alerts


@pytest.mark.parametrize("path", [WEBHOOK, GENERIC])
@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_a_hostile_payload_is_a_clear_4xx_and_stores_nothing(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str, name: str
) -> None:
    client = await make_client(RULES)
    make, mention = CORPUS[name]
    body = make(webhook_wrap if path == WEBHOOK else generic_wrap)
    with caplog.at_level(logging.WARNING):
        response = await client.post_raw(path, body)
    assert 400 <= response.status < 500, (response.status, await response.text())
    error = (await response.json())["error"]
    assert error
    assert mention in error + json.dumps((await response.json()).get("detail"))
    assert await client.stored_alerts() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


_clients: weakref.WeakKeyDictionary[MakeClient, ApiClient] = weakref.WeakKeyDictionary()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(alerts=st.lists(json_values, max_size=4), wrapped=st.booleans())
async def test_any_json_is_answered_without_a_server_error(
    make_client: MakeClient, alerts: list[Any], wrapped: bool
) -> None:
    """Arbitrary JSON as alerts: 2xx (stored) or 4xx, never a 5xx."""
    # One daemon for every example: the fixture lives as long as the whole test.
    client = _clients.get(make_client) or await make_client(RULES)
    _clients[make_client] = client
    path, body = (WEBHOOK, webhook_wrap(alerts)) if wrapped else (GENERIC, alerts)
    response = await client.post_raw(path, json.dumps(body).encode())
    assert response.status < 500, await response.text()
