"""The sink kinds as the daemon finds them, and the delivery policy (pure parts).

Built-in sinks register through the same entry point group an outside one would;
each kind is named after its module, says what it is, and is documented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from itsmd.notify.config import SinkSpec
from itsmd.notify.connector import SinkKind, installed_kinds
from itsmd.notify.worker import SinkRunner

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "connectors.md").read_text()
BUILT_IN = ("email", "jira", "pagerduty", "servicenow", "slack", "webhook")


def test_every_built_in_sink_is_installed_through_the_entry_point_group() -> None:
    assert sorted(installed_kinds()) == list(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_kind_is_named_after_its_module_and_documented(name: str) -> None:
    kind = installed_kinds()[name]
    assert isinstance(kind, SinkKind)
    assert kind.build.__module__ == f"itsmd_connectors.sinks.{name}"
    assert kind.doc
    assert f"### `{name}`" in DOCS


class _Unused:
    async def send(self, notification: object) -> None:
        raise AssertionError("not sent here")


def runner(backoff_s: float, max_backoff_s: float) -> SinkRunner:
    spec = SinkSpec("s", "webhook", {}, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
    return SinkRunner(spec, sink=_Unused())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 1.6, 2.4), (2, 3.2, 4.8), (3, 6.4, 9.6), (10, 48.0, 72.0)],
)
def test_backoff_doubles_from_the_first_delay_with_jitter_up_to_the_ceiling(
    attempts: int, low: float, high: float
) -> None:
    r = runner(backoff_s=2.0, max_backoff_s=60.0)
    delays = [r.backoff_s(attempts, None) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_a_peer_asking_for_a_delay_is_heard_within_the_ceiling() -> None:
    r = runner(backoff_s=2.0, max_backoff_s=60.0)
    assert r.backoff_s(1, 30.0) == 30.0
    assert r.backoff_s(1, 3600.0) == 60.0
