"""Alert ingestion over HTTP (docs/api.md): captured payloads, dedup, rejections, 503."""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from sqlalchemy import func, select

from itsmd.api.keys import RUNTIME
from itsmd.config import Settings
from itsmd.correlation.fingerprint import fingerprint
from itsmd.server.app import build_app
from itsmd.store.tables import alerts as alerts_table
from tests.api.api_support import (
    DEFAULT_RULES,
    FIXTURES,
    GENERIC,
    T0,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    capture,
    metric_value,
    raw_body,
    resolved,
    same_time,
    webhook_body,
)
from tests.api.conftest import rule_set
from tests.conftest import async_wait_until, get_free_port

RECEIVED = "itsmd_alerts_received_total"
REJECTED = "itsmd_alerts_rejected_total"

ONLY_API = """\
incidents:
  - name: api
    match: '{service="api"}'
    group_by: [service]
"""


def _captured_bodies() -> list[Any]:
    """Every captured delivery as the bytes to post: `body_raw` where the capture has
    it, else (HA files) each delivery's body re-encoded as compact JSON."""
    params = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "body_raw" in data:
            params.append(pytest.param(data["body_raw"].encode(), id=path.stem))
        for index, delivery in enumerate(data.get("deliveries", [])):
            if path.stem.startswith("ha-"):
                raw = json.dumps(delivery["body"], separators=(",", ":")).encode()
                params.append(pytest.param(raw, id=f"{path.stem}-{index}"))
    assert len(params) >= 15, "the captured Alertmanager payloads are missing"
    return params


async def _alert_detail(client: ApiClient, fingerprint: str) -> dict[str, Any]:
    """The one alert with this fingerprint, as the incident API shows it."""
    found: list[dict[str, Any]] = [
        a
        for inc in await client.incidents()
        for a in (await client.incident(inc["id"]))["alerts"]
        if a["fingerprint"] == fingerprint
    ]
    assert len(found) == 1, f"expected one alert {fingerprint}, found {found}"
    return found[0]


# ---- captured payloads


@pytest.mark.parametrize("body", _captured_bodies())
async def test_every_captured_payload_is_accepted_and_stored(
    make_client: MakeClient, body: bytes
) -> None:
    client = await make_client()
    sent = json.loads(body)["alerts"]

    result = await client.ingest(WEBHOOK, body)

    assert result["received"] == len(sent)
    rows = await client.stored_alerts()
    assert sorted((r["fingerprint"], r["status"]) for r in rows) == sorted(
        (a["fingerprint"], a["status"]) for a in sent
    )
    firing = [a for a in sent if a["status"] == "firing"]
    incidents = await client.incidents()
    assert sum(i["alert_count"] for i in incidents) == len(firing)
    assert (len(incidents) > 0) == bool(firing), "only firing alerts open incidents"
    for item in firing:
        shown = await _alert_detail(client, item["fingerprint"])
        assert shown["status"] == "firing"
        assert shown["labels"] == item["labels"]
        assert shown["annotations"] == item["annotations"]
        assert same_time(shown["startsAt"], item["startsAt"])
        assert shown["source"] == "alertmanager"
    for status in ("firing", "resolved"):
        count = sum(1 for a in sent if a["status"] == status)
        assert await client.metric(RECEIVED, source="alertmanager", status=status) == count


# ---- the same notification again


def _resend_cases() -> list[Any]:
    repeat = raw_body("repeat-notification.json")
    grouped = raw_body("firing-grouped.json")
    ha = [
        json.dumps(d["body"], separators=(",", ":")).encode()
        for d in capture("ha-duplicate-slow-receiver.json")["deliveries"]
    ]
    assert len(ha) == 2
    assert ha[0] != ha[1], "the HA bodies differ (externalURL)"
    nanoseconds = json.dumps(capture("resolved-endsAt-before-startsAt.json")["firing_body"])
    return [
        pytest.param(grouped, grouped, id="retry"),
        pytest.param(nanoseconds.encode(), nanoseconds.encode(), id="retry-ns-startsAt"),
        pytest.param(repeat, repeat, id="repeat-notification"),
        pytest.param(ha[0], ha[1], id="ha-replica-other-externalURL"),
    ]


