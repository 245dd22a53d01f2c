"""Fingerprints must equal Alertmanager's byte for byte: identity depends on it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itsmd.correlation import fingerprint as module
from itsmd.correlation.fingerprint import (
    EMPTY_FINGERPRINT,
    _side_by_side,
    fingerprint,
    fingerprints,
    fnv1a_64,
    fnv1a_64_many,
    python_fingerprint,
    python_fingerprints,
)
from tests.conftest import missing_peer

# Both ways of computing one: the compiled code where it is built, and the Python code.
EITHER = pytest.mark.parametrize("of", [fingerprint, python_fingerprint])

FIXTURES = Path(__file__).parents[2] / "fixtures" / "alertmanager"


def fixture_files() -> list[Path]:
    # A missing folder must fail collection, never turn into an empty (skipped) test.
    files = sorted(FIXTURES.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no Alertmanager fixtures in {FIXTURES}")
    return files


def bodies(capture: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every webhook body a capture file holds."""
    if "body" in capture:
        yield capture["body"]
    if "firing_body" in capture:
        yield capture["firing_body"]
    for delivery in capture.get("deliveries", []):
        yield delivery["body"]


@pytest.mark.parametrize("path", fixture_files(), ids=lambda path: path.name)
def test_matches_alertmanager_for_every_fixture_alert(path: Path) -> None:
    alerts = [alert for body in bodies(json.loads(path.read_text())) for alert in body["alerts"]]
    assert alerts
    for alert in alerts:
        assert fingerprint(alert["labels"]) == alert["fingerprint"], alert["labels"]


def test_fixtures_cover_many_label_sets() -> None:
    seen = {
        alert["fingerprint"]
        for path in fixture_files()
        for body in bodies(json.loads(path.read_text()))
        for alert in body["alerts"]
    }
    assert len(seen) >= 15


# Expected values from prometheus/common model/signature_test.go.
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, 14695981039346656037),
        ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
        ({"first-label": "first-label-value"}, 5146282821936882169),
        (
            {"first-label": "first-label-value", "second-label": "second-label-value"},
            3195800080984914717,
        ),
        (
            {
                "first-label": "first-label-value",
                "second-label": "second-label-value",
                "third-label": "third-label-value",
            },
            13843036195897128121,
        ),
    ],
)
@EITHER
def test_matches_prometheus_common_vectors(
    of: Callable[[Mapping[str, str]], str], labels: dict[str, str], expected: int
) -> None:
    assert of(labels) == f"{expected:016x}"


@EITHER
def test_empty_label_set_is_the_fnv_offset_basis(of: Callable[[Mapping[str, str]], str]) -> None:
    assert of({}) == EMPTY_FINGERPRINT == "cbf29ce484222325"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)],
)
def test_fnv1a_64_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


@EITHER
def test_pads_to_sixteen_digits(of: Callable[[Mapping[str, str]], str]) -> None:
    # From resolved-endsAt-before-startsAt.json: the value starts with a zero.
    labels = {
        "alertname": "QueueBacklog",
        "env": "prod",
        "instance": "billing-1:8080",
        "job": "billing",
        "service": "billing",
        "severity": "warning",
    }
    assert of(labels) == "0ab3e094a1cb884b"


@EITHER
def test_separator_keeps_name_and_value_apart(of: Callable[[Mapping[str, str]], str]) -> None:
    assert of({"a": "bc"}) != of({"ab": "c"})
    assert of({"a": "", "b": "c"}) != of({"a": "b", "c": ""})


@EITHER
def test_lone_surrogate_hashes_like_go_replacement_character(
    of: Callable[[Mapping[str, str]], str],
) -> None:
    assert of({"a": "x\ud800y"}) == of({"a": "x\ufffdy"})


label_sets = st.dictionaries(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True), st.text(max_size=20)
)


@given(label_sets)
def test_independent_of_insertion_order(labels: dict[str, str]) -> None:
    assert fingerprint(labels) == fingerprint(dict(reversed(labels.items())))


@given(label_sets)
def test_is_sixteen_lowercase_hex_digits(labels: dict[str, str]) -> None:
    value = fingerprint(labels)
    assert len(value) == 16
    assert set(value) <= set("0123456789abcdef")


@pytest.mark.parametrize("count", [0, 1, 2, 3, 20, 32, 33, 70])
def test_hashes_side_by_side_equal_one_at_a_time(count: int) -> None:
    """Lanes of one wide integer (fnv1a_64_many) give each input's own hash: inputs of
    every length a lane may end at, 0xff bytes, long ones hashed alone, groups of
    any size."""
    rng = random.Random(count)
    lengths = [0, 1, 2, 7, 8, 9, 15, 16, 17, 90, 1023, 1024, 1025, 3000]
    datas = [
        bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(rng.choice(lengths)))
        for _ in range(count)
    ]
    assert fnv1a_64_many(datas) == [fnv1a_64(data) for data in datas]


def test_fingerprints_of_a_webhook_equal_each_alone() -> None:
    label_sets: list[dict[str, str]] = [
        {"alertname": "Down", "instance": f"api-{n}:9100", "ü": "\u2603" * n} for n in range(25)
    ]
    label_sets += [{}, {"alertname": "x" * 2000}, {"a": "\ud800"}]  # none, long, lone surrogate
    assert fingerprints(label_sets) == [fingerprint(labels) for labels in label_sets]


def test_lanes_end_at_every_step() -> None:
    """The lanes themselves, for inputs of every length from none to 40 bytes at once
    (fnv1a_64_many hashes the shortest alone, where the lanes would cost more)."""
    rng = random.Random(7)
    datas = [bytes(rng.randrange(256) for _ in range(n)) for n in [*range(41), 40, 0]]
    assert _side_by_side(datas) == [fnv1a_64(data) for data in datas]
    assert _side_by_side([]) == []


def test_the_compiled_hash_is_built() -> None:
    """`pip install` compiles `_fnv.c` where a C compiler and Python's headers are;
    the tests below compare it with the Python code."""
    if module._compiled is None:
        missing_peer("itsmd.correlation._fnv is not built (a C compiler and Python's headers)")


# Any text: non-ASCII, characters whose UTF-8 holds 0xc3 0xbf, and lone surrogates
# (which `st.text()` alone never draws).
any_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    ),
    max_size=40,
)
any_label_sets = st.dictionaries(any_text, any_text, max_size=12)


@given(st.lists(any_label_sets, max_size=40))
def test_the_compiled_hash_gives_the_python_codes_fingerprints(
    sets: list[dict[str, str]],
) -> None:
    assert fingerprints(sets) == python_fingerprints(sets)
    assert fingerprints(iter(sets)) == python_fingerprints(sets)  # any iterable
    assert [fingerprint(labels) for labels in sets] == [python_fingerprint(s) for s in sets]


def test_the_compiled_hash_leaves_what_it_does_not_take_to_the_python_code() -> None:
    compiled = module._compiled
    if compiled is None:
        missing_peer("itsmd.correlation._fnv is not built")
    labels = {"alertname": "Down", "instance": "api-1:9100"}
    assert compiled.fingerprint(labels) == python_fingerprint(labels)
    for other in [MappingProxyType(labels), {"a": 1}, {1: "a"}, {"a": "x\ud800"}, {"\udfff": ""}]:
        assert compiled.fingerprint(other) is None, other
        assert compiled.fingerprints([labels, other]) == [python_fingerprint(labels), None]
    assert fingerprint(MappingProxyType(labels)) == python_fingerprint(labels)
    with pytest.raises(AttributeError):
        fingerprint({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        compiled.fingerprints(3)  # type: ignore[arg-type]
