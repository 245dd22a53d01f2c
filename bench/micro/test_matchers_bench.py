"""Matcher micro-benchmarks: parsing Prometheus selectors and evaluating them."""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from itsmd.correlation.matchers import MatchOp, Selector, parse_selector, parse_selectors

# Selectors as SREs write them in rule files: every operator, regex alternations.
SELECTORS = [
    'InstanceDown{severity="critical", env!="dev", instance=~"api-[0-9]+", '
    'job!~"blackbox|synthetic"}',
    '{alertname=~"KubePod(CrashLooping|NotReady)", namespace!~"kube-system|monitoring", '
    'cluster="eu-1"}',
    '{severity=~"critical|warning", service!=""}',
]

# One selector with all four operators; the label sets below decide on its last matcher.
SELECTOR = parse_selector(SELECTORS[0])

MATCHING = {
    "alertname": "InstanceDown",
    "severity": "critical",
    "env": "prod",
    "instance": "api-7",
    "job": "node",
    "service": "api",
    "cluster": "eu-1",
}
# Differs only in the label of the last matcher (`job!~`), so the non-match figure
# evaluates every matcher too instead of measuring an early exit on the first one.
NOT_MATCHING = {**MATCHING, "job": "blackbox"}


def test_parse_selectors(benchmark: BenchmarkFixture) -> None:
    # The RE2 module caches compiled patterns, so after the first round this measures the
    # parser plus a regex cache hit, as a rules reload of unchanged rules does.
    selectors: tuple[Selector, ...] = benchmark(parse_selectors, SELECTORS)
    assert [len(s.matchers) for s in selectors] == [5, 3, 2]
    assert [m.op for m in selectors[0].matchers] == [
        MatchOp.EQ,
        MatchOp.EQ,
        MatchOp.NE,
        MatchOp.RE,
        MatchOp.NRE,
    ]
    assert selectors[1].matches(MATCHING) is False  # no KubePod alert here


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(MATCHING, True), (NOT_MATCHING, False)],
    ids=["match", "no-match"],
)
def test_selector_matches(
    benchmark: BenchmarkFixture, labels: dict[str, str], expected: bool
) -> None:
    assert benchmark(SELECTOR.matches, labels) is expected


# (a|a)+b backtracks exponentially in Python's re (26 characters took 5 s); RE2 is linear.
HOSTILE = parse_selector('{service=~"(a|a)+b"}')


@pytest.mark.parametrize("length", [100, 10_000])
def test_hostile_regex_is_linear(benchmark: BenchmarkFixture, length: int) -> None:
    assert benchmark(HOSTILE.matches, {"service": "a" * length}) is False
