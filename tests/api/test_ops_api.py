"""Operational endpoints: health, readiness, the metrics of docs/metrics.md, and `/-/reload`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.api.api_support import (
    DEFAULT_RULES,
    GENERIC,
    WEBHOOK,
    ApiClient,
    MakeClient,
    alert,
    metric_value,
    raw_body,
)

# Metrics of docs/metrics.md, with their Prometheus types.
METRICS = {
    "itsmd_alerts_received": "counter",
    "itsmd_alerts_rejected": "counter",
    "itsmd_alerts_unrouted": "counter",
    "itsmd_incidents_opened": "counter",
    "itsmd_incidents_resolved": "counter",
    "itsmd_incidents_open": "gauge",
    "itsmd_ingest_duration_seconds": "histogram",
    "itsmd_correlation_duration_seconds": "histogram",
    "itsmd_rules_loaded": "gauge",
    "itsmd_rules_last_reload_success": "gauge",
    "itsmd_rules_last_reload_timestamp_seconds": "gauge",
}


async def test_healthy_and_ready_once_started(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200


async def test_not_ready_once_the_writer_stopped(make_client: MakeClient) -> None:
    client = await make_client()
    writer = client.runtime.writer
    assert writer is not None
    await writer.stop()
    assert (await client.get("/-/ready")).status == 503
    assert (await client.get("/-/healthy")).status == 200
    resp = await client.post_raw(WEBHOOK, raw_body("firing-single.json"))
    assert resp.status == 503, "not stored: Alertmanager must retry"
    assert resp.headers.get("Retry-After")
    assert await client.stored_alerts() == []


async def test_metrics_after_some_traffic(make_client: MakeClient) -> None:
    client = await make_client(
        "incidents:\n"
        "  - name: by-service\n"
        "    match: '{service=~\".+\"}'\n"
        "    group_by: [service]\n"
        "    auto_resolve: 0s\n"
    )
    await client.ingest(WEBHOOK, raw_body("firing-grouped.json"))  # api P2: medium x critical
    await client.ingest(WEBHOOK, raw_body("firing-group-grew.json"))  # search P3: x warning
    await client.ingest(WEBHOOK, raw_body("truncated-basic-auth.json"))  # no service: unrouted
    await client.ingest(WEBHOOK, raw_body("mixed-firing-resolved.json"))
    await client.ingest(GENERIC, [alert("Disk", service="nas")])  # nas P4: medium x low
    await client.post_raw(WEBHOOK, b"{")  # malformed
    await client.post_raw(WEBHOOK, b'{"version": "4", "alerts": [{}]}')  # invalid
    await client.ingest(WEBHOOK, raw_body("resolved.json"))  # api all clear: auto-resolved
    resp = await client.act("INC-2", "resolve")  # search, by hand
    assert resp.status == 200
    successful_ingests = 6

    text = await client.metrics_text()

    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert {name: types.get(name) for name in METRICS} == METRICS

    def value(name: str, **labels: str) -> float:
        return metric_value(text, name, **labels)

    received = "itsmd_alerts_received_total"
    assert value(received, source="alertmanager", status="firing") == 3 + 3 + 2 + 2
    assert value(received, source="alertmanager", status="resolved") == 1 + 2
    assert value(received, source="generic", status="firing") == 1
    assert value("itsmd_alerts_rejected_total", reason="malformed") == 1
    assert value("itsmd_alerts_rejected_total", reason="invalid_alert") == 1
    assert value("itsmd_alerts_rejected_total") == 2
    assert value("itsmd_alerts_unrouted_total") == 2
    assert value("itsmd_incidents_opened_total", rule="by-service", priority="P2") == 1
    assert value("itsmd_incidents_opened_total", rule="by-service", priority="P3") == 1
    assert value("itsmd_incidents_opened_total", rule="by-service", priority="P4") == 1
    assert value("itsmd_incidents_opened_total") == 3
    assert value("itsmd_incidents_resolved_total", how="auto") == 1
    assert value("itsmd_incidents_resolved_total", how="manual") == 1
    open_now = {p: value("itsmd_incidents_open", priority=p) for p in ("P1", "P2", "P3", "P4")}
    assert open_now == {"P1": 0, "P2": 0, "P3": 0, "P4": 1}
    assert value("itsmd_incidents_open") == 1
    assert value("itsmd_ingest_duration_seconds_count") == successful_ingests
    assert value("itsmd_ingest_duration_seconds_sum") > 0
    assert value("itsmd_correlation_duration_seconds_count") == successful_ingests
    assert value("itsmd_rules_loaded") == 1
    assert value("itsmd_rules_last_reload_success") == 1
    assert value("itsmd_rules_last_reload_timestamp_seconds") == client.clock.now.timestamp()


async def test_metrics_content_type(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.get("/metrics")
    assert resp.content_type == "text/plain"  # Prometheus text exposition
    assert "# TYPE itsmd_alerts_received_total counter" in await resp.text()


# ---- reload


BROKEN_RULES = """\
incidents:
  - name: broken
    match: '{service=~"(unclosed"}'
