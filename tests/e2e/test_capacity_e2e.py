"""End-to-end capacity forecasting: a real Prometheus scrapes a gauge that rises
linearly in real time, the daemon (a real `itsmd run`) queries it on schedule, fits
the trend and raises CapacityForecast stating when the threshold will be crossed;
the prediction must be within 10% of the true time left (issue: capacity checks).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from itsmd.durations import parse_time
from tests.conftest import async_wait_until
from tests.e2e.conftest import ItsmdFactory
from tests.e2e.prometheus_peer import PrometheusFactory, RisingGauge, exporter

pytestmark = pytest.mark.e2e
START, RATE_PER_S, LIMIT = 100.0, 5.0, 1000.0  # crosses LIMIT 180 s after the gauge starts
RULES = {"incidents": [{"name": "per-alert", "match": "{}", "group_by": ["alertname"]}]}


def checks_rules(rules_dir: Path) -> None:
    check = {
        "name": "queue-growth",
        "type": "prometheus",
        "service": "mail",
        "query": 'demo_rising{queue="emails"}',
        "interval": "2s",
        "timeout": "1s",
        "critical": {"above": LIMIT},
        "forecast": {"over": "1m", "horizon": "1h"},
    }
    (rules_dir / "rules.yml").write_text(json.dumps({**RULES, "checks": [check]}))


async def test_a_rising_series_raises_a_forecast_that_states_the_exhaustion_time(
    prometheus: PrometheusFactory, itsmd_server: ItsmdFactory, tmp_path: Path
) -> None:
    gauge = RisingGauge()
    async with exporter(gauge) as target:
        gauge.set(START, RATE_PER_S)
        true_crossing = datetime.now(UTC).timestamp() + (LIMIT - START) / RATE_PER_S
        prom = await asyncio.to_thread(prometheus.start, scrape_targets=[target])
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir()
        checks_rules(rules_dir)
        config = {"connectors": {"prometheus": {"url": prom.url, "timeout": "1s"}}}
        daemon = await asyncio.to_thread(itsmd_server.start, rules_dir=rules_dir, config=config)

        async def forecast_alert() -> dict[str, Any] | None:
            incidents = (await asyncio.to_thread(daemon.get, "/api/v1/incidents")).json()
            for inc in incidents["incidents"]:
                detail = await asyncio.to_thread(daemon.get, f"/api/v1/incidents/{inc['id']}")
                for a in detail.json()["alerts"]:
                    if a["labels"]["alertname"] == "CapacityForecast":
                        return dict(a)
            return None

        found = await async_wait_until(
            forecast_alert, timeout_s=40, interval_s=0.5, what="a CapacityForecast alert"
        )
        seen_at = datetime.now(UTC).timestamp()
        capacity = (await asyncio.to_thread(daemon.get, "/api/v1/capacity")).json()

    assert found["labels"]["check"] == "queue-growth"
    assert found["labels"]["queue"] == "emails"  # the series' labels are carried over
    predicted = parse_time(found["annotations"]["exhausts_at"]).timestamp()
    left = true_crossing - seen_at
    assert left > 60, "the forecast came too late to be a forecast"
    assert abs(predicted - true_crossing) <= 0.1 * left, (predicted, true_crossing, left)
    assert (
        f"will be above 1000 by {found['annotations']['exhausts_at']}"
        in (found["annotations"]["summary"])
    )
    (entry,) = capacity["capacity"]
    assert entry["threshold"] == {"above": LIMIT}
    assert abs(parse_time(entry["exhausts_at"]).timestamp() - true_crossing) <= 0.1 * left
    metric = daemon.metric("itsmd_capacity_exhaustion_seconds", check="queue-growth")
    assert metric is not None
    assert 0 < metric < (LIMIT - START) / RATE_PER_S
