"""The selector index finds exactly what a scan of every rule in order would find."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itsmd.correlation.matchers import Matcher, MatchOp, Selector, matches_any, parse_selector
from itsmd.correlation.routing import SelectorIndex

NAMES = st.sampled_from(["alertname", "severity", "service", "env"])
VALUES = st.sampled_from(["", "a", "b", "c"])
OPS = st.sampled_from(list(MatchOp))


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    matchers = draw(st.lists(st.tuples(NAMES, OPS, VALUES), max_size=3))
    return Selector(
        tuple(
            Matcher(name, op, value or ".*" if op in (MatchOp.RE, MatchOp.NRE) else value)
            for name, op, value in matchers
        )
    )


RULES = st.lists(st.lists(selectors(), min_size=1, max_size=3), max_size=12)
LABELS = st.dictionaries(NAMES, st.sampled_from(["a", "b", "c", "d"]), max_size=4)


def scan(rules: list[list[Selector]], labels: dict[str, str]) -> int | None:
    return next((i for i, sel in enumerate(rules) if matches_any(sel, labels)), None)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(rules=RULES, labels=LABELS)
def test_index_agrees_with_a_scan_in_rule_order(
    rules: list[list[Selector]], labels: dict[str, str]
) -> None:
    index = SelectorIndex([(i, sel) for i, sel in enumerate(rules)])
    assert index.first(labels) == scan(rules, labels)


def test_indexed_selectors_are_only_checked_for_their_value() -> None:
    checked: list[str] = []

    class Spy(Selector):
        def matches(self, labels: object) -> bool:  # type: ignore[override]
            checked.append(str(self))
            return super().matches(labels)  # type: ignore[arg-type]

    rules = [(f"r{i}", [Spy(parse_selector(f'{{alertname="A{i}"}}').matchers)]) for i in range(100)]
    rules.append(("catch-all", [Spy(())]))
    index = SelectorIndex(rules)
    assert index.first({"alertname": "A42"}) == "r42"
    assert checked == ['{alertname="A42"}']
    checked.clear()
    assert index.first({"alertname": "other"}) == "catch-all"
    assert checked == ["{}"]


def test_a_label_compared_with_the_empty_string_is_not_indexed() -> None:
    index = SelectorIndex(
        [("absent", [parse_selector('{env=""}')]), ("any", [parse_selector("{}")])]
    )
    assert index.first({"service": "x"}) == "absent"
    assert index.first({"env": "prod"}) == "any"
