"""Tests for itsmd.yamlsource: YAML with line numbers, findings, field readers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import yaml

from itsmd.yamlsource import (
    Finding,
    Findings,
    LoadError,
    LocDict,
    LocList,
    check_keys,
    convert,
    describe,
    expect_list,
    expect_mapping,
    get_bool,
    get_duration,
    get_str,
    get_str_list,
    join,
    line_of,
    load_yaml,
)


def load_errors(text: str) -> list[str]:
    with pytest.raises(LoadError) as info:
        load_yaml(text, "f.yml")
    return [str(p) for p in info.value.findings]


def mapping(text: str) -> LocDict:
    value = load_yaml(text, "f.yml")
    assert isinstance(value, LocDict)
    return value


# --- load_yaml: values and lines -----------------------------------------------------------------


def test_mappings_and_lists_remember_their_lines() -> None:
    doc = mapping(
        "# a comment\n"  # 1
        "top: 1\n"  # 2
        "nested:\n"  # 3
        "  inner: x\n"  # 4
        "\n"  # 5
        "  other: [a, b]\n"  # 6
        "items:\n"  # 7
        "  - one\n"  # 8
        "  - name: two\n"  # 9
        "    extra: 2\n"  # 10
        "  -\n"  # 11
        "    three\n"  # 12
    )
    assert doc == {
        "top": 1,
        "nested": {"inner": "x", "other": ["a", "b"]},
        "items": ["one", {"name": "two", "extra": 2}, "three"],
    }
    assert doc.line == 2
    assert doc.lines == {"top": 2, "nested": 3, "items": 7}
    nested = doc["nested"]
    assert isinstance(nested, LocDict)
    assert (nested.line, nested.line_of("inner"), nested.line_of("other")) == (4, 4, 6)
    assert isinstance(nested["other"], LocList)
    assert nested["other"].lines == [6, 6]
    items = doc["items"]
    assert isinstance(items, LocList)
    assert (items.line, items.lines) == (8, [8, 9, 12])
    assert items[1].line == 9
    assert items[1].line_of("extra") == 10


def test_flow_style_lines() -> None:
    doc = mapping("a: {b: 1,\n    c: 2}\nd: [x,\n  y]\n")
    assert doc["a"].line == 1
    assert doc["a"].lines == {"b": 1, "c": 2}
    assert doc["d"].lines == [3, 4]


def test_line_of_unknown_key_or_index_falls_back_to_the_container() -> None:
    doc = mapping("\n\nk:\n  - a\n")
    assert doc.line_of("missing") == 3
    assert doc["k"].line_of(5) == 4
    assert line_of(doc, "k") == 3
    assert line_of(doc["k"], 0) == 4
    assert line_of({"plain": "dict"}, "plain") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("# only a comment\n", None),
        ("---\n", None),
        ("42\n", 42),
        ("just text\n", "just text"),
        ("on: yes\n", {True: True}),  # YAML 1.1 booleans, as PyYAML reads them
        ("d: 2024-01-01\n", {"d": date(2024, 1, 1)}),
        ("a: &x {k: 1}\nb: *x\n", {"a": {"k": 1}, "b": {"k": 1}}),
    ],
)
def test_load_yaml_values(text: str, expected: Any) -> None:
    assert load_yaml(text, "f.yml") == expected


# --- load_yaml: errors point at the line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nb: 2\na: 3\n",
            "f.yml:3: invalid YAML: duplicate key 'a' (first on line 1)",
        ),
        (
            "outer:\n  x: 1\n  y: 2\n\n  x: 3\n",
            "f.yml:5: invalid YAML: duplicate key 'x' (first on line 2)",
        ),
        (
            "items:\n  - {name: a, name: b}\n",
            "f.yml:2: invalid YAML: duplicate key 'name' (first on line 2)",
        ),
        (
            "1: a\n1: b\n",
            "f.yml:2: invalid YAML: duplicate key 1 (first on line 1)",
        ),
        (
            "m:\n  <<: {k: 1}\n  k: 2\n  k: 3\n",  # own keys may override merged ones, not repeat
            "f.yml:4: invalid YAML: duplicate key 'k' (first on line 3)",
        ),
    ],
)
def test_duplicate_keys_are_errors(text: str, expected: str) -> None:
    assert load_errors(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\n b: 2\n", "f.yml:2: invalid YAML: mapping values are not allowed here"),
        ("a: [1, 2\nb: 3\n", "f.yml:2: invalid YAML: while parsing a flow sequence"),
        ("a: 'open\n\nb: 1\n", "f.yml:4: invalid YAML: while scanning a quoted scalar"),
        ("a:\n\tb: 1\n", "f.yml:2: invalid YAML: while scanning for the next token"),
        ("a: 1\n---\nb: 2\n", "f.yml:2: invalid YAML: expected a single document"),
        ("x: *nowhere\n", "f.yml:1: invalid YAML: found undefined alias 'nowhere'"),
        ("- a\nb: c\n", "f.yml:2: invalid YAML: while parsing a block"),
        (
            "cmd: !!python/object/apply:os.system [id]\n",  # safe loading only
            "f.yml:1: invalid YAML: could not determine a constructor for the tag",
        ),
        ("? [a, b]\n: c\n", "f.yml:1: invalid YAML: a key must be a plain value"),
        ("x:\n  {a: 1}: c\n", "f.yml:2: invalid YAML: a key must be a plain value"),
    ],
)
def test_syntax_errors_name_the_line(text: str, expected: str) -> None:
    errors = load_errors(text)
    assert len(errors) == 1
    assert errors[0].startswith(expected), errors[0]


def test_merge_keys_may_be_overridden() -> None:
    doc_text = (
        "base: &base {window: 5m, title: t}\n"  # 1
        "rule:\n"  # 2
        "  <<: *base\n"  # 3
        "  window: 1h\n"  # 4
        "both:\n"  # 5
        "  <<: [*base, {window: 9m, extra: 1}]\n"  # 6
    )
    doc = mapping(doc_text)
    assert doc["rule"] == {"window": "1h", "title": "t"}
    assert doc["rule"].lines == {"window": 4, "title": 1}
    assert doc == yaml.safe_load(doc_text)  # the same values as PyYAML's own loader


# --- Finding, Findings, LoadError ----------------------------------------------------------------


def test_problem_formats_as_file_line_message() -> None:
    assert str(Finding("rules/a.yml", 7, "bad")) == "rules/a.yml:7: bad"
    assert str(Finding("a.yml", 1, "odd", warning=True)) == "a.yml:1: warning: odd"


def test_problems_collects_everything_and_raises_once() -> None:
    findings = Findings("a.yml")
    findings.error(3, "incidents[0].window", "not a duration")
    findings.warn(4, "", "looks odd")
    findings.error(9, "", "no path")
    assert [str(p) for p in findings.items] == [
        "a.yml:3: incidents[0].window: not a duration",
        "a.yml:4: warning: looks odd",
        "a.yml:9: no path",
    ]
    assert [p.line for p in findings.errors] == [3, 9]
    with pytest.raises(LoadError) as info:
        findings.raise_if_any()
    assert [p.line for p in info.value.findings] == [3, 9]
    assert str(info.value) == "a.yml:3: incidents[0].window: not a duration\na.yml:9: no path"


def test_warnings_alone_do_not_raise() -> None:
    findings = Findings("a.yml")
    findings.warn(1, "x", "hmm")
    findings.raise_if_any()
    Findings("empty.yml").raise_if_any()


# --- field readers -------------------------------------------------------------------------------


def run(reader: Any, text: str, *args: Any) -> tuple[Any, list[str]]:
    findings = Findings("f.yml")
    value = reader(findings, mapping(text), *args)
    return value, [str(p) for p in findings.items]


@pytest.mark.parametrize(
    ("text", "allowed", "expected"),
    [
        ("name: a\nmatch: x\n", ("name", "match"), []),
        (
            "name: a\nmacth: x\n",
            ("name", "match"),
            ["f.yml:2: rule.macth: unknown key (did you mean 'match'?)"],
        ),
        (
            "name: a\nzzz: 1\n",
            ("name", "match"),
            ["f.yml:2: rule.zzz: unknown key (allowed: name, match)"],
        ),
        (
            "nmae: a\nwindw: 1\n",  # every unknown key, not only the first
            ("name", "window"),
            [
                "f.yml:1: rule.nmae: unknown key (did you mean 'name'?)",
                "f.yml:2: rule.windw: unknown key (did you mean 'window'?)",
            ],
        ),
        ("3: x\n", ("name",), ["f.yml:1: rule[3]: unknown key (allowed: name)"]),
    ],
)
def test_check_keys(text: str, allowed: tuple[str, ...], expected: list[str]) -> None:
    assert run(check_keys, text, allowed, "rule")[1] == expected


def test_check_keys_ignores_keys_reported_elsewhere() -> None:
    findings = Findings("f.yml")
    check_keys(findings, mapping("name: a\nsecret: s\n"), ("name",), "t", ignore=("secret",))
    assert findings.items == []


def test_check_keys_at_top_level_has_no_leading_dot() -> None:
    assert run(check_keys, "lisen: x\n", ("listen",), "")[1] == [
        "f.yml:1: lisen: unknown key (did you mean 'listen'?)"
    ]


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ("", "listen", "listen"),
        ("auth", "tokens", "auth.tokens"),
        ("auth.tokens", 0, "auth.tokens[0]"),
        ("incidents[2] (x)", "window", "incidents[2] (x).window"),
        ("", 3, "[3]"),
    ],
)
def test_join(path: str, key: Any, expected: str) -> None:
    assert join(path, key) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "nothing (null)"),
        (LocDict(), "a mapping"),
        (LocList(), "a list"),
        ("x", "str 'x'"),
        (3, "int 3"),
        (True, "bool True"),
    ],
)
def test_describe(value: Any, expected: str) -> None:
    assert describe(value) == expected


def test_expect_mapping_and_list() -> None:
    findings = Findings("f.yml")
    doc = mapping("m: {a: 1}\nl: [1]\n")
    assert expect_mapping(findings, doc["m"], 1, "m") is doc["m"]
    assert expect_list(findings, doc["l"], 2, "l") is doc["l"]
    assert expect_mapping(findings, doc["l"], 2, "l") is None
    assert expect_list(findings, "text", 5, "x.y") is None
    assert expect_list(findings, None, 6, "z") is None
    assert [str(p) for p in findings.items] == [
        "f.yml:2: l: expected a mapping, got a list",
        "f.yml:5: x.y: expected a list, got str 'text'",
        "f.yml:6: z: expected a list, got nothing (null)",
    ]


@pytest.mark.parametrize(
    ("text", "expected", "errors"),
    [
        ("k: text\n", "text", []),
        ("k: 5\n", "5", []),  # numbers are accepted as their text
        ("k: 1.5\n", "1.5", []),
        ("k:\n", None, []),
        ("other: 1\n", None, []),
        ("k: true\n", None, ["f.yml:1: p.k: expected a string, got bool True"]),
        ("\nk: [a]\n", None, ["f.yml:2: p.k: expected a string, got a list"]),
        ("k: {a: 1}\n", None, ["f.yml:1: p.k: expected a string, got a mapping"]),
    ],
)
def test_get_str(text: str, expected: str | None, errors: list[str]) -> None:
    assert run(get_str, text, "k", "p") == (expected, errors)


@pytest.mark.parametrize(
    ("text", "expected", "errors"),
    [
        ("k: true\n", True, []),
        ("k: false\n", False, []),
        ("k: yes\n", True, []),  # YAML 1.1
        ("other: 1\n", False, []),  # the default
        ("k: 1\n", False, ["f.yml:1: p.k: expected true or false, got int 1"]),
        ("k: 'true'\n", False, ["f.yml:1: p.k: expected true or false, got str 'true'"]),
        ("k:\n", False, ["f.yml:1: p.k: expected true or false, got nothing (null)"]),
    ],
)
def test_get_bool(text: str, expected: bool, errors: list[str]) -> None:
    assert run(get_bool, text, "k", "p", False) == (expected, errors)


@pytest.mark.parametrize(
    ("text", "expected", "errors"),
    [
        ("k: 90s\n", timedelta(seconds=90), []),
        ("k: 1h30m\n", timedelta(minutes=90), []),
        ("k: 0s\n", timedelta(0), []),  # regression: zero used to become the default
        ("k: 0\n", timedelta(0), []),
        ("other: 1\n", timedelta(minutes=5), []),
        (
            "\nk: 5 minutes\n",
            timedelta(minutes=5),
            [
                "f.yml:2: p.k: not a duration: '5 minutes' (expected e.g. 90s, 15m, 1h30m, 7d)",
            ],
        ),
    ],
)
def test_get_duration(text: str, expected: timedelta, errors: list[str]) -> None:
    assert run(get_duration, text, "k", "p", timedelta(minutes=5)) == (expected, errors)


def test_convert_reports_the_parsers_message_under_the_key_path_once() -> None:
    def parse(text: str) -> int:
        if not text.isdecimal():
            raise ValueError(f"expected digits, got {text!r}")
        return int(text)

    assert run(convert, "n: 12\n", "n", "limits", 0, parse) == (12, [])
    assert run(convert, "x: 1\n", "n", "limits", 7, parse) == (7, [])
    assert run(convert, "a: 1\nn: twelve\n", "n", "limits", 7, parse) == (
        7,
        ["f.yml:2: limits.n: expected digits, got 'twelve'"],
    )


@pytest.mark.parametrize(
    ("text", "expected", "errors"),
    [
        ("k: [a, b]\n", ["a", "b"], []),
        ("k: []\n", [], []),
        ("k:\n", [], []),
        ("other: 1\n", [], []),
        ("k: a\n", [], ["f.yml:1: p.k: expected a list, got str 'a'"]),
        (
            "k:\n  - a\n  - 1\n  - b\n  - [c]\n",
            ["a", "b"],
            [
                "f.yml:3: p.k[1]: expected a string, got int 1",
                "f.yml:5: p.k[3]: expected a string, got a list",
            ],
        ),
    ],
)
def test_get_str_list(text: str, expected: list[str], errors: list[str]) -> None:
    assert run(get_str_list, text, "k", "p") == (expected, errors)
