"""Prometheus/Alertmanager label-matcher selectors: parse, format, match.

Syntax: an optional bare alert name, then ``{name OP "value", ...}`` where OP is
``=``, ``!=``, ``=~`` or ``!~``. Values are double- or single-quoted with Go escapes,
or backtick-quoted raw. Semantics follow Prometheus: a missing label reads as "",
regexes are fully anchored and ``.`` matches newlines (Prometheus 3 / RE2 ``(?s)``).
Regexes are RE2, as in Prometheus and Alertmanager: matching takes time linear in the
label value whatever the pattern, and what RE2 refuses (backreferences, lookaround,
possessive quantifiers, atomic groups) is refused when the selector is parsed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import methodcaller
from typing import NoReturn, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ALERT_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")  # metric-name charset, as amtool
_WHITESPACE = " \t\r\n"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS = frozenset("01234567")
# Characters with a meaning in RE2 syntax (outside a class); a pattern without any is
# an alternation of plain strings.
_REGEX_META = frozenset("\\.+*?()[]{}^$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class MatcherError(ValueError):
    """A selector or matcher that is invalid; ``position`` is the 0-based offset, if known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"position {position}: {message}")
        self.position = position


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    # Compiled once here so that matching on the ingest path never compiles; `_test` is
    # the regex's full match, or an exact shortcut for the shapes most matchers have.
    _regex: Regex | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _test: Callable[[str], bool] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(f"invalid label name {self.name!r}")
        if self.op in (MatchOp.RE, MatchOp.NRE):
            regex, test = _compile(self.name, self.value)
            object.__setattr__(self, "_regex", regex)
            object.__setattr__(self, "_test", test)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        match self.op:
            case MatchOp.EQ:
                return value == self.value
            case MatchOp.NE:
                return value != self.value
            case MatchOp.RE:
                return self._test is not None and self._test(value)
            case MatchOp.NRE:
                return self._test is not None and not self._test(value)

    @property
    def regex(self) -> Regex | None:
        """The regex of a ``=~`` or ``!~`` matcher; None for ``=`` and ``!=``."""
        return self._regex

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """All matchers must hold; the empty selector ``{}`` matches every label set."""
        return all(m.matches(labels) for m in self.matchers)

    def __str__(self) -> str:
        return "{" + ", ".join(str(m) for m in self.matchers) + "}"

    def equality_constraints(self) -> dict[str, str]:
        """Label values every match must have: ``=`` matchers with a non-empty value.

        Meant for indexing rules by label value. If a name is constrained twice the
        last value wins; either is a sound index key, since both must hold.
        """
        return {m.name: m.value for m in self.matchers if m.op is MatchOp.EQ and m.value}


def parse_selector(text: str) -> Selector:
    """Parse one selector such as ``DiskFull{env!="dev", instance=~"db-.*"}``."""
    return _Parser(text).selector()


def parse_selectors(value: str | Sequence[str]) -> tuple[Selector, ...]:
    """Parse a ``match:`` value: one selector, or a non-empty list meaning any-of."""
    if isinstance(value, str):
        return (parse_selector(value),)
    if not value:
        raise MatcherError("empty list of selectors")
    selectors = []
    for index, text in enumerate(value):
        try:
            selectors.append(parse_selector(text))
        except MatcherError as err:
            wrapped = MatcherError(f"selector {index}: {err}")
            wrapped.position = err.position
            raise wrapped from None
    return tuple(selectors)


def matches_any(selectors: Sequence[Selector], labels: Mapping[str, str]) -> bool:
    """True if any selector matches; an empty sequence never matches."""
    return any(s.matches(labels) for s in selectors)


