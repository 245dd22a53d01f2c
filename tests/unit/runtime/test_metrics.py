"""The daemon's own metrics: series that exist before their first event, and leave
with what they were about."""

from __future__ import annotations

from prometheus_client import generate_latest

from itsmd.runtime.metrics import Metrics
from tests.api.api_support import metric_value


def _problem_series(metrics: Metrics) -> dict[str, float]:
    exposition = generate_latest(metrics.registry).decode()
    return {
        line.split('rule="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("itsmd_problems_opened_total{")
    }


def test_every_problem_rule_in_force_has_a_series_and_a_removed_one_leaves() -> None:
    metrics = Metrics()
    metrics.know_problem_rules(["disk", "oom"])
    assert _problem_series(metrics) == {"disk": 0.0, "oom": 0.0}

    metrics.problems_opened.labels("oom").inc()
    metrics.know_problem_rules(["oom", "net"])  # a reload: disk removed, net added

    assert _problem_series(metrics) == {"oom": 1.0, "net": 0.0}
    exposition = generate_latest(metrics.registry).decode()
    assert metric_value(exposition, "itsmd_problems_opened_total", rule="oom") == 1.0