"""
OTHER_RULES = """\
incidents:
  - name: first
    match: '{team="a"}'
  - name: second
    match: '{}'
"""


async def _reloadable(make_client: MakeClient, tmp_path: Path) -> tuple[ApiClient, Path]:
    """An app whose config file and rule file are in tmp_path, as `itsmd run` has them."""
    rules = tmp_path / "rules.yml"
    rules.write_text(DEFAULT_RULES, encoding="utf-8")
    config = tmp_path / "itsmd.yml"
    config.write_text("rules: rules.yml\n", encoding="utf-8")
    client = await make_client(DEFAULT_RULES, config_file=str(config), rules=(str(rules),))
    return client, rules


async def test_reload_takes_new_rules(make_client: MakeClient, tmp_path: Path) -> None:
    client, rules = await _reloadable(make_client, tmp_path)
    rules.write_text(OTHER_RULES, encoding="utf-8")
    client.clock.advance(timedelta(minutes=5))

    resp = await client.post("/-/reload")

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["rules"] == 2
    assert await client.metric("itsmd_rules_loaded") == 2
    assert await client.metric("itsmd_rules_last_reload_success") == 1
    stamp = await client.metric("itsmd_rules_last_reload_timestamp_seconds")
    assert stamp == client.clock.now.timestamp()
    result = await client.webhook(alert("Down", service="api"))
    assert (await client.incident(result["incidents"][0]))["rule"] == "second"


async def test_reload_with_a_bad_rule_file_keeps_the_old_rules(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client, rules = await _reloadable(make_client, tmp_path)
    loaded_at = await client.metric("itsmd_rules_last_reload_timestamp_seconds")
    rules.write_text(BROKEN_RULES, encoding="utf-8")
    client.clock.advance(timedelta(minutes=5))

    resp = await client.post("/-/reload")

    assert resp.status == 422
    answer = await resp.json()
    assert "previous" in answer["error"]
    assert any(f"{rules}:3:" in problem for problem in answer["detail"]), answer["detail"]
    assert await client.metric("itsmd_rules_last_reload_success") == 0
    assert await client.metric("itsmd_rules_loaded") == 2
    assert await client.metric("itsmd_rules_last_reload_timestamp_seconds") == loaded_at
    result = await client.webhook(alert("Down", service="api"))
    assert (await client.incident(result["incidents"][0]))["rule"] == "by-service"

    rules.write_text(OTHER_RULES, encoding="utf-8")  # fixed: the next reload recovers
    assert (await client.post("/-/reload")).status == 200
    assert await client.metric("itsmd_rules_last_reload_success") == 1


async def test_reconcile_status_without_alertmanagers_configured(make_client: MakeClient) -> None:
    client = await make_client()
    answer = await client.get("/api/v1/reconcile")
    assert answer.status == 200
    assert await answer.json() == {
        "configured": False,
        "alertmanagers": [],
        "reconcile_every": None,
        "grace": None,
        "receiver": None,
        "leader": False,
        "last_round": None,
    }