class _Engine(Protocol):
    """What a compiled RE2 regex (``re2._Regexp``, without type hints) is used for here."""

    def search(self, text: str, /) -> object | None: ...

    def fullmatch(self, text: str, /) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Regex:
    """A regular expression run by RE2: matching takes time linear in the text, whatever
    the pattern. Raises ValueError with RE2's reason for a pattern RE2 refuses.

    Equal to another of the same pattern and options, so that a reload of unchanged
    rules sees no change.
    """

    pattern: str
    dot_matches_newline: bool = False
    engine: _Engine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            engine = re2.compile(self.pattern, _RE2_OPTIONS[self.dot_matches_newline])
        except re2.error as err:
            reason = err.args[0] if err.args else ""
            raise ValueError(
                reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
            ) from None
        except UnicodeEncodeError:  # a lone surrogate: RE2 reads UTF-8
            raise ValueError("the pattern is not valid Unicode") from None
        object.__setattr__(self, "engine", engine)

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in the text. As in Python's ``re``, an
        end of text (``$``) is also found before a newline that ends the text."""
        if self._search(text):
            return True
        return text.endswith("\n") and self._search(text[:-1])

    def _search(self, text: str) -> bool:
        try:
            return self.engine.search(text) is not None
        except UnicodeEncodeError:
            return self.engine.search(_valid_unicode(text)) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches the whole text."""
        try:
            return self.engine.fullmatch(text) is not None
        except UnicodeEncodeError:
            return self.engine.fullmatch(_valid_unicode(text)) is not None


def _re2_options(dot_matches_newline: bool) -> object:
    options = re2.Options()
    options.dot_nl = dot_matches_newline
    options.never_capture = True  # only match or no match is asked: no groups to track
    options.log_errors = False  # a refused pattern is reported to the caller, not on stderr
    return options


_RE2_OPTIONS = {flag: _re2_options(flag) for flag in (False, True)}