@pytest.mark.parametrize(("first", "again"), _resend_cases())
async def test_the_same_notification_again_creates_no_second_alert_or_incident(
    make_client: MakeClient, first: bytes, again: bytes
) -> None:
    client = await make_client()
    sent = json.loads(first)["alerts"]
    await client.ingest(WEBHOOK, first)
    (before,) = await client.incidents()
    client.clock.advance(timedelta(seconds=6))

    result = await client.ingest(WEBHOOK, again)

    assert result["duplicate"] == len(sent)
    assert (result["new"], result["updated"]) == (0, 0)
    (after,) = await client.incidents()
    assert after["id"] == before["id"]
    assert after["alert_count"] == before["alert_count"] == len(sent)
    detail = await client.incident(after["id"])
    assert len(detail["alerts"]) == len(sent)
    for shown in detail["alerts"]:
        assert shown["receive_count"] == 2
        assert shown["first_received"] == "2026-11-28T03:00:00Z"
        assert shown["last_received"] == "2026-11-28T03:00:06Z"
    assert len(await client.stored_alerts()) == len(sent)
    assert await client.metric("itsmd_alerts_deduplicated_total") == len(sent)


async def test_a_resolve_with_another_startsAt_resolves_the_firing_episode(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    data = capture("resolved-endsAt-before-startsAt.json")
    (firing,) = data["firing_body"]["alerts"]
    (resolve,) = data["body"]["alerts"]
    assert firing["fingerprint"] == resolve["fingerprint"]
    assert not same_time(firing["startsAt"], resolve["startsAt"]), "the point of the capture"
    await client.ingest(WEBHOOK, data["firing_body"])

    result = await client.ingest(WEBHOOK, data["body_raw"].encode())

    assert result["updated"] == 1
    assert result["new"] == 0
    (inc,) = await client.incidents()
    assert inc["alert_count"] == 1
    assert inc["firing_count"] == 0
    (shown,) = (await client.incident(inc["id"]))["alerts"]
    assert shown["status"] == "resolved"
    assert same_time(shown["startsAt"], firing["startsAt"]), "the firing episode, resolved"
    assert same_time(shown["endsAt"], resolve["endsAt"])
    assert len(await client.stored_alerts()) == 1
    assert await client.metric("itsmd_alerts_orphan_resolved_total") == 0

    # Alertmanager re-sends the resolve: still one alert, nothing orphaned.
    again = await client.ingest(WEBHOOK, data["body_raw"].encode())
    assert again["duplicate"] == 1
    assert len(await client.stored_alerts()) == 1
    assert await client.metric("itsmd_alerts_orphan_resolved_total") == 0


async def test_a_resolve_for_an_alert_never_seen_is_stored_opens_nothing_and_is_counted(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    body = raw_body("amtool-resolved.json")

    result = await client.ingest(WEBHOOK, body)

    assert result["received"] == 1
    assert result["incidents"] == []
    assert await client.incidents() == []
    (row,) = await client.stored_alerts()
    assert (row["status"], row["incident_id"], row["action"]) == (
        "resolved",
        None,
        "orphan_resolve",
    )
    assert await client.metric("itsmd_alerts_orphan_resolved_total") == 1
    assert await client.metric("itsmd_incidents_opened_total") == 0

    await client.ingest(WEBHOOK, body)  # the re-send is a duplicate, not a second orphan
    assert len(await client.stored_alerts()) == 1
    assert await client.metric("itsmd_alerts_orphan_resolved_total") == 1


async def test_mixed_firing_and_resolved_batches(make_client: MakeClient) -> None:
    client = await make_client()
    await client.ingest(WEBHOOK, raw_body("firing-grouped.json"))

    result = await client.ingest(WEBHOOK, raw_body("mixed-firing-resolved.json"))

    assert (result["updated"], result["duplicate"]) == (1, 2)
    (inc,) = await client.incidents()
    assert (inc["alert_count"], inc["firing_count"]) == (3, 2)
    statuses = {
        a["labels"]["instance"]: a["status"] for a in (await client.incident(inc["id"]))["alerts"]
    }
    assert statuses == {"api-1:9100": "firing", "api-2:9100": "resolved", "api-3:9100": "firing"}

    await client.ingest(WEBHOOK, raw_body("resolved.json"))

    detail = await client.incident(inc["id"])
    assert (detail["alert_count"], detail["firing_count"]) == (3, 0)
    assert {a["status"] for a in detail["alerts"]} == {"resolved"}
    assert len(await client.stored_alerts()) == 3


async def test_a_new_alert_and_a_resolve_in_one_batch(make_client: MakeClient) -> None:
    client = await make_client()
    first = alert("Errors", service="api", instance="a")
    await client.webhook(first)
    second = alert("Errors", service="api", instance="b", starts_at=T0 + timedelta(minutes=1))

    result = await client.webhook(resolved(first, T0 + timedelta(minutes=2)), second)

    assert (result["new"], result["updated"]) == (1, 1)
    (inc,) = await client.incidents()
    assert (inc["alert_count"], inc["firing_count"]) == (2, 1)
    assert inc["auto_resolve_at"] is None, "an alert still fires: no hold"


async def test_an_unrouted_alert_does_not_drop_the_routed_ones(make_client: MakeClient) -> None:
    client = await make_client(ONLY_API)
    body = webhook_body(
        alert("DiskFull", service="db"),
        alert("Errors", service="api", instance="a"),
        alert("Errors", service="api", instance="b"),
    )

    result = await client.ingest(WEBHOOK, body)

    assert (result["received"], result["unrouted"]) == (3, 1)
    (inc,) = await client.incidents()
    assert inc["rule"] == "api"
    assert inc["alert_count"] == 2
    rows = {r["labels"]["alertname"]: r for r in await client.stored_alerts()}
    assert len(rows) == 2
    assert rows["DiskFull"]["incident_id"] is None
    assert rows["DiskFull"]["action"] == "unrouted"
    assert await client.metric("itsmd_alerts_unrouted_total") == 1


async def test_generic_alerts_are_stored_and_correlated(make_client: MakeClient) -> None:
    client = await make_client()
    single = capture("firing-single.json")["body"]["alerts"][0]
    item = {"labels": single["labels"], "annotations": single["annotations"]}
    item["startsAt"] = single["startsAt"]

    result = await client.ingest(GENERIC, [item, alert("Other", service="checkout")])

    assert result["new"] == 2
    (inc,) = await client.incidents()
    shown = await _alert_detail(client, single["fingerprint"])  # Alertmanager's fingerprint
    assert shown["source"] == "generic"
    assert await client.metric(RECEIVED, source="generic", status="firing") == 2

    # The same alert through Alertmanager later is the same alert.
    again = await client.ingest(WEBHOOK, raw_body("firing-single.json"))
    assert again["duplicate"] == 1
    assert (await client.incident(inc["id"]))["alert_count"] == 2

    # A generic resolve of it.
    ends = (T0 + timedelta(minutes=1)).isoformat()
    done = await client.ingest(GENERIC, [{**item, "status": "resolved", "endsAt": ends}])
    assert done["updated"] == 1
    assert (await _alert_detail(client, single["fingerprint"]))["status"] == "resolved"


async def test_generic_alert_without_startsAt_continues_its_episode(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    item = {"labels": {"alertname": "Heartbeat", "service": "cron"}}
    await client.ingest(GENERIC, [item])
    client.clock.advance(timedelta(minutes=1))

    await client.ingest(GENERIC, [item])

    (inc,) = await client.incidents()
    (shown,) = (await client.incident(inc["id"]))["alerts"]
    assert shown["receive_count"] == 2
    assert shown["startsAt"] == "2026-11-28T03:00:00Z"


# ---- rejections store nothing


@asynccontextmanager
async def _stores_nothing(client: ApiClient) -> AsyncIterator[None]:
    before = (
        await client.metric(RECEIVED),
        await client.stored_alerts(),
        await client.incidents(),
    )
    yield
    after = (
        await client.metric(RECEIVED),
        await client.stored_alerts(),
        await client.incidents(),
    )
    assert after == before


async def _baseline(client: ApiClient) -> None:
    """Something stored already, so that "unchanged" is not just "still empty"."""
    await client.ingest(WEBHOOK, raw_body("firing-single.json"))


async def test_malformed_or_empty_body_is_400(make_client: MakeClient) -> None:
    client = await make_client()
    await _baseline(client)
    bodies = [b'{"version": "4", "alerts": [', b"not json", b"", b"   "]

    for body in bodies:
        async with _stores_nothing(client):
            resp = await client.post_raw(WEBHOOK, body)
            assert resp.status == 400, body
            answer = await resp.json()
            assert answer["error"]
            assert "detail" in answer

    assert await client.metric(REJECTED, reason="malformed") == len(bodies)


INVALID: list[tuple[str, Any, str]] = [
    (WEBHOOK, {**webhook_body(alert()), "version": "3"}, "version"),
    (WEBHOOK, {"version": "4"}, "alerts"),
    (WEBHOOK, {"version": "4", "alerts": {"0": alert()}}, "alerts"),
    (WEBHOOK, [alert()], ""),
    (GENERIC, {"alerts": [alert()]}, ""),
]


async def test_invalid_payload_is_422_naming_the_field(make_client: MakeClient) -> None:
    client = await make_client()
    await _baseline(client)

    for path, body, field in INVALID:
        async with _stores_nothing(client):
            resp = await client.post_raw(path, json.dumps(body).encode())
            assert resp.status == 422, field
            answer = await resp.json()
            assert answer["detail"] == {"field": field}
            assert field in answer["error"]

    assert await client.metric(REJECTED, reason="invalid") == len(INVALID)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100):
        yield data[start : start + 100]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_max_body_is_413(make_client: MakeClient, chunked: bool) -> None:
    body = raw_body("firing-grouped.json")
    client = await make_client(max_body=len(raw_body("firing-single.json")))
    await _baseline(client)
    assert len(body) > client.runtime.settings.max_body

    async with _stores_nothing(client):
        data: Any = _chunks(body) if chunked else body
        resp = await client.post(WEBHOOK, data=data, headers={"Content-Type": "application/json"})
        assert resp.status == 413
        assert "max_body" in (await resp.json())["error"]

    assert await client.metric(REJECTED, reason="too_large") == 1


async def test_more_alerts_than_max_alerts_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_alerts=2)
    await _baseline(client)

    async with _stores_nothing(client):
        resp = await client.post_raw(WEBHOOK, raw_body("firing-grouped.json"))  # 3 alerts
        assert resp.status == 413
        assert "max_alerts" in (await resp.json())["error"]

    assert await client.metric(REJECTED, reason="too_large") == 1
    assert (await client.ingest(WEBHOOK, raw_body("truncated-basic-auth.json")))["new"] == 2


async def test_more_alerts_than_max_alerts_is_413_however_many_are_invalid(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_alerts=2)
    await _baseline(client)
    body = _grouped(1, labels={})

    async with _stores_nothing(client):
        resp = await client.post_raw(WEBHOOK, json.dumps(body).encode())
        assert resp.status == 413
        assert "max_alerts" in (await resp.json())["error"]

    assert await client.metric(REJECTED, reason="too_large") == 1
    assert await client.metric(REJECTED, reason="invalid_alert") == 0


# ---- one invalid alert is refused by its index, the others are stored


def _grouped(index: int, **change: Any) -> dict[str, Any]:
    """firing-grouped.json, as Alertmanager sent it (three alerts of one group), with
    the alert at `index` changed."""
    body: dict[str, Any] = copy.deepcopy(capture("firing-grouped.json")["body"])
    body["alerts"][index].update(change)
    return body


def _grouped_labels(index: int, **labels: str) -> dict[str, Any]:
    body = _grouped(index)
    body["alerts"][index]["labels"].update(labels)
    return body


def _grouped_annotations(index: int, **annotations: str) -> dict[str, Any]:
    body = _grouped(index)
    body["alerts"][index]["annotations"].update(annotations)
    return body


def _grouped_fingerprint_of(index: int, other: int) -> dict[str, Any]:
    body = _grouped(index)
    body["alerts"][index]["fingerprint"] = body["alerts"][other]["fingerprint"]
    return body


def _generic(index: int, bad: dict[str, Any]) -> list[dict[str, Any]]:
    items = [alert("Errors", service="api", instance=f"api-{i}") for i in range(3)]
    items[index] = bad
    return items


PARTLY_INVALID: list[Any] = [
    pytest.param(WEBHOOK, _grouped(1, labels={}), 1, "alerts[1].labels", id="no-labels"),
    pytest.param(WEBHOOK, _grouped(0, startsAt="yesterday"), 0, "alerts[0].startsAt", id="time"),
    pytest.param(WEBHOOK, _grouped(2, status="pending"), 2, "alerts[2].status", id="status"),
    pytest.param(
        WEBHOOK, _grouped_labels(1, **{"bad-name": "x"}), 1, "alerts[1].labels", id="label-name"
    ),
    pytest.param(
        WEBHOOK,
        _grouped_fingerprint_of(1, 0),
        1,
        "alerts[1].fingerprint",
        id="another-alerts-fingerprint",
    ),
    pytest.param(
        WEBHOOK,
        _grouped_annotations(2, summary="x\x00y"),
        2,
        "alerts[2].annotations.summary",
        id="nul-annotation",
    ),
    pytest.param(
        WEBHOOK, _grouped_labels(0, job="a\x00"), 0, "alerts[0].labels.job", id="nul-label"
    ),
    pytest.param(
        WEBHOOK,
        _grouped(1, generatorURL="http://x/\x00"),
        1,
        "alerts[1].generatorURL",
        id="nul-url",
    ),
    pytest.param(
        GENERIC, _generic(1, {"labels": {"alertname": 1}}), 1, "[1].labels.alertname", id="generic"
    ),
    pytest.param(
        GENERIC,
        _generic(0, alert("Errors", annotations={"summary": "\x00"}, service="api")),
        0,
        "[0].annotations.summary",
        id="generic-nul",
    ),
    pytest.param(
        GENERIC,
        _generic(2, {**alert("Errors", service="api"), "fingerprint": "0123456789abcdef"}),
        2,
        "[2].fingerprint",
        id="generic-fingerprint",
    ),
]


@pytest.mark.parametrize(("path", "body", "index", "field"), PARTLY_INVALID)
async def test_an_invalid_alert_is_refused_by_its_index_and_the_others_stored(
    make_client: MakeClient, path: str, body: Any, index: int, field: str
) -> None:
    client = await make_client()
    sent: list[dict[str, Any]] = body["alerts"] if path == WEBHOOK else body

    resp = await client.post_raw(path, json.dumps(body).encode())

    assert resp.status == 422, await resp.text()
    answer = await resp.json()
    assert answer["error"].startswith(f"1 of 3 alerts refused; 2 stored: {field}: "), answer
    detail = answer["detail"]
    (refused,) = detail.pop("refused")
    assert refused == {"index": index, "field": field, "error": refused["error"]}
    assert refused["error"].startswith(f"{field}: ")
    (incident,) = detail.pop("incidents")
    assert detail == {
        "stored": 2,
        "received": 2,
        "new": 2,
        "updated": 0,
        "duplicate": 0,
        "unrouted": 0,
    }
    stored = sorted(row["labels"]["instance"] for row in await client.stored_alerts())
    assert stored == sorted(a["labels"]["instance"] for i, a in enumerate(sent) if i != index)
    assert (await client.incident(incident))["alert_count"] == 2
    assert await client.metric(RECEIVED) == 2
    assert await client.metric(REJECTED, reason="invalid_alert") == 1
    assert await client.metric(REJECTED, reason="invalid") == 0

    # Sent again as it was (a person retrying): the stored alerts are duplicates.
    again = await client.post_raw(path, json.dumps(body).encode())
    assert again.status == 422
    assert (await again.json())["detail"]["duplicate"] == 2
    assert len(await client.stored_alerts()) == 2


async def test_two_refused_alerts_are_listed_in_order(make_client: MakeClient) -> None:
    client = await make_client()
    body = _grouped(0, labels={})
    body["alerts"][2]["fingerprint"] = body["alerts"][1]["fingerprint"]

    resp = await client.post_raw(WEBHOOK, json.dumps(body).encode())

    assert resp.status == 422
    answer = await resp.json()
    assert answer["error"].startswith("2 of 3 alerts refused; 1 stored: alerts[0].labels: ")
    assert answer["error"].endswith("(and 1 more)")
    assert [(r["index"], r["field"]) for r in answer["detail"]["refused"]] == [
        (0, "alerts[0].labels"),
        (2, "alerts[2].fingerprint"),
    ]
    assert answer["detail"]["stored"] == 1
    assert await client.metric(REJECTED, reason="invalid_alert") == 2


@pytest.mark.parametrize("path", [WEBHOOK, GENERIC])
async def test_every_alert_refused_is_422_and_stores_nothing(
    make_client: MakeClient, path: str
) -> None:
    client = await make_client()
    await _baseline(client)
    items = capture("firing-grouped.json")["body"]["alerts"]
    broken = [{**item, "labels": {**item["labels"], "bad-name": "x"}} for item in items]
    body = (
        {**capture("firing-grouped.json")["body"], "alerts": broken} if path == WEBHOOK else broken
    )

    async with _stores_nothing(client):
        resp = await client.post_raw(path, json.dumps(body).encode())
        assert resp.status == 422
        answer = await resp.json()

    assert answer["error"].startswith("3 of 3 alerts refused; 0 stored: ")
    detail = answer["detail"]
    assert [r["index"] for r in detail.pop("refused")] == [0, 1, 2]
    assert detail == {
        "stored": 0,
        "received": 0,
        "new": 0,
        "updated": 0,
        "duplicate": 0,
        "unrouted": 0,
        "incidents": [],
    }
    assert await client.metric(REJECTED, reason="invalid_alert") == 3


async def test_a_resolve_with_other_labels_does_not_resolve_the_alert_of_its_fingerprint(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    data = capture("resolved-endsAt-before-startsAt.json")
    await client.ingest(WEBHOOK, data["firing_body"])
    body = copy.deepcopy(data["body"])
    (resolve,) = body["alerts"]
    resolve["labels"]["instance"] = "elsewhere:9100"

    resp = await client.post_raw(WEBHOOK, json.dumps(body).encode())

    assert resp.status == 422
    (refused,) = (await resp.json())["detail"]["refused"]
    assert refused["field"] == "alerts[0].fingerprint"
    assert resolve["fingerprint"] in refused["error"]  # the one given
    assert fingerprint(resolve["labels"]) in refused["error"]  # the one of its labels
    (inc,) = await client.incidents()
    assert (inc["alert_count"], inc["firing_count"]) == (1, 1), "still firing"
    assert len(await client.stored_alerts()) == 1


# ---- how the body arrives


async def test_a_gzip_body_is_accepted(make_client: MakeClient) -> None:
    client = await make_client()
    body = gzip.compress(raw_body("firing-grouped.json"))

    resp = await client.post_raw(WEBHOOK, body, headers={"Content-Encoding": "gzip"})

    assert resp.status == 200, await resp.text()
    assert len(await client.stored_alerts()) == 3


async def test_a_corrupt_gzip_body_is_400_naming_the_encoding(make_client: MakeClient) -> None:
    client = await make_client()
    await _baseline(client)
    corrupt = [b"\x1f\x8b\x08\x00garbage" * 10, raw_body("firing-single.json")]

    for body in corrupt:
        async with _stores_nothing(client):
            resp = await client.post_raw(WEBHOOK, body, headers={"Content-Encoding": "gzip"})
            assert resp.status == 400, await resp.text()
            assert "gzip" in (await resp.json())["error"]

    assert await client.metric(REJECTED, reason="malformed") == len(corrupt)


async def test_a_client_that_hangs_up_mid_body_stores_nothing_and_logs_no_traceback(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Served as `itsmd run` serves (serve.py): aiohttp does not cancel the handler of a
    closed connection, so the handler sees the hang-up while it reads the body."""
    caplog.set_level(logging.DEBUG)
    app = build_app(Settings(database=sqlite_url), rules=rule_set(DEFAULT_RULES), run_checks=False)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    port = get_free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    runtime = app[RUNTIME]

    def rejected() -> float:
        exposition = generate_latest(runtime.metrics.registry).decode()
        return metric_value(exposition, REJECTED, reason="malformed")

    try:
        body = raw_body("firing-grouped.json")
        head = (
            f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head.encode() + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler waits for the rest of the body
        writer.close()
        await writer.wait_closed()
        await async_wait_until(rejected, what="the hang-up to be counted")

        assert rejected() == 1
        assert runtime.db is not None
        count = await runtime.db.read(
            lambda conn: conn.execute(select(func.count()).select_from(alerts_table)).scalar()
        )
        assert count == 0
    finally:
        await runner.cleanup()
    assert [r for r in caplog.records if r.exc_info] == []
    noted = [r for r in caplog.records if r.name.startswith(("itsmd.api", "aiohttp"))]
    assert len(noted) <= 1, [r.getMessage() for r in noted]
    assert all(r.levelno < logging.ERROR for r in noted), [r.getMessage() for r in noted]


# ---- the store cannot commit: 503, and the retry is stored once


Release = Callable[[], Awaitable[None]]


async def _lock_the_store(db_url: str) -> Release:
    """Take the alerts table away from the daemon until the returned release is awaited."""
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        lite = sqlite3.connect(path, isolation_level=None, timeout=5)
        lite.execute("BEGIN EXCLUSIVE")

        async def release_sqlite() -> None:
            lite.execute("ROLLBACK")
            lite.close()

        return release_sqlite
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")

    async def release_postgres() -> None:
        await tx.rollback()
        await conn.close()

    return release_postgres


async def test_store_that_cannot_commit_answers_503_and_the_retry_is_stored_once(
    make_client: MakeClient, db_url: str
) -> None:
    client = await make_client(busy_timeout=timedelta(milliseconds=200))
    await _baseline(client)
    body = raw_body("firing-grouped.json")

    release = await _lock_the_store(db_url)
    try:
        resp = await client.post_raw(WEBHOOK, body)
        assert resp.status == 503, await resp.text()
        assert resp.headers.get("Retry-After")
        assert "cannot store" in (await resp.json())["error"]
    finally:
        await release()

    assert await client.metric(REJECTED, reason="unavailable") == 1
    assert len(await client.stored_alerts()) == 1, "nothing of the refused request"
    result = await client.ingest(WEBHOOK, body)  # Alertmanager retries
    assert result["new"] == 3
    rows = await client.stored_alerts()
    assert len(rows) == 4
    (inc,) = [i for i in await client.incidents() if i["service"] == "api"]
    assert inc["alert_count"] == 3
    assert all(a["receive_count"] == 1 for a in (await client.incident(inc["id"]))["alerts"])


async def test_a_read_the_store_cannot_answer_is_a_503_naming_the_cause(
    postgres_url: str, aiohttp_client: Any
) -> None:
    """PostgreSQL: reads wait at most `busy_timeout` for a lock (SQLite's readers never do)."""
    settings = Settings(database=postgres_url, busy_timeout=timedelta(milliseconds=200))
    app = build_app(settings, rules=rule_set(DEFAULT_RULES), run_checks=False)
    client = await aiohttp_client(app)
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
            resp = await client.get("/api/v1/incidents")
            assert resp.status == 503, await resp.text()
            assert resp.headers.get("Retry-After")
            error = (await resp.json())["error"]
            assert error.startswith("cannot read the store right now: ")
            assert "lock timeout" in error
    finally:
        await conn.close()
    assert (await client.get("/api/v1/incidents")).status == 200
