"""End-to-end: the Prometheus client against a real Prometheus on loopback.

Two data paths: history backfilled with promtool before Prometheus starts (queryable
at once, deterministic: queried at explicit times), and a live gauge served by a tiny
aiohttp exporter in the test, scraped every second. The first scrape lands about
5.7 s after Prometheus is ready (target discovery runs on a 5 s tick), so the live
test polls with a deadline instead of sleeping.

The `prometheus` fixture (tests/e2e/conftest.py, built on tests/e2e/prometheus_peer.py)
follows the Alertmanager one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from itsmd_connectors.prometheus import PrometheusClient, PrometheusError, Series
from tests.conftest import async_wait_until
from tests.e2e.prometheus_peer import (
    FIRST_SCRAPE_TIMEOUT_S,
    PrometheusFactory,
    PrometheusProc,
    RisingGauge,
    exporter,
)

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT_S = 5.0

# Backfill: demo_fs_avail_bytes falls linearly from 1000 to 400 over 6 h, one sample a minute.
BACKFILL_MINUTES = 360
BACKFILL_LABELS = {"mountpoint": "/data"}


def backfill_value(minute: int) -> float:
    return 1000 - 600 * minute / BACKFILL_MINUTES


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(session: aiohttp.ClientSession, prom: PrometheusProc) -> PrometheusClient:
    return PrometheusClient(lambda: session, prom.url, CLIENT_TIMEOUT_S)


# --- backfilled history ----------------------------------------------------------------------


def falling_disk(end: int) -> str:
    """OpenMetrics for promtool: 6 h of free space, 1000 -> 400, ending at `end`."""
    labels = ",".join(f'{name}="{value}"' for name, value in BACKFILL_LABELS.items())
    lines = ["# HELP demo_fs_avail_bytes Free bytes.", "# TYPE demo_fs_avail_bytes gauge"]
    for minute in range(BACKFILL_MINUTES + 1):
        at = end - (BACKFILL_MINUTES - minute) * 60
        lines.append(f"demo_fs_avail_bytes{{{labels}}} {backfill_value(minute)!r} {at}")
    return "\n".join([*lines, "# EOF", ""])


async def test_backfilled_history_and_errors(
    prometheus: PrometheusFactory, session: aiohttp.ClientSession
) -> None:
    end = int(time.time()) // 60 * 60 - 120  # a whole minute, just past
    prom = prometheus.start(backfill=falling_disk(end))
    prom_client = client(session, prom)
    at = datetime.fromtimestamp(end, UTC)
    name = {"__name__": "demo_fs_avail_bytes", **BACKFILL_LABELS}

    history = await prom_client.query_range(
        "demo_fs_avail_bytes", at - timedelta(hours=6), at, step_s=60
    )
    expected = [(end - (BACKFILL_MINUTES - m) * 60.0, backfill_value(m)) for m in range(361)]
    assert history == [Series(name, expected)]

    hourly = await prom_client.query_range("demo_fs_avail_bytes", at - timedelta(hours=1), at, 600)
    assert [value for _, value in hourly[0].samples] == pytest.approx(
        [500, 1450 / 3, 1400 / 3, 450, 1300 / 3, 1250 / 3, 400]
    )

    assert await prom_client.query("demo_fs_avail_bytes", at=at - timedelta(hours=3)) == [
        Series(name, [(end - 3 * 3600.0, 700.0)])
    ]
    (trend,) = await prom_client.query("deriv(demo_fs_avail_bytes[6h]) * 3600", at=at)
    assert trend.samples[0][1] == pytest.approx(-100)

    with pytest.raises(PrometheusError) as caught:
        await prom_client.query("sum((")
    assert caught.value.error_type == "bad_data"
    assert str(caught.value).startswith(f"Prometheus at {prom.url}: bad_data: ")

    await asyncio.to_thread(prom.stop)
    with pytest.raises(PrometheusError) as caught:
        await prom_client.query("up")
    assert str(caught.value) == f"Prometheus at {prom.url}: connection refused"


# --- live scrapes -------------------------------------------------------------------------------


async def test_live_gauge_is_scraped_and_queried(
    prometheus: PrometheusFactory, session: aiohttp.ClientSession
) -> None:
    gauge = RisingGauge()
    async with exporter(gauge) as target:
        prom = await asyncio.to_thread(prometheus.start, scrape_targets=[target])
        prom_client = client(session, prom)

        async def scraped() -> list[Series]:
            return await prom_client.query("demo_rising")

        async def value_now() -> float:
            (series,) = await prom_client.query("demo_rising")
            return series.samples[0][1]

        found: list[Series] = await async_wait_until(
            scraped, timeout_s=FIRST_SCRAPE_TIMEOUT_S, interval_s=0.2, what="the first scrape"
        )
        (series,) = found
        assert series.labels == {
            "__name__": "demo_rising",
            "queue": "emails",
            "instance": target,
            "job": "exporter",
        }
        queried_at, first = series.samples[0]  # the query's time; the scrape came before it
        assert gauge.value(queried_at - 3) <= first <= gauge.value(queried_at)

        async def rose() -> bool:
            return await value_now() > first

        async def was_set() -> bool:
            return await value_now() == 5000.0

        await async_wait_until(rose, timeout_s=3, interval_s=0.2, what="a rising gauge")
        gauge.set(5000.0, 0.0)
        await async_wait_until(was_set, timeout_s=3, interval_s=0.2, what="the value just set")