def _valid_unicode(text: str) -> str:
    """Lone surrogates (which UTF-8 cannot carry) as U+FFFD, as Go reads bad UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def _compile(name: str, pattern: str) -> tuple[Regex, Callable[[str], bool]]:
    try:
        regex = Regex(pattern, dot_matches_newline=True)
    except ValueError as err:
        raise MatcherError(
            f"invalid regex {pattern!r} for label {name!r}: {err} (regexes are RE2 syntax)"
        ) from None
    return regex, _shortcut(pattern) or regex.fullmatch


def _shortcut(pattern: str) -> Callable[[str], bool] | None:
    """A test equal to the fully anchored regex without calling RE2, for the shapes most
    matchers have (as Prometheus does): ``.*``, ``.+``, alternations of plain strings
    (``critical|warning``: a set lookup), and a plain prefix, suffix or infix with ``.*``
    (``canary-.*``, ``.*-canary``, ``.*canary.*``); None for other patterns."""
    if pattern == ".*":
        return _any_value
    if pattern == ".+":
        return bool
    if "\ufffd" in pattern:  # RE2 reads a lone surrogate of a value as U+FFFD, str does not
        return None
    if _REGEX_META.isdisjoint(pattern):
        return frozenset(pattern.split("|")).__contains__
    if len(pattern) >= 4 and pattern.startswith(".*") and pattern.endswith(".*"):
        infix = pattern[2:-2]
        return methodcaller("__contains__", infix) if _plain(infix) else None
    if pattern.endswith(".*"):
        prefix = pattern[:-2]
        return methodcaller("startswith", prefix) if _plain(prefix) else None
    if pattern.startswith(".*"):
        suffix = pattern[2:]
        return methodcaller("endswith", suffix) if _plain(suffix) else None
    return None


def _plain(text: str) -> bool:
    """Whether RE2 reads the text as itself: no metacharacter, no alternation."""
    return _REGEX_META.isdisjoint(text) and "|" not in text


def _any_value(value: str) -> bool:
    return True


def _quote(value: str) -> str:
    """Double-quote with the Go escapes the parser reads back (Alertmanager's style)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _Parser:
    """Recursive descent over the text; ``pos`` is the next character to read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> NoReturn:
        pos = self.pos if position is None else position
        raise MatcherError(f"{message}, got {self._excerpt(pos)}", pos)

    def _excerpt(self, pos: int) -> str:
        if pos >= len(self.text):
            return "end of input"
        snippet = self.text[pos : pos + 20].replace("\n", "\\n")
        return f"'{snippet}{'...' if len(self.text) > pos + 20 else ''}'"

    def skip_whitespace(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def eat(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def selector(self) -> Selector:
        self.skip_whitespace()
        matchers: list[Matcher] = []
        if alert := _ALERT_NAME.match(self.text, self.pos):
            matchers.append(Matcher("alertname", MatchOp.EQ, alert.group()))
            self.pos = alert.end()
            self.skip_whitespace()
        if not self.eat("{"):
            self.fail(f"expected '{{' after name {alert.group()!r}" if alert else "expected '{'")
        self.skip_whitespace()
        while not self.eat("}"):
            matchers.append(self.matcher())
            self.skip_whitespace()
            if self.eat(","):
                self.skip_whitespace()
            elif not self.text.startswith("}", self.pos):
                self.fail(f"expected ',' or '}}' after matcher {str(matchers[-1])!r}")
        self.skip_whitespace()
        if self.pos < len(self.text):
            self.fail("unexpected text after '}'")
        return Selector(tuple(matchers))

    def matcher(self) -> Matcher:
        name = _LABEL_NAME.match(self.text, self.pos)
        if not name:
            self.fail("expected a label name or '}'")
        self.pos = name.end()
        self.skip_whitespace()
        # Longest operators first so that "=~" is not read as "=" then "~".
        op = next((op for op in ("=~", "!~", "!=", "=") if self.eat(op)), None)
        if op is None:
            self.fail(f"expected '=', '!=', '=~' or '!~' after label name {name.group()!r}")
        self.skip_whitespace()
        value_pos = self.pos
        value = self.quoted(f"{name.group()}{op}")
        try:
            return Matcher(name.group(), MatchOp(op), value)
        except MatcherError as err:
            raise MatcherError(str(err), value_pos) from None

    def quoted(self, before: str) -> str:
        start = self.pos
        quote = self.text[start : start + 1]
        if quote == "`":  # raw string, as in Go: no escapes, newlines allowed
            end = self.text.find("`", start + 1)
            if end < 0:
                self.fail("unterminated string", start)
            self.pos = end + 1
            return self.text[start + 1 : end]
        if quote not in ('"', "'"):
            self.fail(f"expected a quoted value after {before!r}")
        # Bytes, because Go's \x and octal escapes are bytes: "\xc3\xa9" is "é".
        out = bytearray()
        self.pos += 1
        while not self.eat(quote):
            char = self.text[self.pos : self.pos + 1]
            if char in ("", "\n"):  # Go forbids raw newlines in interpreted strings
                self.fail("unterminated string", start)
            if char == "\\":
                self.escape(out)
            else:
                out += char.encode("utf-8", "surrogatepass")
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("string is not valid UTF-8 after unescaping", start)

    def escape(self, out: bytearray) -> None:
        at = self.pos
        kind = self.text[at + 1 : at + 2]
        if kind in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[kind].encode()
            self.pos = at + 2
        elif kind in _HEX_ESCAPE_DIGITS:
            width = _HEX_ESCAPE_DIGITS[kind]
            digits = self.text[at + 2 : at + 2 + width]
            if len(digits) != width or not _HEX_DIGITS.issuperset(digits):
                self.fail(f"escape \\{kind} needs {width} hex digits", at)
            self.pos = at + 2 + width
            code = int(digits, 16)
            if kind == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                self.fail("escape is not a Unicode code point", at)
            else:
                out += chr(code).encode()
        elif kind in _OCTAL_DIGITS:
            digits = self.text[at + 1 : at + 4]
            if len(digits) != 3 or not _OCTAL_DIGITS.issuperset(digits) or int(digits, 8) > 255:
                self.fail("octal escape needs 3 digits, at most \\377", at)
            out.append(int(digits, 8))
            self.pos = at + 4
        else:
            self.fail("unknown escape sequence", at)
