"""Tests for itsmd.correlation.matchers: Prometheus label-matcher selectors."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itsmd.correlation.matchers import (
    Matcher,
    MatcherError,
    MatchOp,
    Regex,
    Selector,
    matches_any,
    parse_selector,
    parse_selectors,
)

EQ, NE, RE, NRE = MatchOp.EQ, MatchOp.NE, MatchOp.RE, MatchOp.NRE


def sel(*matchers: tuple[str, MatchOp, str]) -> Selector:
    return Selector(tuple(Matcher(*m) for m in matchers))


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", sel()),
        ("  { }  ", sel()),
        ('{a="b"}', sel(("a", EQ, "b"))),
        ('{a!="b"}', sel(("a", NE, "b"))),
        ('{a=~"b.*"}', sel(("a", RE, "b.*"))),
        ('{a!~"b|c"}', sel(("a", NRE, "b|c"))),
        (
            '{a="1", b!="2", c=~"3", d!~"4"}',
            sel(("a", EQ, "1"), ("b", NE, "2"), ("c", RE, "3"), ("d", NRE, "4")),
        ),
        ('{a="b",}', sel(("a", EQ, "b"))),
        ('{a="b" , c="d" , }', sel(("a", EQ, "b"), ("c", EQ, "d"))),
        ('\n{\n\ta\t=~\r\n"b"\n,\n}\n', sel(("a", RE, "b"))),
        ('{a="b",c="d"}', sel(("a", EQ, "b"), ("c", EQ, "d"))),
        ("{a='b'}", sel(("a", EQ, "b"))),
        ("{a=`b`}", sel(("a", EQ, "b"))),
        ('{a=""}', sel(("a", EQ, ""))),
        ("{a=''}", sel(("a", EQ, ""))),
        ("{a=``}", sel(("a", EQ, ""))),
        ('{a="x", a!="y"}', sel(("a", EQ, "x"), ("a", NE, "y"))),  # duplicates allowed
        ('{_A_1="v"}', sel(("_A_1", EQ, "v"))),
        ('{a="}{,=\\"~"}', sel(("a", EQ, '}{,="~'))),  # punctuation inside quotes is data
        ('DiskFull{instance="a"}', sel(("alertname", EQ, "DiskFull"), ("instance", EQ, "a"))),
        ("  DiskFull  {  }  ", sel(("alertname", EQ, "DiskFull"))),
        ("job:rate5m{}", sel(("alertname", EQ, "job:rate5m"))),
        ('{a="ünï😀"}', sel(("a", EQ, "ünï😀"))),
    ],
)
def test_parse_selector(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        (r'"a\\b"', "a\\b"),
        (r'"a\"b"', 'a"b'),
        (r'"a\'b"', "a'b"),
        (r"'a\'b'", "a'b"),
        (r"'a\"b'", 'a"b'),
        (r"'a\\b'", "a\\b"),
        (r'"\n\t\r"', "\n\t\r"),
        (r'"\a\b\f\v"', "\a\b\f\v"),
        (r'"\x41\x7e"', "A~"),
        (r'"\xc3\xa9"', "é"),  # \x is a byte, as in Go: two bytes of UTF-8
        (r'"\u00e9\u20AC"', "é€"),
        (r'"\U0001F600"', "😀"),
        (r'"\101\303\251"', "Aé"),  # octal bytes
        ('"tab\there"', "tab\there"),  # raw control characters other than newline pass
        (r"`a\nb\"`", r"a\nb\""),  # backticks are raw
        ("`line1\nline2`", "line1\nline2"),
        ('`it\'s "x"`', 'it\'s "x"'),
    ],
)
def test_quoted_values_and_escapes(quoted: str, value: str) -> None:
    assert parse_selector("{a=" + quoted + "}") == sel(("a", EQ, value))


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        # missing braces
        ('severity="critical"', 8, "expected '{' after name 'severity', got '=\"critical\"'"),
        ("DiskFull", 8, "expected '{' after name 'DiskFull', got end of input"),
        ('"a"', 0, "expected '{', got '\"a\"'"),
        ("", 0, "expected '{', got end of input"),
        ('{a="b"', 6, "expected ',' or '}' after matcher 'a=\"b\"', got end of input"),
        ('{a="b" c="d"}', 7, "expected ',' or '}' after matcher 'a=\"b\"', got 'c=\"d\"}'"),
        # unterminated strings
        ('{a="b}', 3, "unterminated string, got '\"b}'"),
        ("{a='b}", 3, "unterminated string, got ''b}'"),
        ("{a=`b}", 3, "unterminated string, got '`b}'"),
        ('{a="b\\"}', 3, "unterminated string"),
        ('{a="b\nc"}', 3, "unterminated string"),  # Go forbids raw newlines here
        # bad operators
        ('{env:"x"}', 4, "expected '=', '!=', '=~' or '!~' after label name 'env', got ':\"x\"}'"),
        ('{env ~= "x"}', 5, "expected '=', '!=', '=~' or '!~' after label name 'env'"),
        ("{env}", 4, "expected '=', '!=', '=~' or '!~' after label name 'env', got '}'"),
        ('{env=="x"}', 5, "expected a quoted value after 'env=', got '=\"x\"}'"),
        ("{env=x}", 5, "expected a quoted value after 'env=', got 'x}'"),
        # bad label names
        ('{1a="x"}', 1, "expected a label name or '}', got '1a=\"x\"}'"),
        ('{a-b="x"}', 2, "after label name 'a'"),
        ('{"a"="x"}', 1, "expected a label name or '}'"),
        ('{a="b",,}', 7, "expected a label name or '}', got ',}'"),
        ("{,}", 1, "expected a label name or '}'"),
        # bad regex
        ('{env=~"(dev"}', 6, "invalid regex '(dev' for label 'env': missing ): (dev"),
        ('{env!~"*"}', 6, "invalid regex '*' for label 'env': no argument for repetition"),
        ('{env=~"(a)\\\\1"}', 6, "invalid regex '(a)\\\\1' for label 'env': invalid escape"),
        # trailing garbage
        ('{a="b"} x', 8, "unexpected text after '}', got 'x'"),
        ('{a="b"}}', 7, "unexpected text after '}', got '}'"),
        # bad escapes
        (r'{a="\q"}', 4, "unknown escape sequence, got '\\q\"}'"),
        (r'{a="\x4"}', 4, "escape \\x needs 2 hex digits"),
        (r'{a="\u12G4"}', 4, "escape \\u needs 4 hex digits"),
        (r'{a="\ud800"}', 4, "escape is not a Unicode code point"),
        (r'{a="\U00110000"}', 4, "escape is not a Unicode code point"),
        (r'{a="\400"}', 4, "octal escape needs 3 digits"),
        (r'{a="\xff"}', 3, "string is not valid UTF-8 after unescaping"),
    ],
)
def test_parse_errors(text: str, position: int, fragment: str) -> None:
    with pytest.raises(MatcherError) as info:
        parse_selector(text)
    assert info.value.position == position
    assert str(info.value).startswith(f"position {position}: ")
    assert fragment in str(info.value)


def test_long_offending_text_is_shortened() -> None:
    with pytest.raises(MatcherError, match=r"got 'x{20}\.\.\.'$"):
        parse_selector("{} " + "x" * 50)


# --- matching ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("{}", {}, True),
        ("{}", {"a": "b"}, True),
        ('{env="prod"}', {"env": "prod"}, True),
        ('{env="prod"}', {"env": "dev"}, False),
        ('{env="prod"}', {}, False),
        ('{env=""}', {}, True),  # missing label reads as ""
        ('{env=""}', {"env": ""}, True),
        ('{env=""}', {"env": "x"}, False),
        ('{env!="dev"}', {}, True),
        ('{env!="dev"}', {"env": "prod"}, True),
        ('{env!="dev"}', {"env": "dev"}, False),
        ('{env!=""}', {}, False),  # "label must be present and non-empty"
        ('{env!=""}', {"env": "x"}, True),
        ('{svc=~"api"}', {"svc": "api"}, True),
        ('{svc=~"api"}', {"svc": "api-2"}, False),  # fully anchored
        ('{svc=~"api"}', {"svc": "my-api"}, False),
        ('{svc=~"api"}', {"svc": "api\n"}, False),  # not Python's lenient $
        ('{svc=~"api|web"}', {"svc": "web"}, True),  # alternation anchored as a whole
        ('{svc=~"api|web"}', {"svc": "api-web"}, False),
        ('{svc=~"api.*"}', {"svc": "api-2"}, True),
        ('{svc=~".*"}', {"svc": "multi\nline"}, True),  # . matches newline, as RE2 (?s)
        ('{svc=~".*"}', {}, True),
        ('{svc=~".+"}', {}, False),
        ('{svc=~"(?i)API"}', {"svc": "api"}, True),
        ('{svc!~"api"}', {"svc": "api"}, False),
        ('{svc!~"api"}', {"svc": "api-2"}, True),
        ('{svc!~"api"}', {}, True),
        ('{svc!~""}', {}, False),
        ('{svc!~".+"}', {}, True),
        ('{a="1", b="2"}', {"a": "1", "b": "2", "c": "3"}, True),  # AND
        ('{a="1", b="2"}', {"a": "1"}, False),
        ('{a="x", a!="y"}', {"a": "x"}, True),
        ('{a="x", a="y"}', {"a": "x"}, False),
        ('DiskFull{instance="db1"}', {"alertname": "DiskFull", "instance": "db1"}, True),
        ('DiskFull{instance="db1"}', {"alertname": "CPU", "instance": "db1"}, False),
    ],
)
def test_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    ("selectors", "labels", "expected"),
    [
        ((), {"a": "b"}, False),  # empty sequence never matches
        (('{a="b"}',), {"a": "b"}, True),
        (('{a="x"}', '{a="b"}'), {"a": "b"}, True),
        (('{a="x"}', '{a="y"}'), {"a": "b"}, False),
        (("{}",), {}, True),
    ],
)
def test_matches_any(selectors: tuple[str, ...], labels: dict[str, str], expected: bool) -> None:
    assert matches_any([parse_selector(s) for s in selectors], labels) is expected


# --- formatting and helpers --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("{}", "{}"),
        ("{ a = 'b' , }", '{a="b"}'),
        ('{a="1",b!="2",c=~"3",d!~"4"}', '{a="1", b!="2", c=~"3", d!~"4"}'),
        (r"{a=`C:\dir`}", r'{a="C:\\dir"}'),
        (r'{a="say \"hi\""}', r'{a="say \"hi\""}'),
        ("{a=`x\ny`}", r'{a="x\ny"}'),
        ("{a='\u00e9\t'}", '{a="\u00e9\t"}'),  # only \\, \" and newline are escaped
        ("DiskFull{}", '{alertname="DiskFull"}'),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    selector = parse_selector(text)
    assert str(selector) == canonical
    assert parse_selector(canonical) == selector


def test_matcher_str() -> None:
    assert str(Matcher("env", NRE, 'a"b')) == r'env!~"a\"b"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", {}),
        ('{a="1", b!="2", c=~"3", d!~"4", e=""}', {"a": "1"}),
        ('DiskFull{instance="db1"}', {"alertname": "DiskFull", "instance": "db1"}),
        ('{a="1", a="2"}', {"a": "2"}),
    ],
)
def test_equality_constraints(text: str, expected: dict[str, str]) -> None:
    assert parse_selector(text).equality_constraints() == expected


def test_parse_selectors_accepts_one_or_a_list() -> None:
    assert parse_selectors('{a="b"}') == (sel(("a", EQ, "b")),)
    assert parse_selectors(['{a="b"}', "{}"]) == (sel(("a", EQ, "b")), sel())


def test_parse_selectors_rejects_empty_list() -> None:
    with pytest.raises(MatcherError, match=r"^empty list of selectors$"):
        parse_selectors([])


def test_parse_selectors_names_the_failing_item() -> None:
    with pytest.raises(MatcherError) as info:
        parse_selectors(["{}", '{a="b"', "{}"])
    assert str(info.value).startswith("selector 1: position 6: expected ',' or '}'")
    assert info.value.position == 6


@pytest.mark.parametrize(
    ("name", "op", "value", "fragment"),
    [
        ("1a", EQ, "x", "invalid label name '1a'"),
        ("", EQ, "x", "invalid label name ''"),
        ("a.b", NE, "x", "invalid label name 'a.b'"),
        ("a", RE, "[", "invalid regex '[' for label 'a': missing ]: ["),
        ("a", NRE, "a)", "invalid regex 'a)' for label 'a': unexpected ): a)"),
    ],
)
def test_matcher_validates_on_construction(
    name: str, op: MatchOp, value: str, fragment: str
) -> None:
    with pytest.raises(MatcherError, match=re.escape(fragment)) as info:
        Matcher(name, op, value)
    assert info.value.position is None


def test_matcher_equality_ignores_compiled_regex() -> None:
    one, two = Matcher("a", RE, "x.*"), Matcher("a", RE, "x.*")
    assert one == two
    assert hash(one) == hash(two)
    assert Matcher("a", RE, "x") != Matcher("a", NRE, "x")
    assert "Regex" not in repr(one)


# --- RE2 -----------------------------------------------------------------------


def test_regexes_run_on_re2_in_linear_time() -> None:
    # (a|a)+b backtracks in Python's re: 26 characters took 5 s, each one more doubles it.
    selector = parse_selector('{service=~"(a|a)+b"}')
    regex = selector.matchers[0].regex
    assert regex is not None
    assert type(regex.engine).__module__ == "re2"
    value = "a" * 10_000
    assert selector.matches({"service": value}) is False
    assert selector.matches({"service": value + "b"}) is True
    assert parse_selector('{service!~"(a|a)+b"}').matches({"service": value}) is True
    assert parse_selector('{service=~"(x+x+)+y"}').matches({"service": "x" * 10_000}) is False


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", r"invalid escape sequence: \1"),  # backreference
        ("(?P<x>a)(?P=x)", "invalid perl operator: (?P"),  # named backreference
        ("a(?=b)", "invalid perl operator: (?="),  # lookahead
        ("a(?!b)", "invalid perl operator: (?!"),
        ("(?<=a)b", "invalid perl operator: (?<="),  # lookbehind
        ("a*+", "bad repetition operator: *+"),  # possessive
        ("a++b", "bad repetition operator: ++"),
        ("(?>a+)b", "invalid perl operator: (?>"),  # atomic group
        ("(a)?(?(1)b|c)", "invalid perl operator: (?("),  # conditional
        (r"a\Z", r"invalid escape sequence: \Z"),  # RE2 spells it \z
        ("(?x)a b", "invalid perl operator: (?x"),  # verbose mode
        ("a{1001}", "invalid repetition size: {1001}"),  # RE2 counts at most 1000
        ("(a{100}){100}", "invalid repetition size: {100}"),
    ],
)
def test_what_re2_refuses_is_an_error_when_parsed(pattern: str, reason: str) -> None:
    with pytest.raises(MatcherError) as info:
        Matcher("a", RE, pattern)
    assert str(info.value) == (
        f"invalid regex {pattern!r} for label 'a': {reason} (regexes are RE2 syntax)"
    )


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("[[:alpha:]]+", "abc", True),  # POSIX classes, as in Prometheus
        ("[[:digit:]]+", "abc", False),
        ("[^[:space:]]+", "a b", False),
        (r"\pL+", "été", True),  # Unicode classes
        (r"\p{Greek}+", "λόγος", True),
        (r"\x{e9}t\x{e9}", "été", True),
        (r"a\z", "a", True),
        ("a{,2}", "a{,2}", True),  # not a repetition in RE2: literal text
        ("a{,2}", "aa", False),
        # Perl classes are ASCII in RE2 (and Go), unlike Python's re on str
        (r"\d+", "٣", False),
        (r"\w+", "é", False),
        (r"\s", "\u00a0", False),
        (r"(?i)straße", "STRASSE", False),  # simple case folding only
        (r"(?i)é", "É", True),
        ("(?U)a+", "aaa", True),  # ungreedy flag: same matches when fully anchored
    ],
)
def test_re2_syntax_and_semantics(pattern: str, value: str, expected: bool) -> None:
    assert Matcher("a", RE, pattern).matches({"a": value}) is expected
    assert Matcher("a", NRE, pattern).matches({"a": value}) is not expected


def test_a_lone_surrogate_in_a_value_matches_as_a_replacement_character() -> None:
    # UTF-8 cannot carry it; RE2 sees U+FFFD, as Go sees invalid UTF-8, rather than fail.
    assert Matcher("a", RE, "a.c").matches({"a": "a\ud800c"})
    assert Matcher("a", RE, "a\ufffdc").matches({"a": "a\ud800c"})
    assert not Matcher("a", NRE, "a[^x]c").matches({"a": "a\udfffc"})


def test_a_lone_surrogate_in_a_pattern_is_refused() -> None:
    with pytest.raises(MatcherError, match="not valid Unicode"):
        Matcher("a", RE, "a[\ud800]")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("^OK$", "OK", True),
        ("^OK$", "OK\n", True),  # as Python's re: $ also before a final newline
        ("^OK$", "OK\n\n", False),
        ("OK$", "not OK\n", True),
        ("^OK", "not OK", False),
        ('"status":\\s*"ok"', '{"status": "ok"}', True),  # searched, not anchored
        ("(a|a)+b", "a" * 10_000, False),
        (".", "\n", False),  # `.` does not match a newline here, as in Python's re
    ],
)
def test_regex_search(pattern: str, value: str, expected: bool) -> None:
    assert Regex(pattern).search(value) is expected


def test_regex_compares_by_pattern_and_options() -> None:
    assert Regex("a+") == Regex("a+")
    assert hash(Regex("a+")) == hash(Regex("a+"))
    assert Regex("a+") != Regex("a+", dot_matches_newline=True)
    assert repr(Regex("a+")) == "Regex(pattern='a+', dot_matches_newline=False)"
    with pytest.raises(ValueError, match=r"^missing \): \($"):
        Regex("(")


def test_match_op_values() -> None:
    assert [str(op) for op in MatchOp] == ["=", "!=", "=~", "!~"]


# --- properties --------------------------------------------------------------

# Hypothesis builds its Unicode tables (~3 s) on first use of st.text() in a fresh
# checkout, which trips the too_slow health check on whichever test runs first.
tolerate_first_run = settings(suppress_health_check=[HealthCheck.too_slow])

label_names = st.one_of(
    st.sampled_from(["a", "env", "alertname", "_x"]),
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True),
)


def _compiles(pattern: str) -> bool:
    try:
        Matcher("a", RE, pattern)
    except MatcherError:
        return False
    return True


regexes = st.one_of(
    st.text().map(re.escape),
    st.sampled_from(["", ".*", ".+", "a|b", "(?i)env", "[^x]+", "a.c", r"\d+", "x?"]),
    st.text(alphabet="ab.*+?|()[]^$\\", max_size=6).filter(_compiles),
)


@st.composite
def matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(MatchOp))
    value = draw(regexes if op in (RE, NRE) else st.text())
    return Matcher(draw(label_names), op, value)


selectors = st.builds(Selector, st.lists(matchers(), max_size=5).map(tuple))
label_sets = st.dictionaries(
    label_names, st.one_of(st.sampled_from(["", "a", "b", "env", "a\nb"]), st.text())
)


@tolerate_first_run
@given(selectors)
def test_format_then_parse_round_trips(selector: Selector) -> None:
    assert parse_selector(str(selector)) == selector


@tolerate_first_run
@given(selectors, label_sets)
def test_reparsed_selector_matches_the_same_labels(
    selector: Selector, labels: dict[str, str]
) -> None:
    reparsed = parse_selector(str(selector))
    assert reparsed.matches(labels) == selector.matches(labels)


@tolerate_first_run
@given(matchers(), label_sets)
def test_negated_operators_are_complements(matcher: Matcher, labels: dict[str, str]) -> None:
    flipped = {EQ: NE, NE: EQ, RE: NRE, NRE: RE}[matcher.op]
    assert Matcher(matcher.name, flipped, matcher.value).matches(labels) != matcher.matches(labels)


def _go_escape(char: str, style: int) -> str:
    """Spell one character with a Go escape chosen by `style`."""
    code = ord(char)
    if style == 0:
        return f"\\U{code:08x}"
    if style == 1 and code <= 0xFFFF:
        return f"\\u{code:04X}"
    if style == 2:
        return "".join(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(f"\\{byte:03o}" for byte in char.encode())


@tolerate_first_run
@given(st.text(), st.sampled_from(['"', "'"]), st.data())
def test_any_escape_spelling_parses_to_the_same_value(
    value: str, quote: str, data: st.DataObject
) -> None:
    styles = data.draw(st.lists(st.integers(0, 3), min_size=len(value), max_size=len(value)))
    body = "".join(_go_escape(c, s) for c, s in zip(value, styles, strict=True))
    assert parse_selector(f"{{a={quote}{body}{quote}}}") == sel(("a", EQ, value))


@tolerate_first_run
@given(st.text().filter(lambda v: "`" not in v))
def test_backticks_take_any_text_raw(value: str) -> None:
    assert parse_selector(f"{{a=`{value}`}}") == sel(("a", EQ, value))


plain_text = st.text(alphabet="ab-é \n", max_size=3)
shortcut_patterns = st.one_of(
    st.sampled_from([".*", ".+", "", "|", "a|", ".*.*", "\ufffd", ".*\ufffd"]),
    st.lists(plain_text, min_size=1, max_size=3).map("|".join),
    plain_text.map(lambda text: text + ".*"),
    plain_text.map(lambda text: ".*" + text),
    plain_text.map(lambda text: ".*" + text + ".*"),
)


@tolerate_first_run
@given(shortcut_patterns, st.text(alphabet="ab-é \n.*|\ufffd\ud800", max_size=6))
def test_shortcuts_agree_with_re2(pattern: str, value: str) -> None:
    # Plain alternations, .*, .+ and prefix/suffix/infix .* are matched without RE2.
    matcher = Matcher("a", RE, pattern)
    assert matcher.regex is not None
    assert matcher.matches({"a": value}) is matcher.regex.fullmatch(value)


selector_text = st.text(alphabet=st.sampled_from('{}a=~!"`\\,() .*+?[]|^$\x00é\n'), max_size=40)


@given(st.one_of(st.text(max_size=60), selector_text))
def test_any_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    """Hostile selector text (a rule file, an API window, a route) never raises
    anything but MatcherError, and that error says what is wrong."""
    reason = "parsed"
    try:
        parse_selector(text)
    except MatcherError as exc:
        reason = str(exc)
    assert reason
