"""An Alertmanager-webhook load generator (payload version 4), asyncio + aiohttp.

It posts what Alertmanager would post during an alert storm: groups of alerts,
a share of them re-sent unchanged (repeats, retries, HA replicas), from a fixed
number of concurrent senders, for a bounded count of requests. Loopback only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from itsmd.correlation.fingerprint import fingerprint


@dataclass(frozen=True)
class Load:
    requests: int = 2000
    alerts_per_request: int = 1
    concurrency: int = 16
    duplicate_share: float = 0.0  # share of requests that re-send an earlier body
    groups: int = 100  # distinct correlation groups (service label values)
    seed: int = 1
    first_instance: int = 0  # instance numbers start here: another load's alerts are new


@dataclass
class LoadResult:
    sent_requests: int = 0
    sent_alerts: int = 0
    distinct_alerts: int = 0
    distinct_groups: int = 0
    non_2xx: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s) or [0.0]
        return {
            "requests": self.sent_requests,
            "alerts": self.sent_alerts,
            "distinct_alerts": self.distinct_alerts,
            "distinct_groups": self.distinct_groups,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(self.sent_requests / self.elapsed_s, 1),
            "alerts_per_s": round(self.sent_alerts / self.elapsed_s, 1),
            "p50_ms": round(_quantile(lat, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(lat, 0.99) * 1000, 2),
        }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _alert(serial: int, group: int, starts_at: str) -> dict[str, Any]:
    labels = {
        "alertname": "BenchInstanceDown",
        "severity": ("critical", "warning")[group % 2],
        "service": f"svc-{group}",
        "env": "prod",
        "instance": f"host-{serial}:9100",
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"host-{serial} is down"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": fingerprint(labels),
    }


def _selector(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def payloads(load: Load) -> Iterator[tuple[bytes, int, int | None]]:
    """Bodies to post, how many new alerts each carries, and its group (None: re-send)."""
    rng = random.Random(load.seed)
    starts_at = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sent: list[bytes] = []
    serial = load.first_instance
    for request in range(load.requests):
        if sent and rng.random() < load.duplicate_share:
            yield rng.choice(sent), 0, None
            continue
        # Like Alertmanager, one notification carries alerts of one group.
        group = request % load.groups
        alerts = [_alert(serial + i, group, starts_at) for i in range(load.alerts_per_request)]
        serial += load.alerts_per_request
        group_labels = {"alertname": "BenchInstanceDown", "service": f"svc-{group}"}
        body = orjson.dumps(
            {
                "version": "4",
                "groupKey": f"{{}}:{_selector(group_labels)}",
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "itsmd",
                "groupLabels": group_labels,
                "commonLabels": group_labels,
                "commonAnnotations": {},
                "externalURL": "http://alertmanager.example:9093",
                "alerts": alerts,
            }
        )
        sent.append(body)
        yield body, len(alerts), group


async def run_load(
    url: str | Sequence[str], load: Load, headers: dict[str, str] | None = None
) -> LoadResult:
    """Post `load`; with several URLs (replicas), each sender keeps to one of them."""
    urls = [url] if isinstance(url, str) else list(url)
    result = LoadResult()
    bodies = list(payloads(load))
    result.distinct_alerts = sum(n for _, n, _ in bodies)
    result.distinct_groups = len({g for _, _, g in bodies if g is not None})
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body, _, _ in bodies:
        queue.put_nowait(body)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=load.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def sender(url: str) -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=hdrs) as resp:
                        await resp.read()
                        ok = 200 <= resp.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    result.errors += 1
                    continue
                result.latencies_s.append(time.perf_counter() - started)
                result.sent_requests += 1
                result.sent_alerts += load.alerts_per_request
                if not ok:
                    result.non_2xx += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender(urls[i % len(urls)]) for i in range(load.concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result
