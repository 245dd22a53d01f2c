"""Group commit keeps one sender's mistake its own: when a merged batch fails for a
reason that is not an outage, each request runs alone and only the faulty one fails
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import SQLAlchemyError

from itsmd.correlation.fingerprint import fingerprint
from itsmd.models import Alert, AlertStatus
from tests.api.api_support import T0, MakeClient

RULES = """\
incidents:
  - name: by-service
    match: '{}'
    group_by: [service]
"""


def domain_alert(service: str, annotations: Any = None) -> Alert:
    labels = {"alertname": "Down", "service": service}
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus.FIRING,
        labels=labels,
        annotations=annotations if annotations is not None else {"summary": "down"},
        starts_at=T0,
        ends_at=None,
        generator_url="",
        source="alertmanager",
        raw={"startsAt": "set"},
    )


async def test_a_request_that_breaks_the_batch_fails_alone(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    writer = client.runtime.writer
    assert writer is not None
    # A value the store cannot serialize stands for anything that makes a statement
    # fail on one request's data (not an outage).
    broken = domain_alert("db", annotations={"summary": {"not", "json"}})
    good, bad, other = await asyncio.gather(
        writer.ingest([domain_alert("api")]),
        writer.ingest([broken]),
        writer.ingest([domain_alert("web")]),
        return_exceptions=True,
    )
    assert isinstance(bad, SQLAlchemyError)
    assert "not JSON serializable" in str(bad)
    for result in (good, other):
        assert not isinstance(result, BaseException)
        assert len(result.incidents) == 1
    assert sorted(i["service"] for i in await client.incidents()) == ["api", "web"]
    stored = {a["labels"]["service"] for a in await client.stored_alerts()}
    assert stored == {"api", "web"}
    assert await client.metric("itsmd_store_errors_total", operation="ingest") == 1


@pytest.mark.parametrize("requests", [1, 3])
async def test_good_requests_merged_into_one_batch_are_stored_together(
    make_client: MakeClient, requests: int
) -> None:
    client = await make_client(RULES)
    writer = client.runtime.writer
    assert writer is not None
    services = [f"s{n}" for n in range(requests)]
    await asyncio.gather(*(writer.ingest([domain_alert(s)]) for s in services))
    assert sorted(i["service"] for i in await client.incidents()) == services
